// Every database test runs against PGlite and, when reachable, the real PostgreSQL
// (DATABASE_URL, else 127.0.0.1:5432 database `test`). Each test gets its own schema, migrated
// from migrations/; one PGlite instance is shared per test file (a fresh one costs ~3 s, 700 MiB).
import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import { openDatabase, type Database } from '../../src/db/client.js';
import { applyMigrations } from '../../src/db/migrate.js';
import { readMigrations } from '../../src/db/migrations-fs.js';

export type DbKind = 'pglite' | 'postgres';

const LOCAL_URL = 'postgres://postgres@127.0.0.1:5432/test';

/** The PostgreSQL URL tests use, or undefined when none is reachable (and none was demanded). */
export const postgresUrl: string | undefined = await findPostgres();

async function findPostgres(): Promise<string | undefined> {
  const url = process.env.DATABASE_URL || LOCAL_URL;
  const probe = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} });
  try {
    await probe`SELECT 1`;
    return url;
  } catch (err) {
    // A URL someone set explicitly must work: fail loudly instead of silently skipping PostgreSQL.
    if (process.env.DATABASE_URL) throw new Error(`DATABASE_URL is set but unreachable: ${(err as Error).message}`);
    return undefined;
  } finally {
    await probe.end({ timeout: 1 });
  }
}

/** The kinds to run every database test against (for describe.each). */
export const dbKinds: DbKind[] = postgresUrl ? ['pglite', 'postgres'] : ['pglite'];

let sharedPglite: Promise<PGlite> | undefined;
/** PGlite is one session: its search_path is global, so only one test database may use it at a time. */
let sharedInUse = false;
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
    sharedPglite ??= PGlite.create();
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
