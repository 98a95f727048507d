// Verified credentials remembered by their exact text (spec §7, §11). An agent's or a relay's
// credential comes back unchanged with every envelope or layer it sends until it renews: verifying
// the JWT (an Ed25519 signature, JSON, claims) once per text and issuer is enough. Expiry is still
// judged at every use, exactly as verifyCredential judges it; a credential is remembered only under
// the issuer key and fingerprint it verified with, so a key set no longer trusted is never answered
// from the cache. What depends on state (revocation, role, the binding to a key) stays with the
// caller, checked at every use. Only successes are kept: a forgery is verified (and refused) each time.
import { b64u } from './bytes.js';
import { verifyCredential, type CredentialClaims } from './credential.js';
import { ProtocolError } from './errors.js';
import type { Lru } from './lru.js';

/** A bounded cache for verifiedCredential (the caller chooses its size: one per process). */
export type CredentialCache = Lru<string, CredentialClaims>;

/** verifyCredential, answered from `cache` when this exact text verified before under this issuer. */
export async function verifiedCredential(
  cache: CredentialCache,
  jwt: string,
  issuer: { publicKey: Uint8Array; kid: string },
  fingerprint: string,
  nowMs: number,
): Promise<CredentialClaims> {
  const key = `${b64u(issuer.publicKey)} ${issuer.kid} ${fingerprint} ${jwt}`;
  const hit = cache.get(key);
  if (hit) {
    // As jose judges `exp` (jwtVerify, no tolerance): expired once exp <= now in whole seconds.
    if (hit.exp <= Math.floor(nowMs / 1000)) {
      cache.delete(key);
      throw new ProtocolError('credential_invalid');
    }
    return hit;
  }
  const claims = await verifyCredential(jwt, issuer, fingerprint, nowMs);
  cache.set(key, claims);
  return claims;
}
