// Server key rotation (spec §14) in-process, on PGlite and PostgreSQL: two instances of one
// deployment on one database, the first on the old key set, the second rotated (new current, old
// previous). The agent enrolled with the old set is answered with it by the rotated instance and
// moved by the serverKey directive; a directive or discovery document whose chain does not start at
// the pin is refused (server_key_mismatch) and nothing is re-pinned; an envelope or enrollment
// sealed to a key set the server does not hold is recipient_mismatch; a credential issued under a
// dropped key set is refused with a signed credential_invalid.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { sealInventory, sendInventory, SignedRejection, submitEnvelope } from '../../src/agent/send.js';
import { followServerKeyDirective } from '../../src/agent/server-keys.js';
import { loadState } from '../../src/agent/state.js';
import { b64u, utf8 } from '../../src/protocol/bytes.js';
import { discoveryDocument, pinServer } from '../../src/protocol/discovery.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import { endorseServerKeys } from '../../src/protocol/server-key-endorsement.js';
import { deriveIdentity, type ServerIdentity } from '../../src/server/identity.js';
import { recordEndorsement } from '../../src/server/services/server-keys.js';
import { random, startTestServer, type TestServer } from '../helpers/app.js';
import { createTestDatabase, dbKinds, type TestDatabase } from '../helpers/db.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
const inventory = async () =>
  utf8(await readFile(new URL('../fixtures/glpi/format/computer_1_partial_memory.json', import.meta.url), 'utf8'));
const newIdentity = () => deriveIdentity(ctx.crypto, random(32), random(32));
const endorse = (from: ServerIdentity, to: ServerIdentity) =>
  endorseServerKeys(
    ctx.crypto,
    { ...from.signing, fingerprint: from.fingerprint },
    { signing: to.signing.publicKey, agreement: to.agreement.publicKey },
    { notBefore: ctx.now(), iat: ctx.now() },
  );
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (err: unknown) => (err as ProtocolError).code,
  );

