// HMAC-SHA256 (RFC 4231) and the HKDF built on it (Wycheproof HKDF-SHA-256, incl. RFC 5869), on
// every backend: HPKE's key schedule stands on these two.
import { createHash, hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { utf8 } from '../../src/protocol/bytes.js';
import { CryptoError } from '../../src/protocol/errors.js';
import { hkdfExpand, hkdfExtract } from '../../src/protocol/hpke.js';
import { backends, hex, toHex } from '../helpers/backends.js';

interface HkdfTest {
  tcId: number;
  ikm: string;
  salt: string;
  info: string;
  size: number;
  okm: string;
  result: 'valid' | 'invalid';
}
const hkdfCases = (
  JSON.parse(readFileSync(new URL('../fixtures/vectors/hkdf_sha256_test.json', import.meta.url), 'utf8')) as {
    testGroups: { tests: HkdfTest[] }[];
  }
).testGroups.flatMap((g) => g.tests);

// RFC 4231 §4.2–4.8 (test case 5, a truncated output, does not apply).
const rfc4231 = [
  { key: '0b'.repeat(20), data: toHex(utf8('Hi There')), mac: 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7' },
  {
    key: toHex(utf8('Jefe')),
    data: toHex(utf8('what do ya want for nothing?')),
    mac: '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
  },
  { key: 'aa'.repeat(20), data: 'dd'.repeat(50), mac: '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe' },
  {
    key: '0102030405060708090a0b0c0d0e0f10111213141516171819',
    data: 'cd'.repeat(50),
    mac: '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b',
  },
  {
    key: 'aa'.repeat(131),
    data: toHex(utf8('Test Using Larger Than Block-Size Key - Hash Key First')),
    mac: '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54',
  },
  {
    key: 'aa'.repeat(131),
    data: toHex(
      utf8(
        'This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.',
      ),
    ),
    mac: '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
  },
];

// Differential references that share no code with any backend: HMAC as RFC 2104 §2 defines it over
// node:crypto's SHA-256, and OpenSSL's HKDF. (The noble backend is the reference for the others
// elsewhere; here it too is held to something it does not share.)
const sha256 = (...parts: Uint8Array[]) => new Uint8Array(parts.reduce((h, p) => h.update(p), createHash('sha256')).digest());
function referenceHmac(key: Uint8Array, data: Uint8Array): Uint8Array {
  const k = new Uint8Array(64);
  k.set(key.length > 64 ? sha256(key) : key);
  return sha256(
    k.map((b) => b ^ 0x5c),
    sha256(
      k.map((b) => b ^ 0x36),
      data,
    ),
  );
}
// Keys of any length up to 200 bytes, and often right at the 64-byte block boundary.
const anyKey = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc.integer({ min: 63, max: 65 }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
);

describe.each(backends)('%s backend', (_name, c) => {
  it('HMAC-SHA256: RFC 4231 test cases', () => {
    for (const t of rfc4231) expect(toHex(c.hmacSha256(hex(t.key), hex(t.data)))).toBe(t.mac);
  });

  it(`HKDF-SHA256: ${hkdfCases.length} Wycheproof cases (RFC 5869, empty salt, maximal and too-large outputs)`, () => {
    for (const t of hkdfCases) {
      const run = () => hkdfExpand(c, hkdfExtract(c, hex(t.salt), hex(t.ikm)), hex(t.info), t.size);
      if (t.result === 'valid') expect(toHex(run()), `tcId ${t.tcId}`).toBe(t.okm);
      else expect(run, `tcId ${t.tcId}`).toThrow(CryptoError);
    }
  });

  it('HMAC-SHA256 equals its RFC 2104 definition over an independent SHA-256, keys around the block size and beyond', () => {
    fc.assert(
      fc.property(anyKey, fc.uint8Array({ maxLength: 300 }), (key, data) => {
        expect(toHex(c.hmacSha256(key, data))).toBe(toHex(referenceHmac(key, data)));
      }),
      { numRuns: 200 },
    );
  });

  it('HKDF-SHA256 extract and expand equal OpenSSL (node:crypto hkdfSync) on random salt, key, info and length', () => {
    fc.assert(
      fc.property(anyKey, anyKey, fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 1, max: 255 * 32 }), (salt, ikm, info, size) => {
        const ours = hkdfExpand(c, hkdfExtract(c, salt, ikm), info, size);
        expect(toHex(ours)).toBe(Buffer.from(hkdfSync('sha256', ikm, salt, info, size)).toString('hex'));
      }),
      { numRuns: 100 },
    );
  });
});
