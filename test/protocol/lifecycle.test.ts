// Renewal requests and responses, revocation lists and server key endorsements, through the
// protocol core: round trips, every tampering, rollback and chain walking.
import { describe, expect, it } from 'vitest';
import { b64u, fromB64u, utf8 } from '../../src/protocol/bytes.js';
import type { ServerPublicKeys } from '../../src/protocol/enrollment.js';
import { fingerprintOf, generateKeySet, type KeySet } from '../../src/protocol/keys.js';
import {
  openRenewContent,
  renewContent,
  signRenewResponse,
  verifyRenewResponse,
  type RenewResponseBody,
} from '../../src/protocol/renewal.js';
import { applyRevocationList, emptyRevocations, signRevocationList, verifyRevocationList } from '../../src/protocol/revocation-list.js';
import { endorseServerKeys, walkEndorsements } from '../../src/protocol/server-key-endorsement.js';
import type { SignedObject } from '../../src/protocol/signed.js';
import { codeOf, testContext } from '../helpers/protocol.js';

const ctx = testContext();
const pub = (k: KeySet): ServerPublicKeys => ({
  signing: k.signing,
  agreement: k.agreement,
  fingerprint: fingerprintOf(k.signing.publicKey, k.agreement.publicKey),
});
/** Re-signs a body changed by `edit`, keeping the signature of the original: a tampered object. */
const tamperBody = (o: SignedObject, edit: (b: Record<string, unknown>) => void): SignedObject => {
  const body = JSON.parse(new TextDecoder().decode(fromB64u(o.body))) as Record<string, unknown>;
  edit(body);
  return { ...o, body: b64u(utf8(JSON.stringify(body))) };
};

describe('renewal', () => {
  it('proves the new keys for this request of this lineage only', async () => {
    const server = await generateKeySet(ctx);
    const current = await generateKeySet(ctx);
    const next = await generateKeySet(ctx);
    const header = { snd: current.signing.kid, mid: b64u(ctx.random(16)) };
    const content = await renewContent(ctx.crypto, header.snd, header.mid, next, server.agreement.publicKey);
    const opened = await openRenewContent(ctx.crypto, content, header, server.agreement.privateKey);
    expect(opened.signingKey.kid).toBe(next.signing.kid);
    expect(opened.agreementKey.kid).toBe(next.agreement.kid);

    // Moved to another request or another lineage, the proofs fail.
    expect(await codeOf(openRenewContent(ctx.crypto, content, { ...header, mid: b64u(ctx.random(16)) }, server.agreement.privateKey))).toBe(
      'signature_invalid',
    );
    expect(await codeOf(openRenewContent(ctx.crypto, content, { ...header, snd: next.signing.kid }, server.agreement.privateKey))).toBe(
      'signature_invalid',
    );
    // Proved to another server, pop_kx fails.
    const other = await generateKeySet(ctx);
    expect(await codeOf(openRenewContent(ctx.crypto, content, header, other.agreement.privateKey))).toBe('signature_invalid');
    // Someone else's new keys under our proofs.
    const p = JSON.parse(new TextDecoder().decode(content)) as Record<string, string>;
    const stranger = await generateKeySet(ctx);
    for (const swap of [{ sig: b64u(stranger.signing.publicKey) }, { kx: b64u(stranger.agreement.publicKey) }]) {
      expect(await codeOf(openRenewContent(ctx.crypto, utf8(JSON.stringify({ ...p, ...swap })), header, server.agreement.privateKey))).toBe(
        'signature_invalid',
      );
    }
    // A low-order X25519 key proves nothing.
    expect(
      await codeOf(
        openRenewContent(ctx.crypto, utf8(JSON.stringify({ ...p, kx: b64u(new Uint8Array(32)) })), header, server.agreement.privateKey),
      ),
    ).toBe('signature_invalid');
    // Shape: unknown and missing fields, wrong lengths.
    expect(await codeOf(openRenewContent(ctx.crypto, utf8(JSON.stringify({ ...p, extra: 1 })), header, server.agreement.privateKey))).toBe(
      'payload_invalid',
    );
    expect(
      await codeOf(openRenewContent(ctx.crypto, utf8(JSON.stringify({ ...p, pop_kx: undefined })), header, server.agreement.privateKey)),
    ).toBe('payload_invalid');
    expect(
      await codeOf(
        openRenewContent(ctx.crypto, utf8(JSON.stringify({ ...p, sig: b64u(new Uint8Array(31)) })), header, server.agreement.privateKey),
      ),
    ).toBe('payload_invalid');
  });

  it('refuses renewing to the key already in use', async () => {
    const server = await generateKeySet(ctx);
    const current = await generateKeySet(ctx);
    const header = { snd: current.signing.kid, mid: b64u(ctx.random(16)) };
    const content = await renewContent(ctx.crypto, header.snd, header.mid, current, server.agreement.publicKey);
    expect(await codeOf(openRenewContent(ctx.crypto, content, header, server.agreement.privateKey))).toBe('payload_invalid');
  });

  it('believes only a response signed by the pinned key that answers this request with these keys', async () => {
    const server = await generateKeySet(ctx);
    const next = await generateKeySet(ctx);
    const body: RenewResponseBody = {
      agentId: 'a1',
      mid: 'm1',
      snd: 'old',
      sigKid: next.signing.kid,
      kxKid: next.agreement.kid,
      credential: 'jwt',
      expiresAt: 2,
      supersededUntil: 1,
      iat: 0,
    };
    const signed = await signRenewResponse(ctx.crypto, server.signing, body);
    const expect_ = { mid: 'm1', snd: 'old', next };
    expect(await verifyRenewResponse(ctx, server.signing, signed, expect_)).toEqual(body);
    expect(await codeOf(verifyRenewResponse(ctx, server.signing, signed, { ...expect_, mid: 'm2' }))).toBe('signature_invalid');
    expect(await codeOf(verifyRenewResponse(ctx, server.signing, signed, { ...expect_, next: await generateKeySet(ctx) }))).toBe(
      'signature_invalid',
    );
    expect(
      await codeOf(
        verifyRenewResponse(
          ctx,
          server.signing,
          tamperBody(signed, (b) => (b.expiresAt = 9e12)),
          expect_,
        ),
      ),
    ).toBe('signature_invalid');
    const impostor = await generateKeySet(ctx);
    const forged = await signRenewResponse(ctx.crypto, { privateKey: impostor.signing.privateKey, kid: server.signing.kid }, body);
    expect(await codeOf(verifyRenewResponse(ctx, server.signing, forged, expect_))).toBe('signature_invalid');
  });
});

