// The real `latchkey agent run` process behind a lying upstream (a small real HTTP server in the test)
// in front of a real server on PGlite and PostgreSQL: a 429 with Retry-After is waited out, 5xx and a
// proxy's unsigned 403 are retried with the same inventory and the keys kept; a signed revocation
// stops the daemon with a non-zero exit and one clear line.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { inventories } from '../../src/db/schema.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { describeEachDbSideBySide } from '../helpers/db.js';
import { answer, forwardTo, lyingUpstream } from '../helpers/upstream.js';
import { CLI, cleanEnv } from '../helpers/process.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
const fixture = (name: string) => new URL(`../fixtures/glpi/${name}`, import.meta.url).pathname;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latchkey-runcli-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function startDaemon(args: string[]) {
  const child = spawn(process.execPath, [CLI, 'agent', 'run', ...args], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = once(child, 'exit') as Promise<[number | null]>;
  return {
    child,
    exited,
    events: () =>
      log
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    stderr: () => err,
    async waitFor(pred: (e: Record<string, unknown>) => boolean, ms: number): Promise<boolean> {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        if (this.events().some(pred)) return true;
        await new Promise((r) => setTimeout(r, 100));
      }
      return false;
    },
  };
}

describeEachDbSideBySide('latchkey agent run against lying and busy upstreams, on %s', (kind) => {
  let server: TestServer;
  let state: string;
  let agentId: string;
  beforeAll(async () => {
    server = await startTestServer(kind);
    const res = await fetch(`${server.url}/v1/admin/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    state = join(dir, kind);
    agentId = (
      await enrollAgent(ctx, {
        serverUrl: server.url,
        token: ((await res.json()) as { token: string }).token,
        stateDir: state,
        name: `runner-${kind}`,
      })
    ).agentId;
  });
  afterAll(() => server.close());

  it('waits out 429 Retry-After, retries 5xx and an unsigned 403 with the same inventory, keeps its keys, delivers', async () => {
    const keysBefore = await readFile(join(state, 'keys.json'), 'utf8');
    const upstream = await lyingUpstream(forwardTo(server.url));
    upstream.script.push(
      answer(429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'retry-after': '2' }),
      answer(502, 'Bad Gateway'),
      answer(403, { error: { code: 'agent_revoked', message: 'proxy says no' } }),
    );
    const count = async () => (await server.database.db.select({ c: sql<number>`count(*)::int` }).from(inventories))[0]!.c;
    const before = await count();
    const started = Date.now();
    const daemon = startDaemon([
      '--state-dir',
      state,
      '--file',
      fixture('format/printer_2.json'),
      '--interval',
      '1h',
      '--via',
      upstream.url,
    ]);
    try {
      expect(await daemon.waitFor((e) => e.event === 'sent', 25_000)).toBe(true);
      const events = daemon.events();
      expect(events.map((e) => e.event)).toEqual(['retry', 'retry', 'retry', 'sent']);
      expect(events[0]).toMatchObject({ code: 'unsigned_answer', hint: 'rate_limited', status: 429 });
      expect(events[0]!.inMs as number).toBeGreaterThanOrEqual(2000);
      expect(events[1]).toMatchObject({ status: 502 });
      expect(events[2]).toMatchObject({ hint: 'agent_revoked', status: 403, signed: false });
      expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
      expect(new Set(upstream.seen).size).toBe(1); // the same envelope each time
      expect(await count()).toBe(before + 1);
      expect(await readFile(join(state, 'keys.json'), 'utf8')).toBe(keysBefore);
      expect(daemon.child.exitCode).toBeNull(); // still running: it sends again next interval
      daemon.child.kill('SIGTERM');
      expect((await daemon.exited)[0]).toBe(0);
    } finally {
      daemon.child.kill('SIGKILL');
      await upstream.close();
    }
  });

  it('stops with a non-zero exit and one clear line when a signed answer says the agent is revoked', async () => {
    const res = await fetch(`${server.url}/v1/admin/agents/${agentId}/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBeLessThan(300);
    const daemon = startDaemon(['--state-dir', state, '--file', fixture('format/printer_2.json'), '--interval', '1h']);
    try {
      const [code] = await Promise.race([daemon.exited, new Promise<[number | null]>((r) => setTimeout(() => r([-1]), 20_000))]);
      expect(code).toBe(1);
      expect(daemon.events()).toContainEqual(expect.objectContaining({ event: 'revoked', code: 'agent_revoked' }));
      expect(daemon.stderr().trim().split('\n')).toHaveLength(1);
      expect(daemon.stderr()).toMatch(/^error: agent_revoked:/);
    } finally {
      daemon.child.kill('SIGKILL');
    }
  });
});
