// Where the browser tests find Tenure and the portal. The values are fixed in the main
// process and inherited by the workers through the environment, so every process agrees
// on one database.
import { fileURLToPath } from 'node:url';

const repository = fileURLToPath(new URL('../../..', import.meta.url));

process.env.TENURE_BROWSER_DATABASE ??= `tenure_browser_${process.pid}`;
process.env.TENURE_BROWSER_API_PORT ??= String(20_000 + (process.pid % 20_000));
process.env.TENURE_BROWSER_PORTAL_PORT ??= String(Number(process.env.TENURE_BROWSER_API_PORT) + 1);

const databaseServer = process.env.TENURE_BROWSER_DATABASE_SERVER ?? 'postgres://postgres@127.0.0.1:5432';
export const databaseName = process.env.TENURE_BROWSER_DATABASE;
export const databaseUrl = `${databaseServer}/${databaseName}`;
export const adminDatabaseUrl = `${databaseServer}/postgres`;
export const tenureBinary = process.env.TENURE_BIN ?? `${repository}target/debug/tenure`;
const apiPort = process.env.TENURE_BROWSER_API_PORT;
export const portalPort = process.env.TENURE_BROWSER_PORTAL_PORT;
/** The API on 127.0.0.1 and the portal on localhost: two origins, so CORS is real. */
export const API_URL = `http://127.0.0.1:${apiPort}`;
export const PORTAL_URL = `http://localhost:${portalPort}`;

export const apiEnvironment: Record<string, string> = {
  DATABASE_URL: databaseUrl,
  TENURE_BIND: `127.0.0.1:${apiPort}`,
  TENURE_LOG_FORMAT: 'json',
};
