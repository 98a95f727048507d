// The server's long-term identity: an Ed25519 signing key and an X25519 agreement key
// (spec/PROTOCOL.md §Identities). Stored or passed as one secret string:
//   latchkey-identity-1:<base64url(ed25519 seed (32) || x25519 private key (32))>
// Several instances given the same string are one server.
import { base64url } from 'jose';
import type { CryptoBackend } from '../protocol/crypto/types.js';
import { fingerprintOf, keyIdOf } from '../protocol/keys.js';

const PREFIX = 'latchkey-identity-1:';

export interface ServerIdentity {
  signing: { privateKey: Uint8Array; publicKey: Uint8Array; kid: string };
  agreement: { privateKey: Uint8Array; publicKey: Uint8Array; kid: string };
  /** What tokens carry and agents pin. */
  fingerprint: string;
}

export class IdentityFormatError extends Error {}

export function encodeIdentitySecret(signingSeed: Uint8Array, agreementKey: Uint8Array): string {
  const raw = new Uint8Array(64);
  raw.set(signingSeed, 0);
  raw.set(agreementKey, 32);
  return PREFIX + base64url.encode(raw);
}

export async function decodeIdentitySecret(crypto: CryptoBackend, secret: string): Promise<ServerIdentity> {
  const text = secret.trim();
  if (!text.startsWith(PREFIX)) throw new IdentityFormatError(`server identity must start with ${PREFIX}`);
  let raw: Uint8Array;
  try {
    raw = base64url.decode(text.slice(PREFIX.length));
  } catch {
    throw new IdentityFormatError('server identity is not valid base64url');
  }
  if (raw.length !== 64) throw new IdentityFormatError('server identity has the wrong length');
  return deriveIdentity(crypto, raw.slice(0, 32), raw.slice(32));
}

export async function deriveIdentity(crypto: CryptoBackend, signingSeed: Uint8Array, agreementKey: Uint8Array): Promise<ServerIdentity> {
  const sigPub = await crypto.ed25519PublicKey(signingSeed);
  const kxPub = await crypto.x25519PublicKey(agreementKey);
  return {
    signing: { privateKey: signingSeed, publicKey: sigPub, kid: keyIdOf('ed25519', sigPub) },
    agreement: { privateKey: agreementKey, publicKey: kxPub, kid: keyIdOf('x25519', kxPub) },
    fingerprint: fingerprintOf(sigPub, kxPub),
  };
}

export async function generateIdentitySecret(random: (n: number) => Uint8Array): Promise<string> {
  return encodeIdentitySecret(random(32), random(32));
}
