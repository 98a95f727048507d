// Database faults that are the infrastructure's, not the caller's: the database is unreachable,
// restarting, out of connections, or did not answer within its deadline. The HTTP layer answers them
// 503 `unavailable` with Retry-After, never 500, and never charges or audits them as the caller's
// failure. Anything else (a constraint, a bad value) stays what it is.

/** A database call that did not complete within its deadline (see postgres.ts). */
export class DatabaseUnavailableError extends Error {
  constructor(message = 'database unavailable') {
    super(message);
    this.name = 'DatabaseUnavailableError';
  }
}

/** Seconds a client should wait before retrying after a database fault. */
export const DATABASE_RETRY_AFTER_SECONDS = 5;

/** Node socket errors and postgres.js connection errors (its `code` for those is not a SQLSTATE). */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
]);

/**
 * SQLSTATEs that mean "not now" rather than "not this": connection exceptions (class 08), too many
 * connections and other resource limits (53), shutdown/crash/startup (57P01-57P03), statement or
 * idle-in-transaction timeouts (57014, 25P03), serialization failure and deadlock (40001, 40P01).
 */
function isTransientSqlState(code: string): boolean {
  return code.startsWith('08') || code.startsWith('53') || ['57P01', '57P02', '57P03', '57014', '25P03', '40001', '40P01'].includes(code);
}

/** True when `err` (or an error it wraps, as drizzle's DrizzleQueryError does) is an infrastructure fault. */
export function isDatabaseFault(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof DatabaseUnavailableError) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (CONNECTION_CODES.has(code) || (/^[0-9A-Z]{5}$/.test(code) && isTransientSqlState(code)))) return true;
  }
  return false;
}
