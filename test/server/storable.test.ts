// What PostgreSQL cannot store (U+0000) is recognised exactly: the JSON escape \u0000 only when it
// is not itself escaped, on arbitrary JSON built from arbitrary strings.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isStorableJsonText, isStorableText } from '../../src/server/services/storable.js';

const holdsNul = (v: unknown): boolean =>
  typeof v === 'string' ? v.includes('\0') : Array.isArray(v) ? v.some(holdsNul) : v !== null && typeof v === 'object' ? Object.entries(v).some(([k, x]) => k.includes('\0') || holdsNul(x)) : false;

describe('storable', () => {
  it('plain text: refuses exactly the strings holding U+0000', () => {
    expect(isStorableText('abc')).toBe(true);
    expect(isStorableText('a\0c')).toBe(false);
  });

  it('JSON text: escaped backslashes before "u0000" are not a NUL', () => {
    expect(isStorableJsonText(JSON.stringify({ a: '\\u0000' }))).toBe(true); // the six characters \u0000
    expect(isStorableJsonText(JSON.stringify({ a: '\0' }))).toBe(false);
    expect(isStorableJsonText('{"a":"\\\\\\u0000"}')).toBe(false); // an escaped backslash, then NUL
    expect(isStorableJsonText(JSON.stringify({ ['k\0']: 1 }))).toBe(false);
  });

  it('agrees with the parsed value on arbitrary JSON', () => {
    const chars = fc.constantFrom('\0', '\\', 'u', '0', 'a', '"', '\n');
    const str = fc.array(chars, { maxLength: 12 }).map((a) => a.join(''));
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), fc.dictionary(str, str), (v, d) => {
        for (const value of [v, d]) expect(isStorableJsonText(JSON.stringify(value))).toBe(!holdsNul(value));
      }),
      { numRuns: 500 },
    );
  });
});
