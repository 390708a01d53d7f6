import { defineConfig } from 'vite';

// `npm run dev` serves the portal on http://localhost:5173, an origin other than the
// API's: the merchant lists it in `PUT /v1/cors_settings` (`tenure demo` does so).
export default defineConfig({
  server: {
    host: 'localhost',
    port: 5173,
    strictPort: true,
    // The SDK is linked from ../../sdk/typescript (npm `file:` dependency).
    fs: { allow: ['.', '../../sdk/typescript'] },
  },
  preview: { host: 'localhost', strictPort: true },
  build: { sourcemap: true },
});
