// The token name glob: a linear two-pointer matcher, checked against a regular-expression reference
// on small inputs (where backtracking is harmless), and timed nowhere: its bound is structural.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { globMatches, NAME_PATTERN } from '../../src/server/services/name-rules.js';

function reference(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${pattern.replace(/[.*?-]/g, (ch) => (ch === '*' ? '[A-Za-z0-9._-]*' : ch === '?' ? '[A-Za-z0-9._-]' : `\\${ch}`))}$`,
  );
  return re.test(name);
}

describe('globMatches', () => {
  it('agrees with the regular-expression reading of the glob', () => {
    const patternChar = fc.constantFrom('a', 'b', '-', '.', '*', '?');
    const nameChar = fc.constantFrom('a', 'b', '-', '.');
    fc.assert(
      fc.property(fc.array(patternChar, { minLength: 1, maxLength: 10 }), fc.array(nameChar, { maxLength: 14 }), (p, n) => {
        const pattern = p.join('');
        const name = n.join('');
        expect(globMatches(pattern, name)).toBe(reference(pattern, name));
      }),
      { numRuns: 5000 },
    );
  });

  it('answers the pathological glob on a 128-character name at once', () => {
    const started = performance.now();
    expect(globMatches('*-*-*-*-*-*.x', `${'-'.repeat(126)}.y`)).toBe(false);
    expect(globMatches('*-*-*-*-*-*.x', `${'-'.repeat(126)}.x`)).toBe(true);
    expect(performance.now() - started).toBeLessThan(250);
  });

  it('patterns are 1 to 128 characters of the name alphabet and the wildcards', () => {
    expect(NAME_PATTERN.test('*'.repeat(128))).toBe(true);
    expect(NAME_PATTERN.test('*'.repeat(129))).toBe(false);
    expect(NAME_PATTERN.test('')).toBe(false);
    expect(NAME_PATTERN.test('web-[0-9]')).toBe(false);
  });
});
