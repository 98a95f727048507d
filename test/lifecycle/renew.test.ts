// Renewal over real HTTP on PGlite and PostgreSQL (spec §12): keys rotate, the agent keeps sending,
// retries get the same answer, a crash at each step leaves a working key, and refusals that matter
// are signed. Revocation lists (§13) verify with the pinned key and cannot be rolled back.
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { renewAgent, RenewRefused } from '../../src/agent/renew.js';
import { sealInventory, submitEnvelope } from '../../src/agent/send.js';
import { loadState, RENEWAL_JOURNAL } from '../../src/agent/state.js';
import { agentKeys, auditLog } from '../../src/db/schema.js';
import { utf8 } from '../../src/protocol/bytes.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import { applyRevocationList, emptyRevocations, verifyRevocationList } from '../../src/protocol/revocation-list.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
const inventory = utf8(await readFile(new URL('../fixtures/glpi/format/computer_1_partial_memory.json', import.meta.url), 'utf8'));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latchkey-renew-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));
let n = 0;

const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return `${e instanceof RenewRefused ? 'signed ' : ''}${(e as { code?: string }).code ?? String(e)}`;
  }
};

describe.each(dbKinds)('renewal on %s', (kind) => {
  let server: TestServer;
  let clock = Date.now();
  const admin = (path: string, init: RequestInit = {}) =>
    fetch(`${server.url}${path}`, {
      ...init,
      headers: {
        authorization: `Bearer ${server.adminToken}`,
        'content-type': 'application/json',
        ...(init.headers as Record<string, string>),
      },
    });

  async function newAgent(name: string): Promise<string> {
    const { token } = (await (await admin('/v1/admin/tokens', { method: 'POST', body: '{}' })).json()) as { token: string };
    const stateDir = join(dir, `${kind}-${n++}`);
    await enrollAgent({ ...ctx, now: () => clock }, { serverUrl: server.url, token, stateDir, name });
    return stateDir;
  }
  const c = () => ({ ...ctx, now: () => clock });
  const send = async (stateDir: string) => {
    const state = await loadState(ctx.crypto, stateDir);
    return (await submitEnvelope(c(), state, await sealInventory(c(), state, inventory))).receipt.status;
  };
  const keyRow = async (sigKid: string) => (await server.database.db.select().from(agentKeys).where(eq(agentKeys.sigKid, sigKid)))[0]!;

  beforeAll(async () => {
    server = await startTestServer(kind, { now: () => clock });
  });
  afterAll(() => server.close());

  it('rotates the keys, supersedes the old one, issues a new credential, and the agent keeps sending', async () => {
    const stateDir = await newAgent(`renew-a-${kind}`);
    const before = await loadState(ctx.crypto, stateDir);
    expect(await send(stateDir)).toBe('accepted');
    clock += 1000;
    const out = await renewAgent(c(), stateDir);
    const after = await loadState(ctx.crypto, stateDir);
    expect(out.previousSigKid).toBe(before.keys.signing.kid);
    expect(after.keys.signing.kid).toBe(out.sigKid);
    expect(after.keys.signing.kid).not.toBe(before.keys.signing.kid);
    expect(after.agent.credential).not.toBe(before.agent.credential);
    expect(await readdir(stateDir)).not.toContain('pending.json');

    const old = await keyRow(before.keys.signing.kid);
    expect(old.status).toBe('superseded');
    expect(old.replacedBy).toBe(out.sigKid);
    expect(old.supersededUntil!.getTime()).toBe(clock + 10 * 60_000);
    expect((await keyRow(out.sigKid)).status).toBe('active');
    expect(await send(stateDir)).toBe('accepted');

    const [audit] = await server.database.db
      .select()
      .from(auditLog)
      .where(eq(auditLog.action, 'agent.renew'))
      .orderBy(sql`seq desc`)
      .limit(1);
    expect(audit!.details).toMatchObject({ oldSigKid: before.keys.signing.kid, sigKid: out.sigKid });
    const listed = (await (await admin('/v1/admin/agents')).json()) as
      | { agents?: { id: string; keys: { sigKid: string; status: string }[] }[] }
      | { id: string; keys: { sigKid: string; status: string }[] }[];
    const agentsList = Array.isArray(listed) ? listed : listed.agents!;
    const me = agentsList.find((a) => a.id === after.agent.agentId)!;
    expect(me.keys.map((k) => [k.sigKid, k.status]).sort()).toEqual(
      [
        [before.keys.signing.kid, 'superseded'],
        [out.sigKid, 'active'],
      ].sort(),
    );
  });

  it('answers a repeated renewal (a lost answer, a crash before the journal) with the same credential', async () => {
    const stateDir = await newAgent(`renew-b-${kind}`);
    const backup = `${stateDir}.bak`;
    await cp(stateDir, backup, { recursive: true });
    // First attempt: the server renews, then we "lose" the answer by restoring the old state and
    // keeping the pending keys the attempt made.
    const first = await renewAgent(c(), stateDir);
    const pendingNow = await readFile(join(stateDir, 'keys.json'), 'utf8');
    await rm(stateDir, { recursive: true });
    await cp(backup, stateDir, { recursive: true });
    await writeFile(join(stateDir, 'pending.json'), pendingNow, { mode: 0o600 });
    clock += 60_000;
    const second = await renewAgent(c(), stateDir);
    expect(second.sigKid).toBe(first.sigKid);
    expect(second.agent.credential).toBe(first.agent.credential);
    expect(await send(stateDir)).toBe('accepted');
  });

  it('finishes a journaled renewal on the next load (crash between writing keys and record)', async () => {
    const stateDir = await newAgent(`renew-c-${kind}`);
    const before = await loadState(ctx.crypto, stateDir);
    const out = await renewAgent(c(), stateDir);
    const renewedKeys = await readFile(join(stateDir, 'keys.json'), 'utf8');
    const renewedAgent = JSON.parse(await readFile(join(stateDir, 'agent.json'), 'utf8')) as unknown;
    // Put the old keys back and leave only the journal: as if the process died right after it.
    await writeFile(
      join(stateDir, 'keys.json'),
      JSON.stringify({
        v: 1,
        signing: Buffer.from(before.keys.signing.privateKey).toString('base64url'),
        agreement: Buffer.from(before.keys.agreement.privateKey).toString('base64url'),
      }),
    );
    await writeFile(join(stateDir, 'agent.json'), JSON.stringify(before.agent));
    await writeFile(
      join(stateDir, RENEWAL_JOURNAL),
      JSON.stringify({ v: 1, keys: JSON.parse(renewedKeys) as unknown, agent: renewedAgent }),
    );
    const state = await loadState(ctx.crypto, stateDir);
    expect(state.keys.signing.kid).toBe(out.sigKid);
    expect(state.agent.credential).toBe(out.agent.credential);
    expect(await readdir(stateDir)).not.toContain(RENEWAL_JOURNAL);
    expect(await send(stateDir)).toBe('accepted');
  });

  it('refuses, signed, a renewal from a revoked agent, a revoked key, and a superseded key past its overlap', async () => {
    const revoked = await newAgent(`renew-d-${kind}`);
    const r = await loadState(ctx.crypto, revoked);
    expect(
      (await admin(`/v1/admin/agents/${r.agent.agentId}/revoke`, { method: 'POST', body: JSON.stringify({ reason: 'test' }) })).status,
    ).toBeLessThan(300);
    expect(await codeOf(renewAgent(c(), revoked))).toBe('signed agent_revoked');
    expect((await loadState(ctx.crypto, revoked)).keys.signing.kid).toBe(r.keys.signing.kid);

    const keyRevoked = await newAgent(`renew-e-${kind}`);
    const k = await loadState(ctx.crypto, keyRevoked);
    expect(
      (await admin(`/v1/admin/keys/${k.keys.signing.kid}/revoke`, { method: 'POST', body: JSON.stringify({ reason: 'test' }) })).status,
    ).toBeLessThan(300);
    expect(await codeOf(renewAgent(c(), keyRevoked))).toBe('signed key_revoked');

    // Renewed once; the old key, restored, is still good for a repeat during the overlap only.
    const stale = await newAgent(`renew-f-${kind}`);
    const backup = `${stale}.bak`;
    await cp(stale, backup, { recursive: true });
    await renewAgent(c(), stale);
    await rm(stale, { recursive: true });
    await cp(backup, stale, { recursive: true }); // old keys, no pending: a renewal to OTHER keys
    expect(await codeOf(renewAgent(c(), stale))).toBe('signed key_expired');
    await rm(join(stale, 'pending.json'), { force: true });
    clock += 11 * 60_000;
    expect(await codeOf(renewAgent(c(), stale))).toBe('signed key_expired');
  });

  it('refuses an expired key, signed; a malformed request gets no receipt', async () => {
    const stateDir = await newAgent(`renew-g-${kind}`);
    await server.database.db
      .update(agentKeys)
      .set({ expiresAt: new Date(clock - 1) })
      .where(eq(agentKeys.sigKid, (await loadState(ctx.crypto, stateDir)).keys.signing.kid));
    expect(await codeOf(renewAgent(c(), stateDir))).toBe('signed key_expired');
    const res = await fetch(`${server.url}/v1/renew`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ v: 1, header: 'e30', enc: 'AA', ct: 'AA', sig: 'AA' }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { receipt?: unknown }).receipt).toBeUndefined();
  });

  it('publishes a signed revocation list: full, delta, ETag, and a rollback is refused', async () => {
    const pinned = (await loadState(ctx.crypto, await newAgent(`renew-h-${kind}`))).server;
    const full = await fetch(`${server.url}/v1/revocations`);
    const etag = full.headers.get('etag')!;
    const list = await verifyRevocationList(ctx.crypto, pinned.signing, await full.json());
    let held = applyRevocationList(emptyRevocations(), list);
    expect(list.entries.some((e) => e.kind === 'agent')).toBe(true);
    for (const e of list.entries) expect(e.subject).not.toMatch(/renew-/); // ids, never names
    expect((await fetch(`${server.url}/v1/revocations`, { headers: { 'if-none-match': etag } })).status).toBe(304);

    const victim = await loadState(ctx.crypto, await newAgent(`renew-i-${kind}`));
    await admin(`/v1/admin/keys/${victim.keys.signing.kid}/revoke`, { method: 'POST', body: JSON.stringify({ reason: 'leaked' }) });
    const delta = await verifyRevocationList(
      ctx.crypto,
      pinned.signing,
      await (await fetch(`${server.url}/v1/revocations?since=${held.version}`)).json(),
    );
    expect(delta.entries.map((e) => e.subject)).toEqual([victim.keys.signing.kid]);
    held = applyRevocationList(held, delta);
    expect(held.subjects.key.has(victim.keys.signing.kid)).toBe(true);
    expect(() => applyRevocationList(held, list)).toThrow(ProtocolError);
    expect((await fetch(`${server.url}/v1/revocations?since=-1`)).status).toBe(400);
  });
});
