import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../../src/protocol/errors.js';
import { generateToken, hashTokenSecret, parseToken, tokenSecretMatches, TOKEN_PREFIX } from '../../src/protocol/token.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
const fp = 'sha256:W8jkWgZoGqFQlQVYI9cZ6vvxdTHgqOHJvYK9_EfDHug';
const code = (f: () => unknown) => {
  try {
    f();
    return 'ok';
  } catch (e) {
    return e instanceof ProtocolError ? e.code : `untyped ${String(e)}`;
  }
};

describe('enrollment token', () => {
  it('round-trips id, secret and fingerprint; the stored hash matches only that secret', () => {
    const t = generateToken(ctx.random, fp);
    expect(t.token.startsWith(TOKEN_PREFIX)).toBe(true);
    expect(t.token).toMatch(/^lk1_[A-Za-z0-9_-]{112}$/);
    const p = parseToken(`  ${t.token}\n`);
    expect(p.tokenId).toBe(t.tokenId);
    expect(p.serverFingerprint).toBe(fp);
    expect(p.secret).toHaveLength(32);
    expect(hashTokenSecret(p.tokenId, p.secret)).toEqual(t.secretHash);
    expect(tokenSecretMatches(p.tokenId, p.secret, t.secretHash)).toBe(true);
    const other = p.secret.slice();
    other[0]! ^= 1;
    expect(tokenSecretMatches(p.tokenId, other, t.secretHash)).toBe(false);
  });

  it('catches every single-character typo before any request', () => {
    const { token } = generateToken(ctx.random, fp);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    for (let i = 0; i < token.length; i++) {
      for (const ch of [alphabet[(alphabet.indexOf(token[i]!) + 1) % 64]!, 'x', '=']) {
        if (ch === token[i]) continue;
        const typo = token.slice(0, i) + ch + token.slice(i + 1);
        expect(
          code(() => parseToken(typo)),
          `position ${i}`,
        ).toBe('token_malformed');
      }
    }
    expect(code(() => parseToken(token.slice(0, -1)))).toBe('token_malformed');
    expect(code(() => parseToken(`${token}A`))).toBe('token_malformed');
  });

  it('throws nothing but token_malformed on random input', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string().map((s) => `lk1_${s}`),
          fc.base64String().map((s) => `lk1_${s}`),
        ),
        (s) => {
          expect(code(() => parseToken(s))).toBe('token_malformed');
        },
      ),
      { numRuns: 500 },
    );
  });
});
