// Stable error codes (spec/PROTOCOL.md §15), each with its one HTTP status. Codes are public contract:
// never rename or reuse one. This table is the single source: the server maps errors to HTTP from it,
// the spec's error table and the OpenAPI error responses are generated from it (`npm run errors`),
// and test/server/error-table.test.ts fails when they disagree. It is data, so the core stays pure.
// Messages never contain attacker input, secrets, keys or plaintext; tests assert codes, not messages.

interface ErrorSpec {
  /** The HTTP status every layer answers this code with. */
  readonly status: number;
  /** What the code means, for the spec's table. */
  readonly meaning: string;
  /** The default message; a fixed string that never carries attacker input. */
  readonly message: string;
}

/** Codes the protocol itself defines (spec/PROTOCOL.md §15). Do NOT reorder or renumber. */
const PROTOCOL_ERRORS = {
  token_malformed: {
    status: 400,
    meaning: 'not a well-formed token (prefix, base64url, length, checksum)',
    message: 'the token is not a valid Latchkey token (check for typos)',
  },
  token_unknown: {
    status: 401,
    meaning: 'no such token, or a wrong secret (enrollment); no token with this id (admin revoke)',
    message: 'no such token',
  },
  token_expired: { status: 401, meaning: "the token's time is up", message: 'the token has expired' },
  token_used: { status: 409, meaning: 'no uses left (also the loser of a race)', message: 'the token has no uses left' },
  token_revoked: { status: 401, meaning: 'an admin revoked it', message: 'the token was revoked' },
  token_constraint_failed: {
    status: 403,
    meaning: 'source address or name not allowed by the token',
    message: 'the token does not allow this enrollment',
  },
  server_key_mismatch: {
    status: 400,
    meaning: "the server's keys do not hash to the pinned fingerprint",
    message: "the server's key does not match the pinned fingerprint",
  },
  signature_invalid: {
    status: 401,
    meaning: 'a signature or proof of possession does not verify',
    message: 'signature verification failed',
  },
  decrypt_failed: { status: 400, meaning: 'HPKE open failed (no detail is given)', message: 'decryption failed' },
  replay_detected: {
    status: 409,
    meaning: 'this message id was already accepted for this key',
    message: 'this message was already accepted',
  },
  stale_message: {
    status: 400,
    meaning: 'outside the time window or below the counter window',
    message: 'the message is outside the accepted time or counter window',
  },
  key_unknown: {
    status: 401,
    meaning: 'sender key not registered (messages); no agent key with this id (admin revoke)',
    message: 'the sender key is not registered',
  },
  key_expired: { status: 401, meaning: 'sender key expired or superseded', message: 'the sender key has expired' },
  key_revoked: { status: 401, meaning: 'sender key revoked', message: 'the sender key was revoked' },
  agent_revoked: { status: 403, meaning: "the sender's agent is revoked", message: 'the agent was revoked' },
  payload_invalid: {
    status: 400,
    meaning: 'decrypted content invalid (not JSON, not the GLPI schema, wrong type)',
    message: 'the payload is invalid',
  },
  payload_too_large: { status: 413, meaning: 'body or decompressed content over the limit', message: 'the payload is too large' },
  rate_limited: {
    status: 429,
    meaning: 'budget exceeded; the `Retry-After` header says when to try again',
    message: 'too many requests; retry later',
  },
  envelope_malformed: { status: 400, meaning: 'the wire object is not well-formed', message: 'the message is malformed' },
  version_unsupported: { status: 400, meaning: 'unknown protocol version', message: 'unsupported protocol version' },
  recipient_mismatch: {
    status: 400,
    meaning: 'addressed to another server key',
    message: 'the message is addressed to another server key',
  },
  hop_limit_exceeded: { status: 400, meaning: 'too many relay layers', message: 'too many relay hops' },
  credential_invalid: {
    status: 401,
    meaning: 'credential signature, issuer, expiry or shape wrong',
    message: 'the credential is invalid or expired',
  },
  relay_full: {
    status: 507,
    meaning: "the relay's spool is full; the `Retry-After` header says when to try again (nothing was dropped)",
    message: 'the relay spool is full; retry later',
  },
  name_taken: { status: 409, meaning: 'agent name in use', message: 'an agent with this name exists' },
  name_invalid: {
    status: 400,
    meaning: 'agent name breaks the naming rule',
    message: 'agent names use letters, digits, - _ . and at most 128 bytes',
  },
  relay_not_authorized: {
    status: 403,
    meaning: 'a relay layer, or legacy-origin content (§11.2), from an identity whose role is not `relay`',
    message: 'the layer is not signed by a relay',
  },
  source_not_allowed: {
    status: 403,
    meaning:
      "the message comes from outside the sending agent's network (cidr of an imported or key-requested agent, §20), or from outside a relay's `--legacy-trust` (§11.2)",
    message: 'the agent may not send from this address',
  },
} as const satisfies Record<string, ErrorSpec>;

