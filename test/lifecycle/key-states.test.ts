// The key state machine of spec §12/§13 over real HTTP on PGlite and PostgreSQL, on the test
// server's clock: every transition with its code (active, superseded within and after the overlap,
// expired, key revoked, agent revoked); the admin's renew-now directive; agent keys listed and
// revoked by id or name, with the reason; per-token credential lifetimes.
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { desc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { renewAgent } from '../../src/agent/renew.js';
import { sealInventory, submitEnvelope } from '../../src/agent/send.js';
import { loadState } from '../../src/agent/state.js';
import { agentKeys, agents, auditLog } from '../../src/db/schema.js';
import { utf8 } from '../../src/protocol/bytes.js';
import type { Receipt } from '../../src/protocol/receipt.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
const inventory = utf8(await readFile(new URL('../fixtures/glpi/format/computer_1_partial_memory.json', import.meta.url), 'utf8'));
const DAY = 24 * 3600_000;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latchkey-key-states-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));
let n = 0;

interface KeyView {
  sigKid: string;
  agentId: string;
  agentName: string;
  status: string;
  expiresAt: string;
  supersededUntil: string | null;
  replacedBy: string | null;
  revokedAt: string | null;
  revocationReason: string | null;
}

describe.each(dbKinds)('key states on %s', (kind) => {
  let server: TestServer;
  let clock = Date.now();
  const c = () => ({ ...ctx, now: () => clock });
  const admin = (path: string, init: RequestInit = {}, token = server.adminToken) =>
    fetch(`${server.url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(init.headers as Record<string, string>) },
    });
  const post = (path: string, body: unknown = {}) => admin(path, { method: 'POST', body: JSON.stringify(body) });

  async function newAgent(name: string, tokenBody: Record<string, unknown> = {}): Promise<string> {
    const res = await post('/v1/admin/tokens', tokenBody);
    expect(res.status).toBe(201);
    const { token } = (await res.json()) as { token: string };
    const stateDir = join(dir, `${kind}-${n++}`);
    await enrollAgent(c(), { serverUrl: server.url, token, stateDir, name });
    return stateDir;
  }
  /** Sends one inventory: the signed receipt, or the code of the signed rejection. */
  const send = async (stateDir: string): Promise<Receipt | string> => {
    const state = await loadState(ctx.crypto, stateDir);
    try {
      return (await submitEnvelope(c(), state, await sealInventory(c(), state, inventory))).receipt;
    } catch (e) {
      expect((e as Error).name, String(e)).toBe('SignedRejection');
      return (e as { code: string }).code;
    }
  };
  const outcome = async (stateDir: string) => {
    const r = await send(stateDir);
    return typeof r === 'string' ? r : r.status;
  };
  const keysOf = async (agent: string) => {
    const res = await admin(`/v1/admin/keys?agent=${encodeURIComponent(agent)}`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { keys: KeyView[] }).keys;
  };

  beforeAll(async () => {
    server = await startTestServer(kind, { now: () => clock });
  });
  afterAll(() => server.close());

  it('active → superseded (accepted during the overlap) → key_expired after it; the new key until its expiry, then key_expired', async () => {
    const name = `states-a-${kind}`;
    const stateDir = await newAgent(name);
    const old = await loadState(ctx.crypto, stateDir);
    expect(await outcome(stateDir)).toBe('accepted'); // active
    const backup = `${stateDir}.old`;
    await cp(stateDir, backup, { recursive: true });
    const renewed = await renewAgent(c(), stateDir);

    // Superseded, within the overlap (10 minutes by default): a message already on its way lands.
    clock += 9 * 60_000;
    expect(await outcome(backup)).toBe('accepted');
    expect(await outcome(stateDir)).toBe('accepted');
    let listed = await keysOf(name);
    expect(listed.find((k) => k.sigKid === old.keys.signing.kid)).toMatchObject({ status: 'superseded', replacedBy: renewed.sigKid });
    expect(listed.find((k) => k.sigKid === renewed.sigKid)).toMatchObject({ status: 'active', replacedBy: null });

    // Past the overlap: refused, from this instance's memory of the key (the store statement says
    // so) and again through the full lookup (the statement that reads an unknown key).
    clock += 60_001 + 1;
    expect(await outcome(backup)).toBe('key_expired');
    server.state.ingest.senderKeys.delete(old.keys.signing.kid);
    server.state.ingest.limits.refusedKeys.delete(old.keys.signing.kid);
    expect(await outcome(backup)).toBe('key_expired');
    expect(await outcome(stateDir)).toBe('accepted');
    listed = await keysOf(old.agent.agentId);
    expect(listed.find((k) => k.sigKid === old.keys.signing.kid)!.status).toBe('expired');

    // The new key, at the end of its life (30 days by default): expired.
    const expiresAt = Date.parse(listed.find((k) => k.sigKid === renewed.sigKid)!.expiresAt);
    expect(expiresAt).toBeGreaterThan(clock + 29 * DAY);
    clock = expiresAt + 1; // (the clock only moves forward: budgets refill with it)
    expect(await outcome(stateDir)).toBe('key_expired');
    expect((await keysOf(name)).find((k) => k.sigKid === renewed.sigKid)!.status).toBe('expired');
  });

  it('a revoked key is refused key_revoked (its agent keeps sending with another key); a revoked agent agent_revoked, by name, with the reason listed and audited', async () => {
    const name = `states-b-${kind}`;
    const stateDir = await newAgent(name);
    const old = await loadState(ctx.crypto, stateDir);
    const backup = `${stateDir}.old`;
    await cp(stateDir, backup, { recursive: true });
    const renewed = await renewAgent(c(), stateDir);
    expect(await outcome(backup)).toBe('accepted'); // superseded, within the overlap

    // Revoking the superseded key ends its overlap at once.
    expect((await post(`/v1/admin/keys/${old.keys.signing.kid}/revoke`, { reason: 'laptop stolen' })).status).toBe(200);
    expect(await outcome(backup)).toBe('key_revoked');
    expect(await outcome(stateDir)).toBe('accepted');
    let listed = await keysOf(name);
    expect(listed.find((k) => k.sigKid === old.keys.signing.kid)).toMatchObject({ status: 'revoked', revocationReason: 'laptop stolen' });
    expect(listed.find((k) => k.sigKid === old.keys.signing.kid)!.revokedAt).toBe(new Date(clock).toISOString());

    // The whole agent, named by its name.
    expect((await post(`/v1/admin/agents/${name}/revoke`, { reason: 'decommissioned' })).status).toBe(200);
    expect(await outcome(stateDir)).toBe('agent_revoked');
    expect(await outcome(backup)).toBe('agent_revoked'); // the agent's status comes first
    listed = await keysOf(name);
    expect(listed.find((k) => k.sigKid === renewed.sigKid)).toMatchObject({ status: 'revoked', revocationReason: 'decommissioned' });
    expect(listed.find((k) => k.sigKid === old.keys.signing.kid)!.revocationReason).toBe('laptop stolen'); // its own, kept

    const audit = await server.database.db
      .select()
      .from(auditLog)
      .where(eq(auditLog.agentId, old.agent.agentId))
      .orderBy(desc(auditLog.seq));
    expect(audit.find((e) => e.action === 'key.revoke')!.details).toMatchObject({ sigKid: old.keys.signing.kid, reason: 'laptop stolen' });
    expect(audit.find((e) => e.action === 'agent.revoke')!.details).toMatchObject({ reason: 'decommissioned' });

    expect((await post('/v1/admin/agents/no-such-agent/revoke', { reason: 'x' })).status).toBe(404);
    expect((await admin('/v1/admin/keys?agent=no-such-agent')).status).toBe(404);
    expect((await admin(`/v1/admin/keys?agent=${encodeURIComponent('bad name!')}`)).status).toBe(400);
  });

  it('agents list shows an agent whose keys are all revoked as revoked, and one with a key left as active', async () => {
    const name = `states-c-${kind}`;
    const stateDir = await newAgent(name);
    const s = await loadState(ctx.crypto, stateDir);
    const statusOf = async () => {
      const { agents: list } = (await (await admin('/v1/admin/agents?limit=1000')).json()) as { agents: { id: string; status: string }[] };
      return list.find((a) => a.id === s.agent.agentId)!.status;
    };
    expect(await statusOf()).toBe('active');
    expect((await post(`/v1/admin/keys/${s.keys.signing.kid}/revoke`, { reason: 'only key' })).status).toBe(200);
    expect(await statusOf()).toBe('revoked');
    expect(await outcome(stateDir)).toBe('key_revoked');
  });

  it('renew-now (by name or id): receipts carry renewNow until the agent renews; audited; needs agents:write', async () => {
    const name = `states-d-${kind}`;
    const stateDir = await newAgent(name);
    const s = await loadState(ctx.crypto, stateDir);
    const renewNow = async () => {
      const r = await send(stateDir);
      expect(typeof r).not.toBe('string');
      return (r as Receipt).directives?.renewNow === true;
    };
    expect(await renewNow()).toBe(false);

    // A read-only admin key may not ask.
    const created = await post('/v1/admin/admin-keys', { name: `reader-${kind}`, scopes: ['read'] });
    const { credential: reader } = (await created.json()) as { credential: string };
    expect((await admin(`/v1/admin/agents/${name}/renew-now`, { method: 'POST', body: '{}' }, reader)).status).toBe(403);

    const res = await post(`/v1/admin/agents/${name}/renew-now`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: s.agent.agentId, renewRequestedAt: new Date(clock).toISOString() });
    expect(await renewNow()).toBe(true);
    expect(await renewNow()).toBe(true); // until it renews
    const [entry] = await server.database.db
      .select()
      .from(auditLog)
      .where(eq(auditLog.action, 'agent.renew-now'))
      .orderBy(desc(auditLog.seq))
      .limit(1);
    expect(entry).toMatchObject({ agentId: s.agent.agentId, outcome: 'success' });

    await renewAgent(c(), stateDir);
    expect(await renewNow()).toBe(false);
    expect((await post(`/v1/admin/agents/${s.agent.agentId}/renew-now`)).status).toBe(200); // by id
    expect(await renewNow()).toBe(true);

    expect((await post('/v1/admin/agents/nobody-here/renew-now')).status).toBe(404);
    expect((await post(`/v1/admin/agents/${name}/revoke`, { reason: 'gone' })).status).toBe(200);
    const refused = await post(`/v1/admin/agents/${name}/renew-now`);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('agent_revoked');
  });

  it("a token's credential lifetime: the enrolled agent's keys and its renewals live that long; out of range is request_invalid", async () => {
    const stateDir = await newAgent(`states-e-${kind}`, { credentialTtlSeconds: 2 * 3600 });
    const s = await loadState(ctx.crypto, stateDir);
    const [agent] = await server.database.db.select().from(agents).where(eq(agents.id, s.agent.agentId));
    expect(agent!.credentialTtlSeconds).toBe(7200);
    const [key] = await server.database.db.select().from(agentKeys).where(eq(agentKeys.sigKid, s.keys.signing.kid));
    expect(key!.createdAt.getTime()).toBe(clock);
    expect(key!.expiresAt.getTime()).toBe((Math.floor(clock / 1000) + 7200) * 1000);
    const renewed = await renewAgent(c(), stateDir);
    const [next] = await server.database.db.select().from(agentKeys).where(eq(agentKeys.sigKid, renewed.sigKid));
    expect(next!.expiresAt.getTime()).toBe((Math.floor(clock / 1000) + 7200) * 1000);

    const tokens = (await (await admin('/v1/admin/tokens?limit=1000')).json()) as { tokens: { credentialTtlSeconds: number | null }[] };
    expect(tokens.tokens.some((t) => t.credentialTtlSeconds === 7200)).toBe(true);
    for (const bad of [59, 3599, 0, -1, 1.5, 11 * 366 * 86400, '7d']) {
      const res = await post('/v1/admin/tokens', { credentialTtlSeconds: bad });
      expect(res.status, String(bad)).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('request_invalid');
    }
  });
});
