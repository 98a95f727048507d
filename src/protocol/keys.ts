// Identities (spec/PROTOCOL.md §Identities). Every party owns one Ed25519 signing key and one
// X25519 agreement key.
//   key id      = b64u(SHA-256(label("latchkey/1 kid") || alg || public key)[0..16])   alg: 0x01 Ed25519, 0x02 X25519
//   fingerprint = "sha256:" || b64u(SHA-256(label("latchkey/1 fingerprint") || ed25519 pub (32) || x25519 pub (32)))
import { sha256 } from '@noble/hashes/sha2.js';
import { b64u, concatBytes, label } from './bytes.js';
import type { ProtocolContext } from './crypto/types.js';

export type KeyAlg = 'ed25519' | 'x25519';
const ALG_BYTE: Record<KeyAlg, number> = { ed25519: 0x01, x25519: 0x02 };
const KID_LABEL = label('latchkey/1 kid');
const FP_LABEL = label('latchkey/1 fingerprint');

export const KEY_LENGTH = 32;
export const SIGNATURE_LENGTH = 64;

export function keyIdOf(alg: KeyAlg, publicKey: Uint8Array): string {
  return b64u(sha256(concatBytes(KID_LABEL, new Uint8Array([ALG_BYTE[alg]]), publicKey)).subarray(0, 16));
}

export function fingerprintOf(signingPublicKey: Uint8Array, agreementPublicKey: Uint8Array): string {
  return `sha256:${b64u(sha256(concatBytes(FP_LABEL, signingPublicKey, agreementPublicKey)))}`;
}

/** One party's key pair set, private halves included. */
export interface KeySet {
  signing: { privateKey: Uint8Array; publicKey: Uint8Array; kid: string };
  agreement: { privateKey: Uint8Array; publicKey: Uint8Array; kid: string };
}

/** The public half of a KeySet. */
export interface PublicKeySet {
  signing: { publicKey: Uint8Array; kid: string };
  agreement: { publicKey: Uint8Array; kid: string };
}

export async function keySetFromPrivate(
  ctx: Pick<ProtocolContext, 'crypto'>,
  signingSeed: Uint8Array,
  agreementKey: Uint8Array,
): Promise<KeySet> {
  const sigPub = await ctx.crypto.ed25519PublicKey(signingSeed);
  const kxPub = await ctx.crypto.x25519PublicKey(agreementKey);
  return {
    signing: { privateKey: signingSeed, publicKey: sigPub, kid: keyIdOf('ed25519', sigPub) },
    agreement: { privateKey: agreementKey, publicKey: kxPub, kid: keyIdOf('x25519', kxPub) },
  };
}

/** Fresh keys from the context's randomness. */
export function generateKeySet(ctx: ProtocolContext): Promise<KeySet> {
  return keySetFromPrivate(ctx, ctx.random(32), ctx.random(32));
}

export function publicKeySet(keys: KeySet): PublicKeySet {
  return {
    signing: { publicKey: keys.signing.publicKey, kid: keys.signing.kid },
    agreement: { publicKey: keys.agreement.publicKey, kid: keys.agreement.kid },
  };
}
