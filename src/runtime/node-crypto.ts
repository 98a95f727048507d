// A Node-only backend on node:crypto with cached KeyObjects: on this machine Ed25519 verify and
// X25519 run 2–4× faster than through WebCrypto (spec/PROTOCOL.md §Primitives; measured in
// `npm run bench`). Decisions equal the noble reference's: the same pre-checks run first (small-order
// and non-canonical Ed25519 keys, S ≥ L, all-zero X25519 secrets), and the differential test holds
// it to noble byte for byte. Workers run the webcrypto backend (src/protocol/crypto/webcrypto.ts).
import { createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman, sign, verify, type KeyObject } from 'node:crypto';
import { CryptoError } from '../protocol/errors.js';
import { bytesKey } from '../protocol/bytes.js';
import { Lru } from '../protocol/lru.js';
import { canonicalS, PRIVATE_KEY_CACHE_SIZE } from '../protocol/crypto/webcrypto.js';
import { acceptableEd25519PublicKey, checkSharedSecret, nobleCrypto } from '../protocol/crypto/noble.js';
import type { CryptoBackend } from '../protocol/crypto/types.js';
import { nodeChaCha20Poly1305 } from './node-aead.js';

const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');

function need(bytes: Uint8Array, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) throw new CryptoError(`${what} must be ${length} bytes`);
}

const der = (prefix: Buffer, key: Uint8Array) => Buffer.concat([prefix, key]);
/** Public keys go in as JWK: ~12× cheaper than SPKI DER in Node 20 (14 µs against 174 µs here). */
const jwkPublic = (crv: 'Ed25519' | 'X25519', key: Uint8Array) =>
  createPublicKey({ key: { kty: 'OKP', crv, x: Buffer.from(key).toString('base64url') }, format: 'jwk' });
const rawPublic = (k: KeyObject) => new Uint8Array(k.export({ format: 'der', type: 'spki' }).subarray(-32));

/**
 * A bounded cache of node:crypto keys by their bytes. Imports here are synchronous, so a hit is a
 * plain lookup: no promise, no await, no microtask per signature or DH.
 */
class SyncKeyCache<T> {
  private readonly lru: Lru<string, T>;
  constructor(size: number) {
    this.lru = new Lru(size);
  }
  get(bytes: Uint8Array, make: (bytes: Uint8Array) => T): T {
    const id = bytesKey(bytes);
    let hit = this.lru.get(id);
    if (hit === undefined) {
      hit = make(bytes);
      this.lru.set(id, hit);
    }
    return hit;
  }
}

// As the webcrypto backend sizes them (webcrypto.ts): a fleet's verification keys; our own few private keys.
const PUBLIC_KEY_CACHE_SIZE = 16_384;

const importEdPrivate = (seed: Uint8Array) => createPrivateKey({ key: der(ED25519_PKCS8, seed), format: 'der', type: 'pkcs8' });
const importXPrivate = (k: Uint8Array) => createPrivateKey({ key: der(X25519_PKCS8, k), format: 'der', type: 'pkcs8' });
/** The verification key, or null for a key noble refuses (small order, non-canonical): one entry, one lookup. */
const importEdVerifier = (publicKey: Uint8Array): KeyObject | null => {
  if (!acceptableEd25519PublicKey(publicKey)) return null;
  try {
    return jwkPublic('Ed25519', publicKey);
  } catch {
    return null;
  }
};

export function createNodeCrypto(): CryptoBackend {
  const edPriv = new SyncKeyCache<KeyObject>(PRIVATE_KEY_CACHE_SIZE);
  const edPub = new SyncKeyCache<KeyObject | null>(PUBLIC_KEY_CACHE_SIZE);
  const xPriv = new SyncKeyCache<KeyObject>(PRIVATE_KEY_CACHE_SIZE);

  return {
    name: 'node',
    ed25519PublicKey: (seed) => nobleCrypto.ed25519PublicKey(seed),
    hmacSha256: (key, data) => new Uint8Array(createHmac('sha256', key).update(data).digest()),
    sha256: (data) => new Uint8Array(createHash('sha256').update(data).digest()),
    async x25519PublicKey(k) {
      need(k, 32, 'X25519 private key');
      return rawPublic(createPublicKey(xPriv.get(k, importXPrivate)));
    },
    async ed25519Sign(seed, message) {
      need(seed, 32, 'Ed25519 seed');
      return new Uint8Array(sign(null, message, edPriv.get(seed, importEdPrivate)));
    },
    async ed25519Verify(publicKey, message, signature) {
      if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
      if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32 || !canonicalS(signature)) return false;
      const key = edPub.get(publicKey, importEdVerifier);
      if (key === null) return false;
      try {
        return verify(null, message, key, signature);
      } catch {
        return false;
      }
    },
    async x25519(privateKey, peerPublicKey) {
      need(privateKey, 32, 'X25519 private key');
      need(peerPublicKey, 32, 'X25519 public key');
      let shared: Buffer;
      try {
        // Not cached: peers here are mostly HPKE ephemeral keys, seen once (static-static results
        // are cached by hpke.ts), and caching them would evict the keys worth keeping.
        shared = diffieHellman({ privateKey: xPriv.get(privateKey, importXPrivate), publicKey: jwkPublic('X25519', peerPublicKey) });
      } catch {
        throw new CryptoError('low-order X25519 public key');
      }
      return checkSharedSecret(new Uint8Array(shared));
    },
    async aeadSeal(key, nonce, aad, plaintext) {
      need(key, 32, 'AEAD key');
      need(nonce, 12, 'AEAD nonce');
      return nodeChaCha20Poly1305.seal(key, nonce, aad, plaintext);
    },
    async aeadOpen(key, nonce, aad, sealed) {
      need(key, 32, 'AEAD key');
      need(nonce, 12, 'AEAD nonce');
      if (sealed.length < 16) return null;
      return nodeChaCha20Poly1305.open(key, nonce, aad, sealed);
    },
  };
}
