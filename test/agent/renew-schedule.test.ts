// When `agent run` renews (spec §12): two thirds of the credential's life plus a per-agent jitter of
// up to 5 % of it, stable for a key (restarts do not move it) and spread across a fleet.
import { describe, expect, it } from 'vitest';
import { credentialTimes, renewDueAt, renewJitter } from '../../src/agent/renew.js';
import { issueCredential } from '../../src/protocol/credential.js';
import { generateKeySet } from '../../src/protocol/keys.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
const DAY = 86_400_000;

describe('renewal schedule', () => {
  it('is due between two thirds and two thirds + 5 % of the lifetime', () => {
    expect(renewDueAt(0, 30 * DAY, 0)).toBe(20 * DAY);
    expect(renewDueAt(0, 30 * DAY, 1)).toBe(20 * DAY + 1.5 * DAY);
    expect(renewDueAt(0, 30 * DAY, 7)).toBe(20 * DAY + 1.5 * DAY); // clamped
  });

  it('spreads a fleet enrolled in the same hour over the jitter window, each agent at a stable time', async () => {
    const jitters: number[] = [];
    for (let i = 0; i < 400; i++) {
      const { signing } = await generateKeySet(ctx);
      const j = renewJitter(signing.kid);
      expect(renewJitter(signing.kid)).toBe(j);
      jitters.push(j);
    }
    const buckets = new Array<number>(10).fill(0);
    for (const j of jitters) buckets[Math.floor(j * 10)]!++;
    // 400 agents over 10 buckets of 3.6 hours each (30-day credentials): none empty, none crowded.
    for (const b of buckets) expect(b).toBeGreaterThan(15);
    for (const b of buckets) expect(b).toBeLessThan(70);
  });

  it('reads issue and expiry times from the credential claims', async () => {
    const server = await generateKeySet(ctx);
    const agent = await generateKeySet(ctx);
    const credential = await issueCredential({ ...server.signing, publicKey: server.signing.publicKey }, 'fp', {
      agentId: 'a',
      role: 'agent',
      signingKey: agent.signing,
      agreementKey: agent.agreement,
      issuedAt: 1_000_000,
      expiresAt: 1_000_000 + 7 * 86_400,
      jti: 'j',
    });
    const record = { credential, expiresAt: 0 } as Parameters<typeof credentialTimes>[0];
    expect(credentialTimes(record)).toEqual({ issuedAt: 1_000_000_000, expiresAt: 1_000_000_000 + 7 * DAY });
  });
});
