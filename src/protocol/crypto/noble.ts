// The reference backend: @noble only, runs anywhere (spec/PROTOCOL.md §Primitives).
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { CryptoError } from '../errors.js';
import type { CryptoBackend } from './types.js';

function need(bytes: Uint8Array, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) throw new CryptoError(`${what} must be ${length} bytes`);
}

/**
 * Rejects what strict RFC 8032 plus our policy rejects before any curve arithmetic: wrong lengths,
 * non-canonical or small-order public keys. (S >= L is rejected by noble with zip215: false.)
 */
export function acceptableEd25519PublicKey(publicKey: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  try {
    // Canonical encoding only: with zip215 = false, fromBytes refuses y >= p and x = 0 with the sign
    // bit set, the only non-canonical encodings of a point (RFC 8032 §5.1.3), so no re-encoding
    // (a field inversion: most of this check's cost on an import of thousands of keys) is needed.
    const point = ed25519.Point.fromBytes(publicKey, false);
    return !point.isSmallOrder();
  } catch {
    return false;
  }
}

function allZero(b: Uint8Array): boolean {
  let acc = 0;
  for (const x of b) acc |= x;
  return acc === 0;
}

export function checkSharedSecret(shared: Uint8Array): Uint8Array {
  if (allZero(shared)) throw new CryptoError('low-order X25519 public key');
  return shared;
}

export const nobleCrypto: CryptoBackend = {
  name: 'noble',
  async ed25519PublicKey(seed) {
    need(seed, 32, 'Ed25519 seed');
    return ed25519.getPublicKey(seed);
  },
  async ed25519Sign(seed, message) {
    need(seed, 32, 'Ed25519 seed');
    return ed25519.sign(message, seed);
  },
  async ed25519Verify(publicKey, message, signature) {
    if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
    if (!acceptableEd25519PublicKey(publicKey)) return false;
    try {
      return ed25519.verify(signature, message, publicKey, { zip215: false });
    } catch {
      return false;
    }
  },
  hmacSha256: (key, data) => hmac(sha256, key, data),
  sha256: (data) => sha256(data),
  async x25519PublicKey(privateKey) {
    need(privateKey, 32, 'X25519 private key');
    return x25519.getPublicKey(privateKey);
  },
  async x25519(privateKey, peerPublicKey) {
    need(privateKey, 32, 'X25519 private key');
    need(peerPublicKey, 32, 'X25519 public key');
    let shared: Uint8Array;
    try {
      shared = x25519.getSharedSecret(privateKey, peerPublicKey);
    } catch {
      throw new CryptoError('low-order X25519 public key');
    }
    return checkSharedSecret(shared);
  },
  async aeadSeal(key, nonce, aad, plaintext) {
    need(key, 32, 'AEAD key');
    need(nonce, 12, 'AEAD nonce');
    return chacha20poly1305(key, nonce, aad).encrypt(plaintext);
  },
  async aeadOpen(key, nonce, aad, sealed) {
    need(key, 32, 'AEAD key');
    need(nonce, 12, 'AEAD nonce');
    if (sealed.length < 16) return null;
    try {
      return chacha20poly1305(key, nonce, aad).decrypt(sealed);
    } catch {
      return null;
    }
  },
};
