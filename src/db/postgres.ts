// PostgreSQL through postgres.js: the Node server with DATABASE_URL, and the Worker via Hyperdrive.
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { checkSchemaName, DatabaseConfigError, type Database, type Db, type Row, type SqlExecutor } from './database.js';
import * as schema from './schema.js';

export interface PostgresOptions {
  url: string;
  /** Schema for every table (created if missing); default `public`. */
  schema?: string | undefined;
  /** Pool size. */
  maxConnections?: number | undefined;
}

export async function openPostgres(opts: PostgresOptions): Promise<Database> {
  const schemaName = checkSchemaName(opts.schema ?? 'public');
  let parsed: URL;
  try {
    parsed = new URL(opts.url);
  } catch {
    throw new DatabaseConfigError('DATABASE_URL is not a valid URL');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new DatabaseConfigError('DATABASE_URL must start with postgres:// or postgresql://');
  }
  const client = postgres(opts.url, {
    max: opts.maxConnections ?? 10,
    onnotice: () => {},
    connect_timeout: 5,
    connection: { search_path: schemaName, application_name: 'latchkey' },
  });
  const db = drizzle(client, { schema }) as unknown as Db;
  const withSession: SqlExecutor['withSession'] = async (fn) => {
    const conn = await client.reserve();
    try {
      return await fn(async (text) => [...(await conn.unsafe(text))] as Row[]);
    } finally {
      conn.release();
    }
  };
  if (schemaName !== 'public') {
    // Concurrent CREATE SCHEMA IF NOT EXISTS can still collide on the catalog's unique index.
    await withSession((run) => run(`CREATE SCHEMA IF NOT EXISTS "${schemaName}"`)).catch((err: { code?: string }) => {
      if (err.code !== '23505' && err.code !== '42P06') throw err;
    });
  }
  return {
    db,
    kind: 'postgres',
    schemaName,
    withSession,
    prepared: (text) => async (params) => [...(await client.unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare: true }))] as Row[],
    ping: async () => {
      await client`SELECT 1`;
    },
    close: () => client.end({ timeout: 5 }),
  };
}
