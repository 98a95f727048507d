// Every database test runs against PGlite and, when reachable, the real PostgreSQL
// (DATABASE_URL, else 127.0.0.1:5432 database `test`; required under CI). Each test gets its own
// schema, migrated from migrations/; one PGlite instance is shared per test file (per worker for the
// in-process files, which share this module: vitest.config.ts), opened from the empty cluster
// global-setup made (pglite-seed.ts: no initdb per file). Suites over dbKinds are named
// "… on %s" so the run's closing lines can count the tests each database ran (databases-reporter.ts,
// .ci/summary.mjs).
import { randomBytes } from 'node:crypto';
import type { PGlite } from '@electric-sql/pglite';
import { describe, inject } from 'vitest';
import { openDatabase, type Database } from '../../src/db/client.js';
import { applyMigrations } from '../../src/db/migrate.js';
import { readMigrations } from '../../src/db/migrations-fs.js';
import { openSeededPglite } from './pglite-seed.js';

export type DbKind = 'pglite' | 'postgres';

/**
 * The PostgreSQL URL tests use, or undefined when none answers and none is required: found once per
 * run by global-setup (postgres.ts: DATABASE_URL, else the documented default).
 */
export const postgresUrl: string | undefined = inject('postgresUrl') || undefined;

/** The kinds to run every database test against (for describe.each). */
export const dbKinds: DbKind[] = postgresUrl ? ['pglite', 'postgres'] : ['pglite'];

/**
 * describe.each(dbKinds), the databases' suites side by side: for files whose suites each run their
 * own server and spend their time waiting on real processes (agent intervals, process start-ups), so
 * the file lasts as long as its slowest database instead of the sum. Within one database the tests
 * still run one after the other, in order. Name it "… on %s" like every suite over dbKinds.
 */
export function describeEachDbSideBySide(name: string, body: (kind: DbKind) => void): void {
  describe.concurrent.each(dbKinds)(name, (kind) => {
    describe.sequential('in order', () => body(kind));
  });
}

let sharedPglite: Promise<PGlite> | undefined;
/** PGlite is one session: its search_path is global, so only one test database may use it at a time. */
let sharedInUse = false;
/** Whether a test database still holds the shared PGlite (a file must release it: isolation-setup.ts). */
export const sharedPgliteInUse = (): boolean => sharedInUse;
const migrations = readMigrations();

export interface TestDatabase extends Database {
  /** Drops the schema and closes connections. */
  dispose(): Promise<void>;
}

export async function createTestDatabase(kind: DbKind): Promise<TestDatabase> {
  const schema = `t_${randomBytes(6).toString('hex')}`;
  let database: Database;
  if (kind === 'postgres') {
    if (!postgresUrl) throw new Error('PostgreSQL not reachable');
    database = await openDatabase({ url: postgresUrl, schema, maxConnections: 20 });
  } else if (!sharedInUse) {
    sharedInUse = true;
    sharedPglite ??= openSeededPglite(inject('pgliteSeed'));
    database = await openDatabase({ pglite: await sharedPglite, schema });
    const opened = database;
    database = Object.assign(opened, {
      close: async () => {
        await opened.withSession((run) => run(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)).catch(() => {});
        sharedInUse = false;
      },
    });
  } else {
    // A second database alive at the same time (two servers in one test): its own instance.
    database = await openDatabase({ schema });
  }
  await applyMigrations(database, await migrations);
  return Object.assign(database, {
    dispose: async () => {
      await database.withSession((run) => run(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)).catch(() => {});
      await database.close();
    },
  });
}