describe('revocation lists', () => {
  it('verifies with the pinned key, applies deltas, refuses rollback, gaps and tampering', async () => {
    const server = await generateKeySet(ctx);
    const full = await signRevocationList(ctx.crypto, server.signing, {
      version: 3,
      since: 0,
      issuedAt: 10,
      entries: [
        { seq: 1, kind: 'token', subject: 't1', at: 1 },
        { seq: 3, kind: 'key', subject: 'k1', at: 3 },
      ],
    });
    let held = applyRevocationList(emptyRevocations(), await verifyRevocationList(ctx.crypto, server.signing, full));
    expect(held.version).toBe(3);
    expect([...held.subjects.key]).toEqual(['k1']);

    const delta = await signRevocationList(ctx.crypto, server.signing, {
      version: 5,
      since: 3,
      issuedAt: 20,
      entries: [{ seq: 5, kind: 'agent', subject: 'a1', at: 5 }],
    });
    held = applyRevocationList(held, await verifyRevocationList(ctx.crypto, server.signing, delta));
    expect(held.version).toBe(5);
    expect(held.subjects.agent.has('a1') && held.subjects.token.has('t1')).toBe(true);

    // Rollback: the older full list, though genuinely signed, is refused and changes nothing.
    expect(await codeOf(() => applyRevocationList(held, { version: 3, since: 0, issuedAt: 30, entries: [] }))).toBe('stale_message');
    // A delta that starts beyond what is held would hide entries in between.
    expect(
      await codeOf(() => applyRevocationList({ ...emptyRevocations(), version: 1 }, { version: 5, since: 3, issuedAt: 20, entries: [] })),
    ).toBe('stale_message');

    expect(
      await codeOf(
        verifyRevocationList(
          ctx.crypto,
          server.signing,
          tamperBody(full, (b) => (b.entries = [])),
        ),
      ),
    ).toBe('signature_invalid');
    const other = await generateKeySet(ctx);
    expect(await codeOf(verifyRevocationList(ctx.crypto, other.signing, full))).toBe('signature_invalid');
    // Entries out of order, beyond the version, or of an unknown kind are malformed even when signed.
    for (const entries of [
      [
        { seq: 2, kind: 'key', subject: 'x', at: 0 },
        { seq: 1, kind: 'key', subject: 'y', at: 0 },
      ],
      [{ seq: 9, kind: 'key', subject: 'x', at: 0 }],
      [{ seq: 1, kind: 'name', subject: 'x', at: 0 }],
      [{ seq: 1, kind: 'key', subject: 'x', at: 0, label: 'l' }],
    ]) {
      const bad = await signRevocationList(ctx.crypto, server.signing, { version: 3, since: 0, issuedAt: 1, entries } as never);
      expect(await codeOf(verifyRevocationList(ctx.crypto, server.signing, bad))).toBe('envelope_malformed');
    }
  });
});

