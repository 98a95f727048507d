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

/** What each code means, for people; fixed strings that never carry attacker input. */
const DEFAULT_MESSAGES: Record<ProtocolErrorCode, string> = {
  token_malformed: 'the token is not a valid Latchkey token (check for typos)',
  token_unknown: 'no such token',
  token_expired: 'the token has expired',
  token_used: 'the token has no uses left',
  token_revoked: 'the token was revoked',
  token_constraint_failed: 'the token does not allow this enrollment',
  server_key_mismatch: "the server's key does not match the pinned fingerprint",
  signature_invalid: 'signature verification failed',
  decrypt_failed: 'decryption failed',
  replay_detected: 'this message was already accepted',
  stale_message: 'the message is outside the accepted time or counter window',
  key_unknown: 'the sender key is not registered',
  key_expired: 'the sender key has expired',
  key_revoked: 'the sender key was revoked',
  agent_revoked: 'the agent was revoked',
  payload_invalid: 'the payload is invalid',
  payload_too_large: 'the payload is too large',
  rate_limited: 'too many requests; retry later',
  envelope_malformed: 'the message is malformed',
  version_unsupported: 'unsupported protocol version',
  recipient_mismatch: 'the message is addressed to another server key',
  hop_limit_exceeded: 'too many relay hops',
  credential_invalid: 'the credential is invalid or expired',
  name_taken: 'an agent with this name exists',
  name_invalid: 'agent names use letters, digits, - _ . and at most 128 bytes',
};

/** The one error type the protocol core throws. */
export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message?: string) {
    super(message ?? DEFAULT_MESSAGES[code]);
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
