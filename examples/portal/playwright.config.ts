import { defineConfig } from '@playwright/test';
import { API_URL, apiEnvironment, PORTAL_URL, portalPort, tenureBinary } from './tests/environment';

// Browser tests: a real `tenure serve` on its own database, the built portal served by
// `vite preview` on another origin (localhost vs 127.0.0.1, another port), and Debian's
// Chromium (Playwright's own browser download cannot work on these machines).
export default defineConfig({
  testDir: 'tests',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  reporter: [['list']],
  globalTeardown: './tests/teardown.ts',
  use: {
    baseURL: PORTAL_URL,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  webServer: [
    {
      command: `${tenureBinary} serve`,
      env: apiEnvironment,
      url: `${API_URL}/readyz`,
      timeout: 120_000,
      stdout: 'ignore',
      stderr: process.env.TENURE_BROWSER_LOGS ? 'pipe' : 'ignore',
    },
    {
      command: `npx vite build --logLevel warn && npx vite preview --port ${portalPort}`,
      url: PORTAL_URL,
      timeout: 120_000,
    },
  ],
});
