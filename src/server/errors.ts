// The uniform error layer: every failure a client sees is `{"error":{"code","message"},"receipt"?}`
// with the status of its code in the one table (src/protocol/errors.ts), and `Retry-After` when the
// error carries one. Services and routes throw LatchkeyError (ApiError, ProtocolError); the app's
// onError is the one place that calls errorResponse. Messages are fixed strings, never attacker
// input or secrets.
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { DATABASE_RETRY_AFTER_SECONDS, isDatabaseFault } from '../db/faults.js';
import { LatchkeyError, type ErrorCode } from '../protocol/errors.js';

export { ERRORS, ERROR_CODES, HTTP_ERROR_CODES, isErrorCode, LatchkeyError, statusFor } from '../protocol/errors.js';
export type { ErrorCode, HttpErrorCode, LatchkeyErrorOptions } from '../protocol/errors.js';

/** The server's name for the base error; `new ApiError(code, message?, { retryAfterSeconds, receipt })`. */
export const ApiError = LatchkeyError;
export type ApiError = LatchkeyError;

export interface ErrorBody {
  error: { code: ErrorCode; message: string };
  /** A signed rejection receipt (spec §10), when the error answers a registered sender. */
  receipt?: unknown;
}

export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

/** The wire body of an error: the same for a single answer and for one item of a batch. */
export function errorBodyOf(err: LatchkeyError): ErrorBody {
  return { ...errorBody(err.code, err.message), ...(err.receipt !== undefined ? { receipt: err.receipt } : {}) };
}

/**
 * Any thrown value as the error a client may see. Hono's own 4xx (malformed JSON, body too large)
 * get their codes; an unreachable database is `unavailable` (503, the rule for infrastructure
 * faults); anything else that is not a LatchkeyError is a bug, answered as `internal_error`.
 * `internal` tells the caller to log it: its message and stack never leave the server.
 */
export function toLatchkeyError(err: unknown): { error: LatchkeyError; internal: boolean } {
  if (err instanceof LatchkeyError) {
    if (err.code !== 'internal_error') return { error: err, internal: false };
    return { error: new LatchkeyError('internal_error'), internal: true };
  }
  if (err instanceof HTTPException && err.status < 500) {
    return {
      error:
        err.status === 413
          ? new LatchkeyError('payload_too_large', 'request body too large')
          : new LatchkeyError('request_invalid', 'malformed request'),
      internal: false,
    };
  }
  if (isDatabaseFault(err))
    return {
      error: new LatchkeyError('unavailable', 'the database is unavailable; retry later', {
        retryAfterSeconds: DATABASE_RETRY_AFTER_SECONDS,
      }),
      internal: true,
    };
  return { error: new LatchkeyError('internal_error'), internal: true };
}

/** The one mapping of an error to HTTP. */
export function errorResponse(c: Context, err: LatchkeyError): Response {
  const headers: Record<string, string> =
    err.retryAfterSeconds !== undefined ? { 'Retry-After': String(Math.max(1, Math.ceil(err.retryAfterSeconds))) } : {};
  return c.json(errorBodyOf(err), err.status as ContentfulStatusCode, headers);
}

/**
 * 413 for a body over its limit, answered before the body was read: the connection is closed after the
 * answer, so a client does not send its next request on a socket still carrying the rest of this body.
 */
export function payloadTooLarge(c: Context): Response {
  c.header('connection', 'close');
  return errorResponse(c, new LatchkeyError('payload_too_large', 'request body too large'));
}
