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

async function openPglite(opts: OpenOptions): Promise<Database> {
  const schemaName = checkSchemaName(opts.schema ?? 'public');
  const shared = opts.pglite !== undefined;
  const pg = opts.pglite ?? (await PGlite.create(opts.dataDir ?? 'memory://'));
  if (schemaName !== 'public') await pg.exec(`CREATE SCHEMA IF NOT EXISTS "${schemaName}"`);
  await pg.exec(`SET search_path TO "${schemaName}"`);
  const db = drizzle(pg, { schema }) as unknown as Db;
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
    close: async () => {
      if (!shared) await pg.close();
    },
  };
}
