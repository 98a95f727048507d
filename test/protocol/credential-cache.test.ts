// The verified-credential cache (src/protocol/credential-cache.ts): a hit saves the JWT
// verification, but never its judgement: expiry at every use, only the issuer it verified under,
// failures never remembered.
import { describe, expect, it } from 'vitest';
import { issueCredential } from '../../src/protocol/credential.js';
import { verifiedCredential, type CredentialCache } from '../../src/protocol/credential-cache.js';
import { generateKeySet } from '../../src/protocol/keys.js';
import { Lru } from '../../src/protocol/lru.js';
import { codeOf, testContext } from '../helpers/protocol.js';
import { backends } from '../helpers/backends.js';

describe.each(backends)('verified credentials cache on %s', (_name, crypto) => {
  const ctx = testContext(crypto);
  const setup = async () => {
    const server = await generateKeySet(ctx);
    const other = await generateKeySet(ctx);
    const agent = await generateKeySet(ctx);
    const now = 1_800_000_000_000;
    const jwt = await issueCredential(server.signing, 'fp-1', {
      agentId: 'agent-1',
      role: 'agent',
      signingKey: agent.signing,
      agreementKey: agent.agreement,
      issuedAt: now / 1000 - 10,
      expiresAt: now / 1000 + 60,
      jti: 'j1',
    });
    return { server, other, jwt, now };
  };

  it('answers a second use from the cache, and still refuses it once expired', async () => {
    const { server, jwt, now } = await setup();
    const cache: CredentialCache = new Lru(8);
    const first = await verifiedCredential(cache, jwt, server.signing, 'fp-1', now);
    expect(first.sub).toBe('agent-1');
    expect(cache.size).toBe(1);
    expect(await verifiedCredential(cache, jwt, server.signing, 'fp-1', now + 59_000)).toBe(first);
    // exp is now + 60 s: at exactly exp it is expired, as jose judges it.
    expect(await codeOf(verifiedCredential(cache, jwt, server.signing, 'fp-1', now + 60_000))).toBe('credential_invalid');
    expect(cache.size).toBe(0);
  });

  it('never answers for another issuer key or fingerprint, and never remembers a failure', async () => {
    const { server, other, jwt, now } = await setup();
    const cache: CredentialCache = new Lru(8);
    await verifiedCredential(cache, jwt, server.signing, 'fp-1', now);
    // Same kid claimed by another key: verified afresh (and refused), not served from the cache.
    expect(await codeOf(verifiedCredential(cache, jwt, { ...other.signing, kid: server.signing.kid }, 'fp-1', now))).toBe(
      'credential_invalid',
    );
    expect(await codeOf(verifiedCredential(cache, jwt, server.signing, 'fp-2', now))).toBe('credential_invalid');
    const tampered = `${jwt.slice(0, -3)}${jwt.slice(-3) === 'AAA' ? 'BBB' : 'AAA'}`;
    expect(await codeOf(verifiedCredential(cache, tampered, server.signing, 'fp-1', now))).toBe('credential_invalid');
    expect(await codeOf(verifiedCredential(cache, tampered, server.signing, 'fp-1', now))).toBe('credential_invalid');
    expect(cache.size).toBe(1);
  });
});
