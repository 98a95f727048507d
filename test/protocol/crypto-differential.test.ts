// The webcrypto and node backends must decide and produce exactly what the noble reference does, on random
// inputs (fast-check) and on tampered ones.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sha256 } from '@noble/hashes/sha2.js';
import { nobleCrypto as ref } from '../../src/protocol/crypto/noble.js';
import { backends } from '../helpers/backends.js';

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const outcome = async <T>(p: Promise<T>) =>
  p.then(
    (v) => ({ ok: v }),
    (e: Error) => ({ err: e.name }),
  );

describe.each(backends.filter(([n]) => n !== 'noble'))('%s agrees with noble', (_name, c) => {
  it('Ed25519: same public keys, same signatures, same verdicts on tampered signatures and random keys', async () => {
    await fc.assert(
      fc.asyncProperty(bytes(32), fc.uint8Array({ maxLength: 300 }), fc.nat(), bytes(32), async (seed, msg, flip, randomKey) => {
        const pub = await ref.ed25519PublicKey(seed);
        expect(await c.ed25519PublicKey(seed)).toEqual(pub);
        const sig = await ref.ed25519Sign(seed, msg);
        expect(await c.ed25519Sign(seed, msg)).toEqual(sig);
        const bad = sig.slice();
        bad[flip % 64]! ^= 1 << (flip % 8);
        for (const [k, s] of [
          [pub, sig],
          [pub, bad],
          [randomKey, sig],
        ] as const) {
          expect(await c.ed25519Verify(k, msg, s)).toBe(await ref.ed25519Verify(k, msg, s));
        }
      }),
      { numRuns: 60 },
    );
  });

  it('X25519: same shared secrets or the same refusal, for random peer keys', async () => {
    await fc.assert(
      fc.asyncProperty(bytes(32), bytes(32), async (sk, peer) => {
        expect(await outcome(c.x25519(sk, peer))).toEqual(await outcome(ref.x25519(sk, peer)));
      }),
      { numRuns: 60 },
    );
  });

  it('ChaCha20-Poly1305: same ciphertexts; tampering refused alike', async () => {
    await fc.assert(
      fc.asyncProperty(
        bytes(32),
        bytes(12),
        fc.uint8Array({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 600 }),
        fc.nat(),
        async (k, n, aad, pt, flip) => {
          const ct = await ref.aeadSeal(k, n, aad, pt);
          expect(await c.aeadSeal(k, n, aad, pt)).toEqual(ct);
          expect(await c.aeadOpen(k, n, aad, ct)).toEqual(pt);
          const bad = ct.slice();
          bad[flip % bad.length]! ^= 1 << (flip % 8);
          expect(await c.aeadOpen(k, n, aad, bad)).toBeNull();
          expect(await ref.aeadOpen(k, n, aad, bad)).toBeNull();
        },
      ),
      { numRuns: 60 },
    );
  });

  it('SHA-256: same digests as noble, for empty, random and large inputs', async () => {
    // Every backend names one: the receipt binding must not fall back silently to a slower hash.
    expect(c.sha256).toBeTypeOf('function');
    const digest = c.sha256!;
    // FIPS 180-2 "abc" and the empty message: a wrong reference would otherwise go unnoticed.
    expect(Buffer.from(digest(new Uint8Array(0))).toString('hex')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(Buffer.from(digest(new TextEncoder().encode('abc'))).toString('hex')).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 9000 }), (data) => {
        expect(digest(data)).toEqual(sha256(data));
      }),
      { numRuns: 200 },
    );
    // Large, and a view into a bigger buffer (the digest must cover only the view's bytes).
    const big = Uint8Array.from({ length: 3 * 1024 * 1024 + 7 }, (_, i) => (i * 31 + 7) & 0xff);
    expect(digest(big)).toEqual(sha256(big));
    const view = big.subarray(1000, 1000 + 4500);
    expect(digest(view)).toEqual(sha256(view));
  });
});
