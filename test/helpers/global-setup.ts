// Once per run, before any test file: builds dist/ (tests that start real `latchkey` processes run
// the code under test; tsc is incremental, a no-op when nothing changed), and finds the PostgreSQL
// that every database test also runs on (see postgres.ts), handing its URL to the test workers; and
// makes sure Debian's tinyproxy is there for the forward-proxy tests; and makes the empty PGlite
// cluster the database tests open their instance from (pglite-seed.ts).
import { execFileSync } from 'node:child_process';
import type { TestProject } from 'vitest/node';
import { ensureTinyproxy } from './forward-proxy.js';
import { ensurePgliteSeed } from './pglite-seed.js';
import { discoverPostgres, redactUrl } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The PostgreSQL URL database tests use; '' when PGlite only. */
    postgresUrl: string;
    /** The empty PGlite cluster each database test file opens its instance from (pglite-seed.ts). */
    pgliteSeed: string;
  }
}

export default async function setup(project: TestProject): Promise<void> {
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
  // The forward-proxy tests run agents through a real tinyproxy (installed here when missing, as root).
  if (!ensureTinyproxy()) console.log('tinyproxy: not installed and not root; the forward-proxy tests are skipped');
  project.provide('pgliteSeed', await ensurePgliteSeed());
  const pg = await discoverPostgres();
  project.provide('postgresUrl', pg.url ?? '');
  console.log(
    pg.url
      ? `databases: PGlite and PostgreSQL at ${redactUrl(pg.url)} (from ${pg.source})`
      : `databases: PGlite only, PostgreSQL skipped: ${pg.source}. Set DATABASE_URL or start PostgreSQL to run the database tests on it too.`,
  );
}
