// Inventory history and export through the real admin API (in-process server, real HTTP): an agent's
// inventories by id or name, oldest first, in cursor pages, from --since on; one by its message id;
// every agent's with content, page by page (what `latchkey inventory export` streams); and GET
// /v1/admin/forward. PGlite and PostgreSQL.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agents, inventories } from '../../src/db/schema.js';
import { b64u } from '../../src/protocol/bytes.js';
import { syncTargets, targetIdOf } from '../../src/server/services/forward-outbox.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';

interface Entry {
  agentId: string;
  agentName: string;
  messageId: string;
  receivedAt: string;
  size: number;
  inventory?: { n: number };
}
interface Page {
  inventories: Entry[];
  next_cursor: string | null;
}

describe.each(dbKinds)('inventory history and export on %s', (kind) => {
  let server: TestServer;
  const t0 = Date.parse('2026-11-01T00:00:00Z');
  const get = async (path: string) => {
    const res = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${server.adminToken}` } });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const all = async (path: string): Promise<Entry[]> => {
    const out: Entry[] = [];
    let cursor: string | null = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const r = await get(`${path}${cursor ? `${sep}cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(r.status).toBe(200);
      const page = r.body as unknown as Page;
      out.push(...page.inventories);
      cursor = page.next_cursor;
    } while (cursor);
    return out;
  };

  beforeAll(async () => {
    server = await startTestServer(kind);
    const { db } = server.database;
    await db.insert(agents).values([
      { id: 'ag_one', name: 'host-one', role: 'agent' },
      { id: 'ag_two', name: 'host-two', role: 'agent' },
    ]);
    // ag_one: 7 inventories a minute apart, two of them at the same instant (the id breaks the tie).
    const at = [0, 1, 2, 3, 3, 4, 5].map((m) => new Date(t0 + m * 60_000));
    await db.insert(inventories).values([
      ...at.map((receivedAt, n) => ({
        agentId: 'ag_one',
        messageId: new Uint8Array(randomBytes(16)),
        receivedAt,
        size: 7,
        content: { n },
      })),
      ...[0, 1].map((n) => ({
        agentId: 'ag_two',
        messageId: new Uint8Array(randomBytes(16)),
        receivedAt: new Date(t0 + 30_000 + n * 60_000),
        size: 7,
        content: { n: 100 + n },
      })),
    ]);
  });
  afterAll(async () => server?.close());

  it("lists an agent's inventories oldest first, by id or name, in cursor pages, from since on", async () => {
    const byName = await all('/v1/admin/agents/host-one/inventories?limit=3');
    expect(byName).toHaveLength(7);
    expect(byName.every((e) => e.agentId === 'ag_one' && e.agentName === 'host-one' && e.inventory === undefined)).toBe(true);
    const byId = await all('/v1/admin/agents/ag_one/inventories?limit=2');
    expect(byId.map((e) => e.messageId)).toEqual(byName.map((e) => e.messageId));
    const times = byName.map((e) => Date.parse(e.receivedAt));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const since = await all(`/v1/admin/agents/host-one/inventories?since=${encodeURIComponent(new Date(t0 + 3 * 60_000).toISOString())}`);
    expect(since).toHaveLength(4);
    expect((await get('/v1/admin/agents/nobody/inventories')).status).toBe(404);
    expect((await get('/v1/admin/agents/host-one/inventories?cursor=bogus')).status).toBe(400);
    expect((await get('/v1/admin/agents/host-one/inventories?since=yesterday')).status).toBe(400);
  });

  it('shows one inventory by its message id', async () => {
    const [, second] = await all('/v1/admin/agents/host-one/inventories');
    const r = await get(`/v1/admin/agents/host-one/inventories/${second!.messageId}`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ agentId: 'ag_one', messageId: second!.messageId, inventory: { n: 1 } });
    expect((await get(`/v1/admin/agents/host-two/inventories/${second!.messageId}`)).status).toBe(404);
    expect((await get(`/v1/admin/agents/host-one/inventories/${b64u(new Uint8Array(16))}`)).status).toBe(404);
    expect((await get('/v1/admin/agents/host-one/inventories/short')).status).toBe(400);
  });

  it("exports every agent's inventories with content, page by page, in the order received", async () => {
    const exported = await all('/v1/admin/inventories?limit=4');
    expect(exported.map((e) => e.inventory!.n)).toEqual([0, 100, 1, 101, 2, 3, 4, 5, 6]);
    const since = await all(`/v1/admin/inventories?since=${encodeURIComponent(new Date(t0 + 60_000).toISOString())}`);
    expect(since.map((e) => e.inventory!.n)).toEqual([1, 101, 2, 3, 4, 5, 6]);
    expect((await get('/v1/admin/inventories?limit=201')).status).toBe(400);
  });

  it('reports forwarding targets at GET /v1/admin/forward, documented in OpenAPI', async () => {
    expect((await get('/v1/admin/forward')).body).toEqual({ targets: [] });
    const url = 'https://glpi.example/front/inventory.php';
    await syncTargets(server.database.db, [{ id: targetIdOf(new URL(url)), url }], Date.now());
    const r = await get('/v1/admin/forward');
    expect(r.body).toEqual({
      targets: [
        {
          id: targetIdOf(new URL(url)),
          url,
          active: true,
          backlog: 0,
          oldestUndeliveredSeconds: null,
          deliveredTotal: 0,
          lastDeliveredAt: null,
          lastError: null,
          lastErrorAt: null,
        },
      ],
    });
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    for (const p of [
      '/v1/admin/forward',
      '/v1/admin/inventories',
      '/v1/admin/agents/{id}/inventories',
      '/v1/admin/agents/{id}/inventories/{messageId}',
    ])
      expect(doc.paths[p], p).toBeDefined();
  });
});
