// The one small interface every primitive goes through (spec/PROTOCOL.md §Primitives).
// Three backends, one name each: `noble` (noble.ts, the reference that runs anywhere), `webcrypto`
// (webcrypto.ts: WebCrypto on Node 20 and Workers, with a ChaCha20-Poly1305 the runtime may inject)
// and `node` (src/runtime/node-crypto.ts, node:crypto). All MUST produce identical bytes:
// test/protocol/crypto-differential.test.ts runs every vector and random inputs through each.
//
// Keys are raw bytes: Ed25519 private keys are 32-byte seeds (RFC 8032), X25519 private keys are
// 32-byte scalars (RFC 7748; clamping happens inside). All lengths are checked here, at the boundary.

export interface CryptoBackend {
  readonly name: string;

  /** RFC 8032 public key for a 32-byte seed. */
  ed25519PublicKey(seed: Uint8Array): Promise<Uint8Array>;
  /** RFC 8032 deterministic signature (64 bytes). */
  ed25519Sign(seed: Uint8Array, message: Uint8Array): Promise<Uint8Array>;
  /**
   * Strict RFC 8032 verification: rejects S >= L (malleability), non-canonical point encodings and
   * small-order public keys. Never throws on bad input: returns false.
   */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;

  /** RFC 7748 public key for a 32-byte private scalar. */
  x25519PublicKey(privateKey: Uint8Array): Promise<Uint8Array>;
  /** RFC 7748 X25519; throws CryptoError when the shared secret is all zero (low-order peer key). */
  x25519(privateKey: Uint8Array, peerPublicKey: Uint8Array): Promise<Uint8Array>;

  /**
   * HMAC-SHA256 (RFC 2104), the PRF under HKDF. Synchronous: HPKE's key schedule calls it five times
   * per message, and node:crypto's is ~4× faster than pure JS there. (node's hkdfSync, one call per
   * extract-and-expand, was measured ~3× the CPU of the two HMACs it would replace: not used.)
   */
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /**
   * SHA-256 (FIPS 180-4), synchronous. Optional: without it, callers use noble's. The receipt binding
   * hashes every envelope's whole ciphertext, where node:crypto's costs a fraction of noble's pure JS
   * (~5 µs against ~44 µs on 4.4 KB here).
   */
  sha256?(data: Uint8Array): Uint8Array;

  /** ChaCha20-Poly1305 (RFC 8439): returns ciphertext || 16-byte tag. */
  aeadSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array>;
  /** Returns null on authentication failure; never says why. */
  aeadOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Promise<Uint8Array | null>;
}

/**
 * A platform ChaCha20-Poly1305 a runtime may inject into the webcrypto backend (Node: node:crypto's).
 * Same contract as CryptoBackend.aeadSeal / aeadOpen.
 */
export interface AeadPrimitive {
  /** Where it comes from (`node`); part of the backend's name. */
  readonly name: string;
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null;
}

/**
 * Everything impure the protocol needs, passed in: the primitives, randomness and the clock.
 * Vectors and tests pass fixed ones; runtimes pass real ones.
 */
export interface ProtocolContext {
  readonly crypto: CryptoBackend;
  /** Cryptographically secure random bytes. */
  random(length: number): Uint8Array;
  /** Milliseconds since the Unix epoch. */
  now(): number;
}
