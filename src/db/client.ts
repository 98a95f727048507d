// Opens the database the Node server runs on: PostgreSQL through postgres.js when a URL is given,
// otherwise embedded PGlite persisted in a folder (or in memory). Both speak the same drizzle schema.
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { checkSchemaName, type Database, type Db, type Row } from './database.js';
import { openPostgres } from './postgres.js';
import * as schema from './schema.js';

export type { Database, Db, Row, SqlExecutor, Tx } from './database.js';

export interface OpenOptions {
  /** postgres://… ; when absent, PGlite is used. */
  url?: string | undefined;
  /** PGlite folder; absent means in memory. */
  dataDir?: string | undefined;
  /** An already open PGlite to share (tests: one instance per file, one schema per test). */
  pglite?: PGlite | undefined;
  /** Schema for every table (created if missing); default `public`. */
  schema?: string | undefined;
  /** postgres.js pool size. */
  maxConnections?: number | undefined;
}

export async function openDatabase(opts: OpenOptions): Promise<Database> {
  if (opts.url) return openPostgres({ url: opts.url, schema: opts.schema, maxConnections: opts.maxConnections });
  return openPglite(opts);
}

/**
 * PGlite's PostgreSQL runs inside this process's WebAssembly memory, so its shared buffers are our
 * resident memory: PostgreSQL's default (128MB) is ~120 MiB of the server's RSS once they fill. The
 * embedded database's files are read through the kernel's page cache anyway, which is not ours, so a
 * small pool costs little (bench/startup.ts: restart RSS 340 → ~220 MiB).
 */
export const PGLITE_SHARED_BUFFERS = '16MB';

async function openPglite(opts: OpenOptions): Promise<Database> {
  const schemaName = checkSchemaName(opts.schema ?? 'public');
  const shared = opts.pglite !== undefined;
  const pg =
    opts.pglite ??
    (await PGlite.create(opts.dataDir ?? 'memory://', {
      startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${PGLITE_SHARED_BUFFERS}`],
    }));
  if (schemaName !== 'public') await pg.exec(`CREATE SCHEMA IF NOT EXISTS "${schemaName}"`);
  await pg.exec(`SET search_path TO "${schemaName}"`);
  const db = drizzle(pg, { schema }) as unknown as Db;
  // PGlite runs one statement at a time; count what waits for it (drizzle's queries and the hot path's).
  const load = { statements: 0 };
  const counted =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      load.statements++;
      try {
        return await fn(...args);
      } finally {
        load.statements--;
      }
    };
  for (const name of ['query', 'exec', 'transaction'] as const) {
    const original = pg[name].bind(pg) as (...args: unknown[]) => Promise<unknown>;
    if (!shared) (pg as unknown as Record<string, unknown>)[name] = counted(original);
  }
  return {
    db,
    kind: 'pglite',
    schemaName,
    // PGlite is a single session already; queries are serialised by PGlite itself.
    withSession: (fn) => fn(async (text) => (await pg.query<Row>(text)).rows),
    prepared: (text) => async (params) => (await pg.query<Row>(text, params as unknown[])).rows,
    ping: async () => {
      await pg.query('SELECT 1');
    },
    load: () => ({ connections: 1, statements: load.statements }),
    close: async () => {
      if (!shared) await pg.close();
    },
  };
}
