// base64url and byte keys, held to Node's Buffer (a separate implementation) on arbitrary bytes, and
// to the strictness the protocol needs: exactly one accepted text per byte string.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { b64u, bytesKey, fromB64u, fromB64uExact } from '../../src/protocol/bytes.js';
import { ProtocolError } from '../../src/protocol/errors.js';

const refused = (text: string) => {
  try {
    fromB64u(text, 'payload_invalid');
  } catch (err) {
    return err instanceof ProtocolError && err.code === 'payload_invalid';
  }
  return false;
};

describe('base64url', () => {
  it('encodes and decodes as Buffer does, at every length', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const text = Buffer.from(bytes).toString('base64url');
        expect(b64u(bytes)).toBe(text);
        expect(fromB64u(text)).toEqual(bytes);
      }),
      { numRuns: 500 },
    );
  });

  it('accepts exactly the canonical text: any other string is refused with the given code', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 12, unit: fc.constantFrom(...'AQgw_-=+/ .é\u0100zZ09'.split('')) }), (text) => {
        const canonical = /^[A-Za-z0-9_-]*$/.test(text) && text.length % 4 !== 1 && b64u(Buffer.from(text, 'base64url')) === text;
        if (canonical) expect(fromB64u(text)).toEqual(new Uint8Array(Buffer.from(text, 'base64url')));
        else expect(refused(text)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses padding, non-zero trailing bits, other alphabets and impossible lengths', () => {
    for (const text of ['AA==', 'AB', 'AAB', 'A', 'AAAAA', 'a+b/', '\u00c0AAA', 'AA\u0141A', 'AAA\uffff'.slice(0, 4)])
      expect(refused(text), text).toBe(true);
    expect(fromB64u('AA')).toEqual(new Uint8Array([0]));
    expect(fromB64u('AAE')).toEqual(new Uint8Array([0, 1]));
    expect(() => fromB64uExact('AAE', 3)).toThrow(ProtocolError);
    expect(() => fromB64u(3 as unknown as string)).toThrow(ProtocolError);
  });

  it('bytesKey: one code unit per byte, parts concatenated, long inputs included', () => {
    const naive = (...parts: Uint8Array[]) => parts.map((p) => [...p].map((b) => String.fromCharCode(b)).join('')).join('');
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 70 }), { maxLength: 3 }), (parts) => {
        expect(bytesKey(...parts)).toBe(naive(...parts));
      }),
    );
    const long = new Uint8Array(10_000).map((_, i) => i * 7);
    expect(bytesKey(long)).toBe(naive(long));
  });
});
