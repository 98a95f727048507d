// Enrollment tokens (spec/PROTOCOL.md §Enrollment token).
//   token = "lk1_" || b64u( token id (16) || secret (32) || server fingerprint hash (32) || checksum (4) )
//   checksum = SHA-256(label("latchkey/1 token-checksum") || first 80 bytes)[0..4]
// 116 characters, copy-pasteable (base64url has no characters a shell or URL would mangle). The
// fingerprint pins the server before any request; the checksum catches typos before any request.
// The server stores only hashTokenSecret(token id, secret).
import { sha256 } from '@noble/hashes/sha2.js';
import { b64u, concatBytes, constantTimeEqual, fromB64u, label } from './bytes.js';
import { ProtocolError } from './errors.js';

export const TOKEN_PREFIX = 'lk1_';
const ID_LEN = 16;
const SECRET_LEN = 32;
const FP_LEN = 32;
const SUM_LEN = 4;
const BODY_LEN = ID_LEN + SECRET_LEN + FP_LEN;
const SUM_LABEL = label('latchkey/1 token-checksum');
const SECRET_LABEL = label('latchkey/1 token-secret');
const FINGERPRINT = /^sha256:([A-Za-z0-9_-]{43})$/;

export interface EnrollmentToken {
  /** b64u of the 16-byte id: the database key, safe to show and log. */
  tokenId: string;
  secret: Uint8Array;
  /** `sha256:…`, compared with the fingerprint of the server's keys before sending anything secret. */
  serverFingerprint: string;
}

const checksum = (body: Uint8Array) => sha256(concatBytes(SUM_LABEL, body)).subarray(0, SUM_LEN);

export function fingerprintBytes(fingerprint: string): Uint8Array {
  const m = FINGERPRINT.exec(fingerprint);
  if (!m) throw new ProtocolError('token_malformed', 'invalid server fingerprint');
  return fromB64u(m[1]!, 'token_malformed');
}

export function formatToken(t: EnrollmentToken): string {
  const id = fromB64u(t.tokenId, 'token_malformed');
  if (id.length !== ID_LEN || t.secret.length !== SECRET_LEN) throw new ProtocolError('token_malformed', 'wrong token field length');
  const body = concatBytes(id, t.secret, fingerprintBytes(t.serverFingerprint));
  return TOKEN_PREFIX + b64u(concatBytes(body, checksum(body)));
}

/** Parses and checks a token string; every failure is `token_malformed` (typos included). */
export function parseToken(text: string): EnrollmentToken {
  if (typeof text !== 'string') throw new ProtocolError('token_malformed', 'token must be a string');
  const s = text.trim();
  if (!s.startsWith(TOKEN_PREFIX)) throw new ProtocolError('token_malformed', `token must start with ${TOKEN_PREFIX}`);
  const raw = fromB64u(s.slice(TOKEN_PREFIX.length), 'token_malformed');
  if (raw.length !== BODY_LEN + SUM_LEN) throw new ProtocolError('token_malformed', 'token has the wrong length');
  const body = raw.subarray(0, BODY_LEN);
  if (!constantTimeEqual(checksum(body), raw.subarray(BODY_LEN)))
    throw new ProtocolError('token_malformed', 'token checksum does not match (typo?)');
  return {
    tokenId: b64u(body.subarray(0, ID_LEN)),
    secret: body.slice(ID_LEN, ID_LEN + SECRET_LEN),
    serverFingerprint: `sha256:${b64u(body.subarray(ID_LEN + SECRET_LEN))}`,
  };
}

/** What the server stores: binds the secret to its token id, so hashes cannot be swapped between rows. */
export function hashTokenSecret(tokenId: string, secret: Uint8Array): Uint8Array {
  return sha256(concatBytes(SECRET_LABEL, fromB64u(tokenId, 'token_malformed'), secret));
}

export function tokenSecretMatches(tokenId: string, secret: Uint8Array, storedHash: Uint8Array): boolean {
  return constantTimeEqual(hashTokenSecret(tokenId, secret), storedHash);
}

/** A fresh token for a server: 128-bit id, 256-bit secret. */
export function generateToken(
  random: (n: number) => Uint8Array,
  serverFingerprint: string,
): { token: string; tokenId: string; secretHash: Uint8Array } {
  const tokenId = b64u(random(ID_LEN));
  const secret = random(SECRET_LEN);
  return { token: formatToken({ tokenId, secret, serverFingerprint }), tokenId, secretHash: hashTokenSecret(tokenId, secret) };
}
