// The `webcrypto` backend: WebCrypto Ed25519 and X25519 (Node 20, Workers), and a runtime-injected
// ChaCha20-Poly1305 (Node: node:crypto's) with noble's as the fallback. Decisions equal noble's: the same
// pre-checks run before WebCrypto (which alone would accept small-order Ed25519 keys and, for
// X25519, may return an all-zero secret), proven by test/protocol/crypto-differential.test.ts.
import { bytesKey } from '../bytes.js';
import { CryptoError } from '../errors.js';
import { Lru, memoizeAsync } from '../lru.js';
import { acceptableEd25519PublicKey, checkSharedSecret, nobleCrypto } from './noble.js';
import type { AeadPrimitive, CryptoBackend } from './types.js';

const ED25519_PKCS8 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const X25519_PKCS8 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);
// Sized for a fleet: a server verifies every agent's key over and over, and a miss costs an import
// (~15 µs) or, for the verdict, a point decoding and small-order check in JS (~150 µs here).
const KEY_CACHE_SIZE = 16_384;
const VERDICT_CACHE_SIZE = 65_536;
/** Private keys: our own few, and HPKE ephemeral keys for their second use only. Kept small. */
export const PRIVATE_KEY_CACHE_SIZE = 64;

type CryptoKey = Awaited<ReturnType<typeof globalThis.crypto.subtle.importKey>>;

function need(bytes: Uint8Array, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) throw new CryptoError(`${what} must be ${length} bytes`);
}

/** A bounded LRU of imported keys: the server verifies the same agents' keys over and over. */
export class KeyCache<T = CryptoKey> {
  private readonly lru: Lru<string, Promise<T>>;
  constructor(size = KEY_CACHE_SIZE) {
    this.lru = new Lru(size);
  }
  get(bytes: Uint8Array, make: () => Promise<T>): Promise<T> {
    return memoizeAsync(this.lru, bytesKey(bytes), make);
  }
}

const BASEPOINT = Uint8Array.from([9, ...new Array<number>(31).fill(0)]);

/** Remembers a pure predicate's verdict per key (bounded). */
export class VerdictCache {
  private readonly lru: Lru<string, boolean>;
  constructor(
    private readonly check: (key: Uint8Array) => boolean,
    size = VERDICT_CACHE_SIZE,
  ) {
    this.lru = new Lru(size);
  }
  get(key: Uint8Array): boolean {
    const id = bytesKey(key);
    let v = this.lru.get(id);
    if (v === undefined) {
      v = this.check(key);
      this.lru.set(id, v);
    }
    return v;
  }
}

const pkcs8 = (header: Uint8Array, key: Uint8Array): Uint8Array => {
  const out = new Uint8Array(header.length + key.length);
  out.set(header);
  out.set(key, header.length);
  return out;
};