describe('server key endorsements', () => {
  async function rotations(n: number): Promise<{ sets: KeySet[]; chain: SignedObject[] }> {
    const sets = [await generateKeySet(ctx)];
    const chain: SignedObject[] = [];
    for (let i = 0; i < n; i++) {
      const next = await generateKeySet(ctx);
      const cur = sets.at(-1)!;
      chain.push(
        await endorseServerKeys(
          ctx.crypto,
          { ...cur.signing, fingerprint: pub(cur).fingerprint },
          { signing: next.signing.publicKey, agreement: next.agreement.publicKey },
          { notBefore: i, iat: i },
        ),
      );
      sets.push(next);
    }
    return { sets, chain };
  }

  it('walks from any pinned key set to the newest, however many rotations were missed', async () => {
    const { sets, chain } = await rotations(3);
    for (let i = 0; i < sets.length; i++) {
      const reached = await walkEndorsements(ctx.crypto, pub(sets[i]!), chain);
      expect(reached.fingerprint).toBe(pub(sets[3]!).fingerprint);
      expect(reached.signing.kid).toBe(sets[3]!.signing.kid);
    }
    expect((await walkEndorsements(ctx.crypto, pub(sets[0]!), [])).fingerprint).toBe(pub(sets[0]!).fingerprint);
  });

  it('refuses a chain that does not start at the pin, a forged or altered link, a chain too long', async () => {
    const { sets, chain } = await rotations(2);
    const stranger = await generateKeySet(ctx);
    expect(await codeOf(walkEndorsements(ctx.crypto, pub(stranger), chain))).toBe('server_key_mismatch');

    // An attacker's key set endorsed by the attacker's own key, claiming to come from our pin.
    const attacker = await generateKeySet(ctx);
    const evil = await endorseServerKeys(
      ctx.crypto,
      { ...attacker.signing, kid: sets[0]!.signing.kid, fingerprint: pub(sets[0]!).fingerprint },
      { signing: attacker.signing.publicKey, agreement: attacker.agreement.publicKey },
      { notBefore: 0, iat: 0 },
    );
    expect(await codeOf(walkEndorsements(ctx.crypto, pub(sets[0]!), [evil]))).toBe('server_key_mismatch');
    // A genuine link whose endorsed keys were swapped.
    const swapped = tamperBody(chain[0]!, (b) => (b.kx = b64u(attacker.agreement.publicKey)));
    expect(await codeOf(walkEndorsements(ctx.crypto, pub(sets[0]!), [swapped, chain[1]!]))).toBe('server_key_mismatch');
    // Links out of order break the chain.
    expect(await codeOf(walkEndorsements(ctx.crypto, pub(sets[0]!), [chain[0]!, chain[0]!]))).toBe('server_key_mismatch');
    expect(
      await codeOf(
        walkEndorsements(
          ctx.crypto,
          pub(sets[0]!),
          Array.from({ length: 65 }, () => chain[0]!),
        ),
      ),
    ).toBe('server_key_mismatch');
  });
});
