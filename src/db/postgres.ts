// PostgreSQL through postgres.js: the Node server with DATABASE_URL, and the Worker via Hyperdrive.
//
// Every call has a deadline, so an outage (a database that is down, restarting, or silently gone
// from the network) turns into a prompt DatabaseUnavailableError (HTTP 503 `unavailable`), never a
// request that hangs: connecting is bounded by connect_timeout; each statement, whether it waits for
// a pooled connection or for the server, by `queryTimeoutMs` on the client (the server also stops
// runaway statements and abandoned transactions itself: statement_timeout and
// idle_in_transaction_session_timeout); a whole transaction by `transactionTimeoutMs`; ping (readiness)
// by `pingTimeoutMs`. A statement abandoned at its deadline is never reported as done: a caller only
// answers success (a receipt) after its transaction resolved, i.e. committed.
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { checkSchemaName, DatabaseConfigError, type Database, type Db, type Row, type SqlExecutor } from './database.js';
import { DatabaseUnavailableError } from './faults.js';
import * as schema from './schema.js';

export const DEFAULT_DEADLINES = {
  connectTimeoutSeconds: 3,
  queryTimeoutMs: 5_000,
  transactionTimeoutMs: 10_000,
  pingTimeoutMs: 1_000,
  /** Server side: the longest one statement may run, and a transaction may sit idle. */
  statementTimeoutMs: 30_000,
  idleInTransactionTimeoutMs: 30_000,
};
export type Deadlines = typeof DEFAULT_DEADLINES;

export interface PostgresOptions {
  url: string;
  /** Schema for every table (created if missing); default `public`. */
  schema?: string | undefined;
  /** Pool size. */
  maxConnections?: number | undefined;
  deadlines?: Partial<Deadlines> | undefined;
}

type Settle = (x: unknown) => void;
type Pending = { resolve: Settle; reject: Settle };

/**
 * A stall of this process (its event loop blocked: an overloaded machine, a long synchronous task)
 * longer than this is not charged to the database.
 */
const STALL_MS = 200;

/**
 * Calls `expire` once the database has had `ms` to answer, measured so that a slow process is not
 * mistaken for an unavailable database (an honest request answered 503): the verdict waits one turn
 * of the event loop (setImmediate runs after the poll phase has read pending I/O), so an answer that
 * arrived while the loop was blocked is taken first; and when the timer fired late, the time the loop
 * was stalled is granted again. A database that does not answer while this process runs normally
 * still expires on time. Returns the cancel function.
 */
function deadline(ms: number, expire: () => void): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let immediate: ReturnType<typeof setImmediate> | undefined;
  let cancelled = false;
  const arm = (wait: number) => {
    const due = performance.now() + wait;
    timer = setTimeout(() => {
      const late = performance.now() - due;
      // Not unref'd: an unref'd immediate lets the loop sleep in poll until unrelated I/O arrives.
      immediate = setImmediate(() => {
        if (cancelled) return;
        if (late > STALL_MS) arm(Math.min(late, ms));
        else expire();
      });
    }, wait);
    timer.unref?.();
  };
  arm(ms);
  return () => {
    cancelled = true;
    clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
  };
}

/**
 * Rejects a postgres.js query with DatabaseUnavailableError if it has not settled after `ms` (see
 * deadline). The query object is returned as is (drizzle chains `.values()` on it); its own settle
 * functions are wrapped so the timer is cleared, without calling `then` (which would start it early).
 */
function withDeadline<Q extends object>(query: Q, ms: number, load?: InFlight): Q {
  const q = query as unknown as Pending;
  const { resolve, reject } = q;
  const cancel = deadline(ms, () => reject(new DatabaseUnavailableError('database did not answer in time')));
  if (load) load.statements++;
  let settled = false;
  const done = () => {
    cancel();
    if (load && !settled) load.statements--;
    settled = true;
  };
  q.resolve = (x) => (done(), resolve(x));
  q.reject = (x) => (done(), reject(x));
  return query;
}

/** Statements sent and not yet answered (GET /metrics: database_statements_in_flight). */
interface InFlight {
  statements: number;
}

/** A promise that rejects with DatabaseUnavailableError after `ms` (see deadline) unless `p` settles first. */
function race<T>(p: Promise<T>, ms: number): Promise<T> {
  let cancel: (() => void) | undefined;
  const late = new Promise<never>((_, reject) => {
    cancel = deadline(ms, () => reject(new DatabaseUnavailableError('database did not answer in time')));
  });
  p.catch(() => {}); // a late failure after the deadline is not an unhandled rejection
  return Promise.race([p, late]).finally(() => cancel?.());
}

/**
 * The client drizzle sees: `unsafe` (every drizzle statement) gets a deadline, `begin`/`savepoint`
 * get one for the whole transaction, and the transaction's own client is wrapped the same way.
 */
function withDeadlines(sql: postgres.Sql, d: Deadlines, load: InFlight): postgres.Sql {
  return new Proxy(sql, {
    get(target, prop, receiver) {
      if (prop === 'unsafe') {
        return (...args: Parameters<postgres.Sql['unsafe']>) => withDeadline(target.unsafe(...args), d.queryTimeoutMs, load);
      }
      if (prop === 'begin' || prop === 'savepoint') {
        return (...args: unknown[]) => {
          const fn = args.pop() as (tx: postgres.Sql) => unknown;
          const start = (target as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[prop]!;
          return race(
            start.call(target, ...args, (tx: postgres.Sql) => fn(withDeadlines(tx, d, load))),
            d.transactionTimeoutMs,
          );
        };
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
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
  const d: Deadlines = { ...DEFAULT_DEADLINES, ...opts.deadlines };
  const client = postgres(opts.url, {
    max: opts.maxConnections ?? 10, // = `max` below
    onnotice: () => {},
    connect_timeout: d.connectTimeoutSeconds,
    // Idle connections are closed (and reopened on demand), so one broken by an outage is not kept.
    idle_timeout: 60,
    connection: {
      search_path: schemaName,
      application_name: 'latchkey',
      statement_timeout: d.statementTimeoutMs,
      idle_in_transaction_session_timeout: d.idleInTransactionTimeoutMs,
    },
  });
  const load: InFlight = { statements: 0 };
  const max = opts.maxConnections ?? 10;
  const db = drizzle(withDeadlines(client, d, load), { schema }) as unknown as Db;
  // Raw sessions (migrations, advisory locks) are not bounded: a migration may take long. Reserving
  // the connection is, like any other wait for the database.
  const withSession: SqlExecutor['withSession'] = async (fn) => {
    const reserving = client.reserve();
    const conn = await race(reserving, d.transactionTimeoutMs).catch((err: unknown) => {
      void reserving.then(
        (late) => late.release(),
        () => {},
      );
      throw err;
    });
    try {
      await conn.unsafe('SET statement_timeout TO 0');
      return await fn(async (text) => [...(await conn.unsafe(text))] as Row[]);
    } finally {
      await conn.unsafe('RESET statement_timeout').catch(() => {});
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
    prepared: (text) => async (params) =>
      [
        ...(await withDeadline(
          client.unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare: true }),
          d.queryTimeoutMs,
          load,
        )),
      ] as Row[],
    ping: async () => {
      await withDeadline(client`SELECT 1`, d.pingTimeoutMs, load);
    },
    load: () => ({ connections: max, statements: load.statements }),
    close: () => client.end({ timeout: 5 }),
  };
}
