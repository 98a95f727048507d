// Stable error codes (spec/PROTOCOL.md §Errors). Codes are public contract: never rename or reuse one.
// Messages never contain attacker input, secrets, keys or plaintext; tests assert codes, not messages.

export const PROTOCOL_ERROR_CODES = [
  'token_malformed',
  'token_unknown',
  'token_expired',
  'token_used',
  'token_revoked',
  'token_constraint_failed',
  'server_key_mismatch',
  'signature_invalid',
  'decrypt_failed',
  'replay_detected',
  'stale_message',
  'key_unknown',
  'key_expired',
  'key_revoked',
  'agent_revoked',
  'payload_invalid',
  'payload_too_large',
  'rate_limited',
  'envelope_malformed',
  'version_unsupported',
  'recipient_mismatch',
  'hop_limit_exceeded',
  'credential_invalid',
  'name_taken',
  'name_invalid',
] as const;

export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number];

/** The one error type the protocol core throws. */
export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message?: string) {
    super(message ?? code);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

/** Primitive-level failure (bad key length, all-zero shared secret). Callers map it to a protocol code. */
export class CryptoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CryptoError';
  }
}
