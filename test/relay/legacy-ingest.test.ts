// Legacy origin through the server's storing statement, on PGlite and PostgreSQL (spec §11.2): a relay
// in process (compose with a legacy listener, driven over its Hono app) sends legacy inventories
// upstream to the real server; they land under their legacy agents (several in one batch, one legacy id
// twice), an XML one with its XML kept and its GLPI JSON mapping; after `adopt`, what the relay still
// receives under that legacy id is stored under the enrolled agent.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { legacyAgentId } from '../../src/protocol/legacy.js';
import { composeRelay } from '../../src/relay/compose.js';
import { parseCidr } from '../../src/server/services/cidr.js';
import { silentLogger } from '../../src/server/logger.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';

const fusion = readFileSync(new URL('../fixtures/legacy/fusioninventory-2.6.xml', import.meta.url), 'utf8');
const glpiJson = (deviceid: string) =>
  JSON.stringify({
    action: 'inventory',
    deviceid,
    itemtype: 'Computer',
    content: { versionclient: 'GLPI-Agent_v1.12', hardware: { name: deviceid } },
  });

interface Entry {
  agentId: string;
  inventory: { deviceid: string; content: { hardware?: { name?: string } } };
  legacy?: { id: string; protocol: string };
  raw?: string;
}

describe.each(dbKinds)('legacy-origin inventories stored on %s', (kind) => {
  let server: TestServer;
  let dir: string;
  let relay: Awaited<ReturnType<typeof composeRelay>>;
  const admin = (path: string, init: RequestInit = {}) =>
    fetch(`${server.url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
    });
  const token = async (role: 'agent' | 'relay') =>
    (
      (await (await admin('/v1/admin/tokens', { method: 'POST', body: JSON.stringify({ uses: 1, ttlSeconds: 3600, role }) })).json()) as {
        token: string;
      }
    ).token;
  const post = (body: Uint8Array, contentType: string, agentId?: string) =>
    relay.legacyApp!.request('/', {
      method: 'POST',
      headers: { 'content-type': contentType, ...(agentId ? { 'glpi-agent-id': agentId } : {}) },
      body,
    });
  const stored = async (n: number): Promise<Entry[]> => {
    for (let i = 0; i < 300; i++) {
      const r = (await (await admin('/v1/admin/inventories?limit=50')).json()) as { inventories: Entry[] };
      if (r.inventories.length >= n) return r.inventories;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`fewer than ${n} inventories stored`);
  };

  beforeAll(async () => {
    server = await startTestServer(kind);
    dir = await mkdtemp(join(tmpdir(), 'latchkey-legacy-ingest-'));
    await enrollAgent(server.ctx, { serverUrl: server.url, token: await token('relay'), stateDir: join(dir, 'relay') });
    relay = await composeRelay(
      server.ctx,
      {
        stateDir: join(dir, 'relay'),
        upstream: server.url,
        spoolMaxBytes: 1 << 26,
        receiptWaitMs: 0,
        revocationIntervalMs: 60_000,
        legacyTrust: [parseCidr('127.0.0.1/32')!],
      },
      silentLogger,
      () => '127.0.0.1',
    );
  }, 120_000);
  afterAll(async () => {
    await relay?.stop();
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('stores each under its legacy agent, batched, the XML as sent beside its mapping', async () => {
    // Spooled before the forwarder runs: they go upstream together, one legacy id twice.
    const answers = await Promise.all([
      post(deflateSync(fusion), 'application/x-compress-zlib'),
      post(gzipSync(glpiJson('pc-a')), 'application/x-compress-gzip', 'uuid-a'),
      post(new TextEncoder().encode(glpiJson('pc-a-again')), 'application/json', 'uuid-a'),
      post(deflateSync(fusion), 'application/x-compress'),
    ]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    await relay.start();
    const all = await stored(4);
    expect(all).toHaveLength(4);
    const byAgent = (id: string) => all.filter((e) => e.agentId === legacyAgentId(id));
    expect(
      byAgent('uuid-a')
        .map((e) => e.inventory.deviceid)
        .sort(),
    ).toEqual(['pc-a', 'pc-a-again']);
    const xml = byAgent('vm-2026-11-28-07-48-51');
    expect(xml.map((e) => e.legacy!.protocol).sort()).toEqual(['fusion-xml', 'ocs-xml']);
    expect(xml[0]!.raw).toBe(fusion);
    expect(xml[0]!.inventory.content.hardware!.name).toBe('vm');
    const listed = (await (await admin('/v1/admin/agents?kind=legacy')).json()) as { agents: { id: string; legacy: { id: string } }[] };
    expect(listed.agents.map((a) => a.legacy.id).sort()).toEqual(['uuid-a', 'vm-2026-11-28-07-48-51']);
  });

  it('after adopt, the history and later legacy inventories belong to the enrolled agent', async () => {
    const agentDir = join(dir, 'agent');
    const enrolled = await enrollAgent(server.ctx, { serverUrl: server.url, token: await token('agent'), stateDir: agentDir });
    const res = await admin(`/v1/admin/agents/${enrolled.agentId}/adopt`, {
      method: 'POST',
      body: JSON.stringify({ legacy: legacyAgentId('uuid-a') }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ legacy: legacyAgentId('uuid-a'), agent: enrolled.agentId, inventories: 2 });
    // Adopting it again for another, or adopting an enrolled agent, is refused.
    const wrong = await admin(`/v1/admin/agents/${enrolled.agentId}/adopt`, {
      method: 'POST',
      body: JSON.stringify({ legacy: enrolled.agentId }),
    });
    expect(wrong.status).toBe(400);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('request_invalid');

    expect((await post(new TextEncoder().encode(glpiJson('pc-a-later')), 'application/json', 'uuid-a')).status).toBe(200);
    const all = await stored(5);
    const mine = all.filter((e) => e.agentId === enrolled.agentId).map((e) => e.inventory.deviceid);
    expect(mine.sort()).toEqual(['pc-a', 'pc-a-again', 'pc-a-later']);
    expect(all.filter((e) => e.agentId === legacyAgentId('uuid-a'))).toEqual([]);
  });
});