export function createWebCrypto(opts: { aead?: AeadPrimitive } = {}): CryptoBackend {
  const subtle = globalThis.crypto.subtle;
  const edPriv = new KeyCache(PRIVATE_KEY_CACHE_SIZE);
  const edPub = new KeyCache();
  const xPriv = new KeyCache(PRIVATE_KEY_CACHE_SIZE);
  const xPub = new KeyCache();
  const importEdPriv = (seed: Uint8Array) =>
    edPriv.get(seed, () => subtle.importKey('pkcs8', pkcs8(ED25519_PKCS8, seed), { name: 'Ed25519' }, false, ['sign']));
  const importXPriv = (k: Uint8Array) =>
    xPriv.get(k, () => subtle.importKey('pkcs8', pkcs8(X25519_PKCS8, k), { name: 'X25519' }, false, ['deriveBits']));
  const aead = opts.aead;
  // The small-order and canonical-encoding check decodes a point (slow in JS): once per key.
  const acceptable = new VerdictCache(acceptableEd25519PublicKey);

  return {
    name: aead ? `webcrypto+${aead.name}-aead` : 'webcrypto',
    // Ed25519 public keys are derived only at key generation: noble is simplest and exact.
    ed25519PublicKey: (seed) => nobleCrypto.ed25519PublicKey(seed),
    // WebCrypto's HMAC is asynchronous only; the key schedule needs it synchronously.
    hmacSha256: nobleCrypto.hmacSha256,
    // WebCrypto's digest is asynchronous only; the receipt binding is computed synchronously.
    sha256: nobleCrypto.sha256!,
    // X25519 public keys are derived for every HPKE ephemeral key: X25519(k, 9) natively.
    async x25519PublicKey(k) {
      need(k, 32, 'X25519 private key');
      const base = await xPub.get(BASEPOINT, () => subtle.importKey('raw', BASEPOINT, { name: 'X25519' }, false, []));
      // Through the import cache: the HPKE sender's next call, X25519(ephemeral, server), reuses it.
      return new Uint8Array(await subtle.deriveBits({ name: 'X25519', public: base }, await importXPriv(k), 256));
    },
    async ed25519Sign(seed, message) {
      need(seed, 32, 'Ed25519 seed');
      return new Uint8Array(await subtle.sign('Ed25519', await importEdPriv(seed), message));
    },
    async ed25519Verify(publicKey, message, signature) {
      if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
      if (!acceptable.get(publicKey)) return false;
      if (!canonicalS(signature)) return false;
      try {
        const key = await edPub.get(publicKey, () => subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']));
        return await subtle.verify('Ed25519', key, signature, message);
      } catch {
        return false;
      }
    },
    async x25519(privateKey, peerPublicKey) {
      need(privateKey, 32, 'X25519 private key');
      need(peerPublicKey, 32, 'X25519 public key');
      let bits: ArrayBuffer;
      try {
        const pub = await xPub.get(peerPublicKey, () => subtle.importKey('raw', peerPublicKey, { name: 'X25519' }, false, []));
        bits = await subtle.deriveBits({ name: 'X25519', public: pub }, await importXPriv(privateKey), 256);
      } catch {
        throw new CryptoError('low-order X25519 public key');
      }
      return checkSharedSecret(new Uint8Array(bits));
    },
    async aeadSeal(key, nonce, aad, plaintext) {
      if (!aead) return nobleCrypto.aeadSeal(key, nonce, aad, plaintext);
      need(key, 32, 'AEAD key');
      need(nonce, 12, 'AEAD nonce');
      return aead.seal(key, nonce, aad, plaintext);
    },
    async aeadOpen(key, nonce, aad, sealed) {
      if (!aead) return nobleCrypto.aeadOpen(key, nonce, aad, sealed);
      need(key, 32, 'AEAD key');
      need(nonce, 12, 'AEAD nonce');
      if (sealed.length < 16) return null;
      return aead.open(key, nonce, aad, sealed);
    },
  };
}

/** L = 2^252 + 27742317777372353535851937790883648493, little-endian: S must be < L (RFC 8032 §5.1.7). */
const L = Uint8Array.from([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0x10,
]);
export function canonicalS(signature: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const s = signature[32 + i]!;
    if (s < L[i]!) return true;
    if (s > L[i]!) return false;
  }
  return false; // S == L
}

/** True when this runtime's WebCrypto has Ed25519 and X25519. */
export async function webCryptoAvailable(): Promise<boolean> {
  try {
    const subtle = globalThis.crypto?.subtle;
    if (!subtle) return false;
    const seed = new Uint8Array(32).fill(7);
    await subtle.importKey('pkcs8', pkcs8(ED25519_PKCS8, seed), { name: 'Ed25519' }, false, ['sign']);
    await subtle.importKey('pkcs8', pkcs8(X25519_PKCS8, seed), { name: 'X25519' }, false, ['deriveBits']);
    return true;
  } catch {
    return false;
  }
}
