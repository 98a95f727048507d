// Admin API credentials: `lka.<id>.<secret>`; id 9 random bytes, secret 32 random bytes, both
// base64url. The database keeps only SHA-256("latchkey/1 admin-key" 0x00 || secret), compared in
// constant time. The id lets the server find the row without scanning.
import { sha256 } from '@noble/hashes/sha2.js';
import { base64url } from 'jose';
import { constantTimeEqual } from '../../protocol/bytes.js';

export const ADMIN_SCOPES = ['tokens:write', 'agents:write', 'read'] as const;
export type AdminScope = (typeof ADMIN_SCOPES)[number] | '*';

const LABEL = new TextEncoder().encode('latchkey/1 admin-key\0');
const FORMAT = /^lka\.([A-Za-z0-9_-]{12})\.([A-Za-z0-9_-]{43})$/;

export interface AdminCredential {
  id: string;
  secret: Uint8Array;
}

export function generateAdminCredential(random: (n: number) => Uint8Array): { credential: string; id: string; secretHash: Uint8Array } {
  const id = base64url.encode(random(9));
  const secret = random(32);
  return { credential: `lka.${id}.${base64url.encode(secret)}`, id, secretHash: hashAdminSecret(secret) };
}

export function parseAdminCredential(value: string): AdminCredential | undefined {
  const m = FORMAT.exec(value.trim());
  if (!m) return undefined;
  try {
    const secret = base64url.decode(m[2]!);
    return secret.length === 32 ? { id: m[1]!, secret } : undefined;
  } catch {
    return undefined;
  }
}

export function hashAdminSecret(secret: Uint8Array): Uint8Array {
  const buf = new Uint8Array(LABEL.length + secret.length);
  buf.set(LABEL);
  buf.set(secret, LABEL.length);
  return sha256(buf);
}

export function adminSecretMatches(secret: Uint8Array, storedHash: Uint8Array): boolean {
  return constantTimeEqual(hashAdminSecret(secret), storedHash);
}

/** The one scope rule: `*` (bootstrap-grade) may do anything; any other scope must be granted by name. */
export function hasScope(granted: readonly string[], scope: AdminScope): boolean {
  return granted.includes('*') || granted.includes(scope);
}
