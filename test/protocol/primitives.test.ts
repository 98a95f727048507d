// Primitive vectors on every backend: Wycheproof X25519 and Ed25519 (incl. low-order points and
// malleable signatures), RFC 7748 §5.2 and RFC 8032 §7.1.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CryptoError } from '../../src/protocol/errors.js';
import { backends, hex, toHex } from '../helpers/backends.js';

const load = <T>(name: string): T => JSON.parse(readFileSync(new URL(`../fixtures/vectors/${name}`, import.meta.url), 'utf8')) as T;

interface XdhTest {
  tcId: number;
  public: string;
  private: string;
  shared: string;
  result: string;
  flags: string[];
}
interface EdGroup {
  publicKey: { pk: string };
  tests: { tcId: number; msg: string; sig: string; result: string; flags: string[] }[];
}

const x25519Cases = load<{ testGroups: { tests: XdhTest[] }[] }>('x25519_test.json').testGroups.flatMap((g) => g.tests);
const ed25519Groups = load<{ testGroups: EdGroup[] }>('ed25519_test.json').testGroups;
const rfc7748 = load<{ input: string; output: string; scalar: string }[]>('rfc7748_kat_test.json');
const rfc8032 = load<{ vectors: { name: string; scheme: string; sk: string; pk: string; msg: string; sig: string }[] }>(
  'rfc8032_ed25519_vectors.json',
).vectors.filter((v) => v.scheme === 'Ed25519Pure');

describe.each(backends)('%s backend', (_name, c) => {
  it(`Wycheproof X25519: ${x25519Cases.length} cases; an all-zero shared secret is always refused`, async () => {
    let refused = 0;
    for (const t of x25519Cases) {
      const zero = /^0+$/.test(t.shared);
      if (zero) {
        // Low-order public keys: 'acceptable' to RFC 7748, refused by our policy (spec §Primitives).
        await expect(c.x25519(hex(t.private), hex(t.public)), `tcId ${t.tcId}`).rejects.toBeInstanceOf(CryptoError);
        refused++;
      } else {
        // Valid and 'acceptable' non-canonical encodings compute the RFC 7748 result.
        expect(toHex(await c.x25519(hex(t.private), hex(t.public))), `tcId ${t.tcId}`).toBe(t.shared);
      }
    }
    expect(refused).toBeGreaterThan(10);
  });

  it('Wycheproof Ed25519: valid signatures verify, every invalid one (malleable S, bad encodings) is rejected', async () => {
    let n = 0;
    for (const g of ed25519Groups) {
      for (const t of g.tests) {
        const ok = await c.ed25519Verify(hex(g.publicKey.pk), hex(t.msg), hex(t.sig));
        expect(ok, `tcId ${t.tcId} ${t.flags.join(',')}`).toBe(t.result === 'valid');
        n++;
      }
    }
    expect(n).toBeGreaterThan(140);
  });

  it('RFC 7748 §5.2 known answers', async () => {
    for (const v of rfc7748) expect(toHex(await c.x25519(hex(v.scalar), hex(v.input)))).toBe(v.output);
  });

  it('RFC 7748 §5.2 iterated: 1 and 1,000 iterations', async () => {
    let k = hex('0900000000000000000000000000000000000000000000000000000000000000');
    let u = k;
    for (let i = 1; i <= 1000; i++) {
      const next = await c.x25519(k, u);
      u = k;
      k = next;
      if (i === 1) expect(toHex(k)).toBe('422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079');
    }
    expect(toHex(k)).toBe('684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51');
  });

  it(`RFC 8032 §7.1: ${rfc8032.length} vectors sign and verify`, async () => {
    for (const v of rfc8032) {
      const seed = hex(v.sk).subarray(0, 32);
      expect(toHex(await c.ed25519PublicKey(seed)), v.name).toBe(v.pk);
      expect(toHex(await c.ed25519Sign(seed, hex(v.msg))), v.name).toBe(v.sig);
      expect(await c.ed25519Verify(hex(v.pk), hex(v.msg), hex(v.sig)), v.name).toBe(true);
    }
  });

  it('rejects wrong key and nonce lengths at the boundary', async () => {
    await expect(c.x25519(new Uint8Array(31), new Uint8Array(32).fill(9))).rejects.toBeInstanceOf(CryptoError);
    await expect(c.aeadSeal(new Uint8Array(32), new Uint8Array(11), new Uint8Array(0), new Uint8Array(0))).rejects.toBeInstanceOf(
      CryptoError,
    );
    expect(await c.ed25519Verify(new Uint8Array(31), new Uint8Array(0), new Uint8Array(64))).toBe(false);
    expect(await c.aeadOpen(new Uint8Array(32), new Uint8Array(12), new Uint8Array(0), new Uint8Array(15))).toBeNull();
  });
});
