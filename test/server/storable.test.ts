// What PostgreSQL cannot store (U+0000, unpaired surrogates) is recognised exactly: in plain
// strings, and in JSON text only as escapes that are not themselves escaped, on arbitrary JSON.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isStorableJsonText, isStorableText, jsonDepthWithin, isUnstorableValueError } from '../../src/server/services/storable.js';

const unstorable = (v: unknown): boolean =>
  typeof v === 'string'
    ? !isStorableText(v)
    : Array.isArray(v)
      ? v.some(unstorable)
      : v !== null && typeof v === 'object'
        ? Object.entries(v).some(([k, x]) => !isStorableText(k) || unstorable(x))
        : false;

describe('storable', () => {
  it('plain text: refuses U+0000 and unpaired surrogates, keeps pairs', () => {
    expect(isStorableText('abc')).toBe(true);
    expect(isStorableText('a\0c')).toBe(false);
    expect(isStorableText('\uD83D\uDE00')).toBe(true);
    expect(isStorableText('a\uD83D')).toBe(false);
    expect(isStorableText('\uDE00b')).toBe(false);
  });

  it('JSON text: escapes, escaped backslashes and surrogate pairs', () => {
    expect(isStorableJsonText(JSON.stringify({ a: '\\u0000' }))).toBe(true); // the six characters \u0000
    expect(isStorableJsonText(JSON.stringify({ a: '\0' }))).toBe(false);
    expect(isStorableJsonText('{"a":"\\\\\\u0000"}')).toBe(false); // an escaped backslash, then NUL
    expect(isStorableJsonText(JSON.stringify({ ['k\0']: 1 }))).toBe(false);
    expect(isStorableJsonText('["\\ud83d\\ude00"]')).toBe(true);
    expect(isStorableJsonText('["\\ud83d"]')).toBe(false);
    expect(isStorableJsonText('["\\ud83dx\\ude00"]')).toBe(false);
    expect(isStorableJsonText('["\\ude00"]')).toBe(false);
    expect(isStorableJsonText('["\\u00e9\\u4e2d"]')).toBe(true);
  });

  it('agrees with the parsed value on arbitrary JSON, escaped as JSON.stringify and as \\u everywhere', () => {
    const chars = fc.constantFrom('\0', '\\', 'u', '0', 'a', '"', '\n', '\uD83D', '\uDE00', 'é');
    const str = fc.array(chars, { maxLength: 12 }).map((a) => a.join(''));
    const asciiOnly = (text: string) => text.replace(/[^\x20-\x7e]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 3 }), fc.dictionary(str, fc.array(str, { maxLength: 3 })), (v, d) => {
        for (const value of [v, d]) {
          const text = JSON.stringify(value);
          expect(isStorableJsonText(text)).toBe(!unstorable(value));
          expect(isStorableJsonText(asciiOnly(text))).toBe(!unstorable(value));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('depth: counts only brackets outside strings, escapes included', () => {
    const nest = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    expect(jsonDepthWithin(nest(128))).toBe(true);
    expect(jsonDepthWithin(nest(129))).toBe(false);
    expect(jsonDepthWithin(JSON.stringify({ a: '[[[[[[', b: '\\"{{{{' }), 2)).toBe(true);
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => {
        const depth = (x: unknown): number => (x !== null && typeof x === 'object' ? 1 + Math.max(0, ...Object.values(x).map(depth)) : 0);
        const d = depth(v);
        expect(jsonDepthWithin(JSON.stringify(v), d)).toBe(true);
        if (d > 0) expect(jsonDepthWithin(JSON.stringify(v), d - 1)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('database refusals a value alone can cause: data exceptions and program limits', () => {
    for (const code of ['22003', '22P02', '54001']) expect(isUnstorableValueError({ code })).toBe(true);
    for (const code of ['23505', '40001', '08006', undefined]) expect(isUnstorableValueError({ code })).toBe(false);
    expect(isUnstorableValueError(null)).toBe(false);
    expect(jsonDepthWithin('["abc')).toBe(false);
  });
});