describe.each(dbKinds)('server key rotation on %s', (kind) => {
  let database: TestDatabase;
  let dir: string;
  const servers: TestServer[] = [];
  const start = async (identity: ServerIdentity, previous: ServerIdentity[] = []) => {
    const s = await startTestServer(kind, { database, identity, previous });
    servers.push(s);
    return s;
  };
  const tokenFrom = async (s: TestServer) => {
    const res = await fetch(`${s.url}/v1/admin/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.adminToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    return ((await res.json()) as { token: string }).token;
  };

  beforeEach(async () => {
    database = await createTestDatabase(kind);
    dir = await mkdtemp(join(tmpdir(), 'latchkey-keyrot-'));
  });
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
    // Released, or the next test's PGlite database would be a second instance (initdb: seconds of CPU).
    await database.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers with the addressed key set, moves the agent along a verified chain, refuses forged ones', async () => {
    const [i0, i1, stranger] = await Promise.all([newIdentity(), newIdentity(), newIdentity()]);
    const old = await start(i0);
    const state = join(dir, 'agent');
    await enrollAgent(ctx, { serverUrl: old.url, token: await tokenFrom(old), stateDir: state });
    const lateToken = await tokenFrom(old); // names i0
    expect((await sendInventory(ctx, state, await inventory())).receipt.status).toBe('accepted');

    expect(await recordEndorsement(database.db, ctx.crypto, i0, i1, await endorse(i0, i1), { at: new Date(), actor: 'test' })).toBe(
      'stored',
    );
    expect(await recordEndorsement(database.db, ctx.crypto, i0, i1, await endorse(i0, i1), { at: new Date(), actor: 'test' })).toBe(
      'exists',
    );
    // An endorsement i0 did not sign, or a second one for i1, is refused.
    expect(
      await codeOf(
        recordEndorsement(database.db, ctx.crypto, i0, stranger, await endorse(i1, stranger), { at: new Date(), actor: 'test' }),
      ),
    ).toBe('server_key_mismatch');
    expect(
      await codeOf(
        recordEndorsement(database.db, ctx.crypto, stranger, i1, await endorse(stranger, i1), { at: new Date(), actor: 'test' }),
      ),
    ).toBe('server_key_mismatch');

    const rotated = await start(i1, [i0]);
    const doc = (await (await fetch(`${rotated.url}/.well-known/latchkey`)).json()) as ReturnType<typeof discoveryDocument>;
    expect(doc.fingerprint).toBe(i1.fingerprint);
    expect(doc.previous?.map((p) => p.fingerprint)).toEqual([i0.fingerprint]);
    // A token issued before the rotation pins the previous set from this document.
    expect(pinServer(doc, i0.fingerprint).fingerprint).toBe(i0.fingerprint);

    // Sealed to i0, answered by the rotated instance with i0's key (the pinned one), directive inside.
    const agent = await loadState(ctx.crypto, state);
    const { receipt } = await submitEnvelope(ctx, agent, await sealInventory(ctx, agent, await inventory()), rotated.url);
    expect(receipt.directives?.serverKey?.fp).toBe(i1.fingerprint);
    expect(receipt.directives?.renewNow).toBe(true); // its credential was issued under i0
    expect((await loadState(ctx.crypto, state)).server.fingerprint).toBe(i1.fingerprint);

    // A directive whose link is not signed by the pinned key: refused, pin unchanged.
    const pinnedBefore = await readFile(join(state, 'agent.json'), 'utf8');
    const forged = { ...(await endorse(stranger, stranger)), kid: i1.signing.kid };
    const moved = await loadState(ctx.crypto, state);
    const forgedLink = await endorseServerKeys(
      ctx.crypto,
      { ...stranger.signing, fingerprint: i1.fingerprint },
      { signing: stranger.signing.publicKey, agreement: stranger.agreement.publicKey },
      { notBefore: 0, iat: 0 },
    );
    for (const endorsements of [[forgedLink], [forged]]) {
      const directive = {
        sig: b64u(stranger.signing.publicKey),
        kx: b64u(stranger.agreement.publicKey),
        fp: stranger.fingerprint,
        endorsements,
      };
      expect(await codeOf(followServerKeyDirective(ctx, moved, directive))).toBe('server_key_mismatch');
    }
    // A genuine chain that does not lead to the announced keys: refused too.
    const genuine = await endorse(i0, i1);
    const atI0 = { ...moved, server: i0 };
    expect(
      await codeOf(
        followServerKeyDirective(ctx, atI0, {
          sig: b64u(stranger.signing.publicKey),
          kx: b64u(stranger.agreement.publicKey),
          fp: stranger.fingerprint,
          endorsements: [genuine],
        }),
      ),
    ).toBe('server_key_mismatch');
    expect(await readFile(join(state, 'agent.json'), 'utf8')).toBe(pinnedBefore);
    // A discovery document cannot smuggle keys under a previous fingerprint it does not hash to.
    const smuggled = { ...discoveryDocument(i1), previous: [{ fingerprint: i0.fingerprint, keys: discoveryDocument(stranger).keys }] };
    expect(() => pinServer(smuggled, i0.fingerprint)).toThrow(ProtocolError);

    // Now sealed to i1, accepted by the rotated instance. An instance that does not hold i1 (the
    // agent's server URL is that old instance) answers recipient_mismatch, unsigned; the agent looks
    // for a rotation it missed, finds no chain from i1 to the announced i0, and never moves back.
    const now1 = await loadState(ctx.crypto, state);
    expect((await submitEnvelope(ctx, now1, await sealInventory(ctx, now1, await inventory()), rotated.url)).receipt.status).toBe(
      'accepted',
    );
    expect(await codeOf(submitEnvelope(ctx, now1, await sealInventory(ctx, now1, await inventory()), old.url))).toBe('server_key_mismatch');
    expect((await loadState(ctx.crypto, state)).server.fingerprint).toBe(i1.fingerprint);

    // The token issued before the rotation enrolls through the rotated instance (pinning i0).
    const late = join(dir, 'late');
    const lateRecord = await enrollAgent(ctx, { serverUrl: rotated.url, token: lateToken, stateDir: late });
    expect(lateRecord.server.fp).toBe(i0.fingerprint);

    // i0 dropped: the credential it issued is refused with a signed credential_invalid.
    const dropped = await start(i1);
    const err = await submitEnvelope(ctx, now1, await sealInventory(ctx, now1, await inventory()), dropped.url).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SignedRejection);
    expect((err as SignedRejection).code).toBe('credential_invalid');
    // sendInventory renews (under i1) and sends.
    expect((await sendInventory(ctx, state, await inventory(), dropped.url)).receipt.status).toBe('accepted');
    const jwks = (await (await fetch(`${rotated.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid).sort()).toEqual([i0.signing.kid, i1.signing.kid].sort());
  }, 120_000);
});
