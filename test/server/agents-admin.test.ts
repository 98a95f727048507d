// Issue 14: admin commands name an agent by id or name; GET /v1/admin/agents filters server-side
// (status, role, label, name glob) and keeps paginating; GET /v1/admin/agents/{id} shows one agent
// with all its keys; DELETE /v1/admin/agents/{id} deletes a revoked agent only (agent_not_revoked
// otherwise), with its keys and inventories, audited, so its name can be enrolled again, while its
// revocation stays published and the audit chain stays intact. PGlite and PostgreSQL.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent, hostAgentName } from '../../src/agent/enroll.js';
import { readInventory, sendInventory } from '../../src/agent/send.js';
import { globToLike } from '../../src/server/services/agents.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
const fixture = new URL('../fixtures/glpi/format/printer_2.json', import.meta.url).pathname;

describe('names and globs', () => {
  it('sanitises a host name to the naming rule', () => {
    expect(hostAgentName('web-01.example.org')).toBe('web-01.example.org');
    expect(hostAgentName('Mary’s MacBook Pro')).toBe('Mary-s-MacBook-Pro');
    expect(hostAgentName('x'.repeat(200))).toBe('x'.repeat(128));
    expect(hostAgentName('')).toBeUndefined();
    expect(hostAgentName('---')).toBeUndefined();
  });
  it('turns a name glob into a LIKE pattern with LIKE’s own wildcards escaped', () => {
    expect(globToLike('web-*')).toBe('web-%');
    expect(globToLike('a_b?c%')).toBe('a\\_b_c\\%');
  });
});