/** Codes of the HTTP layer around the protocol (admin API, routing, infrastructure). */
const HTTP_ERRORS = {
  not_found: { status: 404, meaning: 'no such route, or no such resource in the admin API', message: 'not found' },
  request_invalid: {
    status: 400,
    meaning: 'the request does not match the route (admin API validation, malformed JSON)',
    message: 'invalid request',
  },
  unauthorized: { status: 401, meaning: 'admin credential missing or wrong', message: 'admin credential required' },
  forbidden: { status: 403, meaning: "the admin credential lacks the route's scope", message: 'forbidden' },
  csrf_failed: {
    status: 403,
    meaning: "an admin console POST without its session's CSRF token, or from another origin",
    message: 'the request failed the console cross-site checks',
  },
  agent_not_revoked: {
    status: 409,
    meaning: 'an admin asked to delete an agent that is not revoked (revoke it first)',
    message: 'only a revoked agent can be deleted',
  },
  unsupported_media_type: {
    status: 415,
    meaning: 'the request body is not `application/json` (agent routes)',
    message: 'Content-Type must be application/json',
  },
  unavailable: { status: 503, meaning: 'an infrastructure fault (database unreachable); retry later', message: 'service unavailable' },
  internal_error: { status: 500, meaning: 'a bug; never with detail', message: 'internal error' },
} as const satisfies Record<string, ErrorSpec>;

export type ProtocolErrorCode = keyof typeof PROTOCOL_ERRORS;
export type HttpErrorCode = keyof typeof HTTP_ERRORS;
export type ErrorCode = ProtocolErrorCode | HttpErrorCode;

/** Every code, protocol codes first, in the spec's order. */
export const ERRORS: Readonly<Record<ErrorCode, ErrorSpec>> = { ...PROTOCOL_ERRORS, ...HTTP_ERRORS };
export const PROTOCOL_ERROR_CODES = Object.keys(PROTOCOL_ERRORS) as readonly ProtocolErrorCode[];
export const HTTP_ERROR_CODES = Object.keys(HTTP_ERRORS) as readonly HttpErrorCode[];
export const ERROR_CODES = Object.keys(ERRORS) as readonly ErrorCode[];

export function statusFor(code: ErrorCode): number {
  return ERRORS[code].status;
}

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERRORS, code);
}

export interface LatchkeyErrorOptions {
  /** Seconds the client should wait (`rate_limited`, `unavailable`): sent as `Retry-After`. */
  retryAfterSeconds?: number;
  /** A signed rejection receipt (spec §10), sent beside the error as `"receipt"`. */
  receipt?: unknown;
  cause?: unknown;
}

/**
 * The one base error every layer throws (jose's JOSEError, hono's HTTPException): a stable code, the
 * status from the table above, and what travels with it. The server's onError is the one place that
 * turns it into HTTP: `{"error":{"code","message"},"receipt"?}` with `Retry-After` when set.
 */
export class LatchkeyError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryAfterSeconds?: number;
  readonly receipt?: unknown;
  constructor(code: ErrorCode, message?: string, options: LatchkeyErrorOptions = {}) {
    super(message ?? ERRORS[code].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LatchkeyError';
    this.code = code;
    this.status = ERRORS[code].status;
    if (options.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds;
    if (options.receipt !== undefined) this.receipt = options.receipt;
  }
}

/** A failure the protocol defines: only protocol codes. */
export class ProtocolError extends LatchkeyError {
  declare readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message?: string, options?: LatchkeyErrorOptions) {
    super(code, message, options);
    this.name = 'ProtocolError';
  }
}

/**
 * Primitive-level failure (bad key length, all-zero shared secret). Callers map it to a protocol code;
 * one that escapes to HTTP is a bug, hence `internal_error` (500, its message is never sent).
 */
export class CryptoError extends LatchkeyError {
  constructor(message: string) {
    super('internal_error', message);
    this.name = 'CryptoError';
  }
}
