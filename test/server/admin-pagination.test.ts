// Issue 10 item 11: admin listings past 65,535 agents and tokens (PostgreSQL's limit on one
// statement's parameters). 70,000 rows are inserted in bulk (generate_series), all with the same
// created_at (one statement), so the order's tie-break on id is exercised too. Every row comes back
// exactly once through the API's cursor and through the real CLI, which follows it; PGlite and PostgreSQL.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { runCli } from '../helpers/process.js';
import { testContext } from '../helpers/protocol.js';

const BULK = 70_000;
const ctx = testContext();

describe.each(dbKinds)('admin listings past 65,535 rows on %s', (kind) => {
  let server: TestServer;
  let dir: string;
  let enrolledId: string;
  const get = async (path: string) => {
    const res = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${server.adminToken}` } });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-pages-'));
    server = await startTestServer(kind);
    await server.database.withSession(async (run) => {
      await run(
        `INSERT INTO agents (id, name, role) SELECT 'bulk-' || lpad(g::text, 6, '0'), 'bulk-agent-' || g, 'agent' FROM generate_series(1, ${BULK}) g`,
      );
      await run(
        `INSERT INTO enrollment_tokens (id, secret_hash, role, uses_total, uses_left, expires_at) SELECT 'bulk-' || g, '\\x00'::bytea, 'agent', 1, 1, now() + interval '1 hour' FROM generate_series(1, ${BULK}) g`,
      );
    });
    // One agent enrolled for real afterwards: its keys and its token's use must come with it.
    const res = await fetch(`${server.url}/v1/admin/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    enrolledId = (
      await enrollAgent(ctx, {
        serverUrl: server.url,
        token: ((await res.json()) as { token: string }).token,
        stateDir: join(dir, 'agent'),
        name: 'real-one',
      })
    ).agentId;
  }, 180_000);
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('GET /v1/admin/agents pages through every agent exactly once, keys attached', async () => {
    const first = await get('/v1/admin/agents');
    expect(first.status).toBe(200);
    expect((first.body.agents as unknown[]).length).toBe(100); // default page
    expect(typeof first.body.next_cursor).toBe('string');

    const ids = new Set<string>();
    let pages = 0;
    let cursor: string | null = null;
    let real: { keys: unknown[] } | undefined;
    do {
      const page = await get(`/v1/admin/agents?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(page.status).toBe(200);
      for (const a of page.body.agents as { id: string; keys: unknown[] }[]) {
        expect(ids.has(a.id)).toBe(false);
        ids.add(a.id);
        if (a.id === enrolledId) real = a;
      }
      cursor = page.body.next_cursor as string | null;
      pages++;
    } while (cursor);
    expect(ids.size).toBe(BULK + 1);
    expect(pages).toBe(Math.ceil((BULK + 1) / 1000));
    expect(real?.keys).toHaveLength(1);
  }, 180_000);

  it('latchkey token list follows the cursor (real CLI process); bad cursors and limits are request_invalid', async () => {
    const listed = await runCli(['token', 'list', '--json', '--server', server.url, '--admin-token', server.adminToken]);
    expect(listed.code).toBe(0);
    const tokens = JSON.parse(listed.stdout) as { id: string; uses: { agentId: string }[] }[];
    expect(new Set(tokens.map((t) => t.id)).size).toBe(BULK + 1);
    expect(tokens.find((t) => t.uses.length)?.uses[0]!.agentId).toBe(enrolledId);

    for (const q of ['cursor=not-a-cursor', `cursor=${Buffer.from('["x","y"]').toString('base64url')}`, 'limit=0', 'limit=1001']) {
      const r = await get(`/v1/admin/tokens?${q}`);
      expect(r.status, q).toBe(400);
      expect((r.body.error as { code: string }).code, q).toBe('request_invalid');
    }
  }, 180_000);
});