describe.each(dbKinds)('agents admin on %s', (kind) => {
  let server: TestServer;
  let dir: string;
  const call = async (method: string, path: string, body?: unknown, token?: string) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token ?? server.adminToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> & { error?: { code: string } } };
  };
  const enroll = async (name: string, opts: { role?: 'agent' | 'relay'; labels?: Record<string, string> } = {}) => {
    const t = await call('POST', '/v1/admin/tokens', { role: opts.role ?? 'agent', labels: opts.labels ?? {} });
    const stateDir = join(dir, `${name}-${Math.random().toString(36).slice(2)}`);
    const record = await enrollAgent(ctx, { serverUrl: server.url, token: t.body.token as string, stateDir, name });
    return { id: record.agentId, stateDir };
  };
  const names = async (query: string) =>
    ((await call('GET', `/v1/admin/agents?${query}`)).body.agents as { name: string }[]).map((a) => a.name).sort();

  let web1: { id: string; stateDir: string };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-agents-admin-'));
    server = await startTestServer(kind);
    web1 = await enroll('web-1', { labels: { env: 'prod', team: 'a' } });
    await enroll('web_2', { labels: { env: 'dev' } });
    await enroll('webx2', { labels: { env: 'prod' } });
    await enroll('relay-1', { role: 'relay', labels: { env: 'prod' } });
    const gone = await enroll('db-1');
    expect((await call('POST', `/v1/admin/agents/db-1/revoke`, { reason: 'test' })).status).toBe(200);
    expect(gone.id).toBeTruthy();
    await sendInventory(ctx, web1.stateDir, await readInventory(fixture));
  }, 120_000);
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('filters the listing by status, role, labels and name glob, server-side', async () => {
    expect(await names('')).toEqual(['db-1', 'relay-1', 'web-1', 'web_2', 'webx2']);
    expect(await names('status=revoked')).toEqual(['db-1']);
    expect(await names('status=active&role=agent')).toEqual(['web-1', 'web_2', 'webx2']);
    expect(await names('role=relay')).toEqual(['relay-1']);
    expect(await names('label=env%3Dprod')).toEqual(['relay-1', 'web-1', 'webx2']);
    expect(await names('label=env%3Dprod&label=team%3Da')).toEqual(['web-1']);
    expect(await names('name=web*')).toEqual(['web-1', 'web_2', 'webx2']);
    // `_` in a glob is a literal underscore, not LIKE's one-character wildcard.
    expect(await names('name=web_?')).toEqual(['web_2']);
    expect(await names('name=web%3F2')).toEqual(['web_2', 'webx2']);
    // Filters and pagination together: every match exactly once, page by page.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await call('GET', `/v1/admin/agents?limit=1&status=active${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      seen.push(...(page.body.agents as { name: string }[]).map((a) => a.name));
      cursor = page.body.next_cursor as string | null;
    } while (cursor);
    expect(seen.sort()).toEqual(['relay-1', 'web-1', 'web_2', 'webx2']);
    for (const bad of ['status=gone', 'role=admin', 'label=noequals', 'name=a%20b']) {
      const r = await call('GET', `/v1/admin/agents?${bad}`);
      expect([r.status, r.body.error?.code]).toEqual([400, 'request_invalid']);
    }
  });

  it('shows one agent by id or by name, with every key', async () => {
    const byName = await call('GET', '/v1/admin/agents/web-1');
    expect(byName.status).toBe(200);
    expect(byName.body).toMatchObject({ id: web1.id, name: 'web-1', role: 'agent', status: 'active', labels: { env: 'prod', team: 'a' } });
    expect(byName.body.lastSeenAt).not.toBeNull();
    expect((byName.body.keys as { status: string }[]).map((k) => k.status)).toEqual(['active']);
    expect((await call('GET', `/v1/admin/agents/${web1.id}`)).body.name).toBe('web-1');
    expect((await call('GET', '/v1/admin/agents/nobody')).body.error?.code).toBe('not_found');
    const inv = await call('GET', '/v1/admin/agents/web-1/inventory');
    expect([inv.status, inv.body.agentId]).toEqual([200, web1.id]);
  });

  it('deletes only a revoked agent; its name can be enrolled again, its revocation and audit stay', async () => {
    const refused = await call('DELETE', '/v1/admin/agents/web-1');
    expect([refused.status, refused.body.error?.code]).toEqual([409, 'agent_not_revoked']);
    expect((await call('DELETE', '/v1/admin/agents/nobody')).status).toBe(404);
    const readOnly = await call('POST', '/v1/admin/admin-keys', { name: 'ro', scopes: ['read'] });
    const forbidden = await call('DELETE', '/v1/admin/agents/db-1', undefined, readOnly.body.credential as string);
    expect([forbidden.status, forbidden.body.error?.code]).toEqual([403, 'forbidden']);

    expect((await call('POST', '/v1/admin/agents/web-1/revoke', { reason: 'decommissioned' })).status).toBe(200);
    const deleted = await call('DELETE', '/v1/admin/agents/web-1');
    expect(deleted.status).toBe(200);
    expect(deleted.body).toMatchObject({ id: web1.id, name: 'web-1', deleted: true, keys: 1, inventories: 1 });
    expect((await call('GET', `/v1/admin/agents/${web1.id}`)).status).toBe(404);
    expect((await call('GET', `/v1/admin/keys?agent=${web1.id}`)).status).toBe(404);
    await server.database.withSession(async (run) => {
      const left = await run(`SELECT (SELECT count(*) FROM inventories WHERE agent_id = '${web1.id}')::int AS inv,
        (SELECT count(*) FROM agent_keys WHERE agent_id = '${web1.id}')::int AS keys,
        (SELECT count(*) FROM revocations WHERE subject = '${web1.id}')::int AS revs`);
      expect(left[0]).toEqual({ inv: 0, keys: 0, revs: 1 });
    });
    // Sending with the deleted agent's keys is refused (its key is unknown now).
    await expect(sendInventory(ctx, web1.stateDir, await readInventory(fixture))).rejects.toMatchObject({ code: expect.any(String) });

    const again = await enroll('web-1');
    expect(again.id).not.toBe(web1.id);

    const audit = (await call('GET', '/v1/admin/audit?limit=1000')).body.entries as {
      action: string;
      agentId: string | null;
      details: object;
    }[];
    const entry = audit.find((e) => e.action === 'agent.delete');
    expect(entry).toMatchObject({ agentId: web1.id, details: { name: 'web-1', keys: 1, inventories: 1 } });
    expect(audit.some((e) => e.action === 'agent.enroll' && e.agentId === web1.id)).toBe(true);
    expect((await call('GET', '/v1/admin/audit/verify')).body.ok).toBe(true);
  });
});
