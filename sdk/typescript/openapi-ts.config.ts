import { defineConfig } from '@hey-api/openapi-ts';

// Generates src/generated/ from the committed document; scripts/clients.sh reruns it in CI
// and fails when the result differs from what is committed (drift) or when an operation
// lost its name.
export default defineConfig({
  input: '../../openapi/openapi.json',
  // scripts/clients.sh generates into a temporary directory (TENURE_SDK_OUT) to compare.
  output: { path: process.env.TENURE_SDK_OUT ?? 'src/generated', postProcess: [] },
  plugins: [
    // Operations throw (a TenureError, see src/index.ts) instead of returning the error, so
    // their result types carry the response body, never `undefined`.
    { name: '@hey-api/client-fetch', throwOnError: true },
    '@hey-api/typescript',
    '@hey-api/sdk',
  ],
});
