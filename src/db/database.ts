// What the rest of Latchkey sees of its database, whichever driver is underneath.
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import type * as schema from './schema.js';

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
export type Row = Record<string, unknown>;

/** Raw SQL on one session (advisory locks, migrations, test set-up). */
export interface SqlExecutor {
  withSession<T>(fn: (run: (sql: string) => Promise<Row[]>) => Promise<T>): Promise<T>;
}

export interface Database extends SqlExecutor {
  readonly db: Db;
  readonly kind: 'pglite' | 'postgres';
  /** The schema tables live in (search_path). */
  readonly schemaName: string;
  /**
   * A server-side prepared statement for a hot path: parsed and planned once per connection, then
   * one round trip per call. Placeholders are $1…$n; cast each one in the text.
   */
  prepared(text: string): (params: readonly unknown[]) => Promise<Row[]>;
  ping(): Promise<void>;
  /**
   * How busy the database client is, for /metrics: the most connections it opens (pool size; 1 for
   * PGlite, a single session) and the statements sent and not yet answered.
   */
  load?(): { connections: number; statements: number };
  close(): Promise<void>;
}

/** The rows of a raw `execute`, whichever driver ran it (postgres.js answers an array; PGlite { rows }). */
export function rowsOf<T = Row>(result: unknown): T[] {
  return Array.isArray(result) ? (result as T[]) : ((result as { rows?: T[] }).rows ?? []);
}

export class DatabaseConfigError extends Error {}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export function checkSchemaName(name: string): string {
  if (!SCHEMA_NAME.test(name)) throw new DatabaseConfigError('schema name must be a lower-case SQL identifier');
  return name;
}
