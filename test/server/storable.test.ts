// What PostgreSQL cannot store (U+0000, unpaired surrogates) is recognised exactly: in plain
// strings, and in JSON text only as escapes that are not themselves escaped, on arbitrary JSON.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isStorableJsonNumber,
  isStorableJsonText,
  isStorableText,
  jsonDepthWithin,
  jsonShapeRefusal,
  isUnstorableValueError,
} from '../../src/server/services/storable.js';

/** The previous scanner (a regex token loop), kept as the reference the character loop must agree with. */
function referenceShape(text: string, max: number): 'too_deep' | 'number_out_of_range' | undefined {
  const token = /["[\]{}]|-?\d[\d.eE+-]*/g;
  let depth = 0;
  for (let m = token.exec(text); m !== null; m = token.exec(text)) {
    const c = text.charCodeAt(m.index);
    if (c === 0x22) {
      let end = text.indexOf('"', m.index + 1);
      for (;;) {
        if (end < 0) return 'too_deep';
        let slashes = 0;
        while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++;
        if (slashes % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      token.lastIndex = end + 1;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return 'too_deep';
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    } else if ((m[0].length > 15 || /[eE]/.test(m[0])) && !isStorableJsonNumber(m[0])) {
      return 'number_out_of_range';
    }
  }
  return undefined;
}

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

  it('shape: depth and numbers as the reference scanner finds them, on arbitrary JSON with extreme numbers', () => {
    const number = fc.oneof(
      fc.double().filter(Number.isFinite).map(String),
      fc.constantFrom('1e400', '-1e-400', '1E+1073741823', '0e99999999999', '-0.5e-3', '12345678901234567890', '1.000000000000000001'),
      fc.tuple(fc.integer({ min: 1, max: 20000 }), fc.boolean()).map(([n, frac]) => (frac ? `0.${'0'.repeat(n)}1` : `1${'0'.repeat(n)}`)),
    );
    const value: fc.Arbitrary<string> = fc.letrec<{ v: string }>((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        number,
        fc.string({ unit: fc.constantFrom('"', '\\', '[', '{', '1', 'e', ']', 'x') }).map((x) => JSON.stringify(x)),
        fc.array(tie('v'), { maxLength: 4 }).map((a) => `[${a.join(',')}]`),
        fc
          .array(fc.tuple(fc.string({ maxLength: 3 }), tie('v')), { maxLength: 3 })
          .map((a) => `{${a.map(([k, x]) => `${JSON.stringify(k)}:${x}`).join(',')}}`),
      ),
    })).v;
    fc.assert(
      fc.property(value, fc.integer({ min: 0, max: 6 }), (text, max) => {
        JSON.parse(text); // valid JSON, as the callers guarantee
        expect(jsonShapeRefusal(text, max)).toBe(referenceShape(text, max));
      }),
      { numRuns: 1000 },
    );
  });

  it('database refusals a value alone can cause: data exceptions and program limits', () => {
    for (const code of ['22003', '22P02', '54001']) expect(isUnstorableValueError({ code })).toBe(true);
    for (const code of ['23505', '40001', '08006', undefined]) expect(isUnstorableValueError({ code })).toBe(false);
    expect(isUnstorableValueError(null)).toBe(false);
    expect(jsonDepthWithin('["abc')).toBe(false);
  });
});
