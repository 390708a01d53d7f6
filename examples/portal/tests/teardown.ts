import { execFileSync } from 'node:child_process';
import { adminDatabaseUrl, databaseName } from './environment';

/** Drops the database the run's `tenure serve` created. */
export default function teardown(): void {
  execFileSync('psql', [adminDatabaseUrl, '-qc', `DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`], { stdio: 'inherit' });
}
