// The uniform error layer: every failure a client sees is `{"error":{"code","message"}}` with a
// stable code and a 4xx/5xx status. Protocol codes come from src/protocol/errors.ts; the rest are
// HTTP-level codes listed here. Messages are fixed strings, never attacker input or secrets.
import type { ProtocolErrorCode } from '../protocol/errors.js';

export const HTTP_ERROR_CODES = [
  'not_found',
  'method_not_allowed',
  'request_invalid',
  'unauthorized',
  'forbidden',
  'conflict',
  'unsupported_media_type',
  'unavailable',
  'internal_error',
] as const;

export type HttpErrorCode = (typeof HTTP_ERROR_CODES)[number];
export type ErrorCode = ProtocolErrorCode | HttpErrorCode;

/** HTTP status for each code that has a fixed one. Unlisted codes are 400. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  not_found: 404,
  method_not_allowed: 405,
  unauthorized: 401,
  forbidden: 403,
  conflict: 409,
  unsupported_media_type: 415,
  unavailable: 503,
  internal_error: 500,
  payload_too_large: 413,
  rate_limited: 429,
  token_unknown: 401,
  token_expired: 401,
  token_used: 409,
  token_revoked: 401,
  token_constraint_failed: 403,
  signature_invalid: 401,
  decrypt_failed: 400,
  key_unknown: 401,
  key_expired: 401,
  key_revoked: 401,
  agent_revoked: 403,
  credential_invalid: 401,
  replay_detected: 409,
  name_taken: 409,
};

export function statusFor(code: ErrorCode): number {
  return STATUS[code] ?? 400;
}

export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  constructor(code: ErrorCode, message?: string, status?: number) {
    super(message ?? code);
    this.name = 'ApiError';
    this.code = code;
    this.status = status ?? statusFor(code);
  }
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}
