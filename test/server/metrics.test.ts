// /metrics beyond HTTP counts (issue 14), on PGlite and PostgreSQL, with the real prom-client registry
// the Node runtime uses: after real enrollments, messages, refusals, revocations and failed admin
// sign-ins, each counter moved by exactly the number of events; the store batcher's batch size and
// latency and the database pool gauges are exposed; refusals and failed sign-ins are logged at info
// with their code and never with the credential.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { sealInventory } from '../../src/agent/send.js';
import { loadState, type AgentState } from '../../src/agent/state.js';
import { utf8 } from '../../src/protocol/bytes.js';
import { createPromTelemetry } from '../../src/runtime/metrics.js';
import type { Logger } from '../../src/server/logger.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latchkey-metrics-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Prometheus text → { 'name{label="v"}': value } (labels as written by prom-client). */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe.each(dbKinds)('/metrics on %s', (kind) => {
  let server: TestServer;
  const lines: { level: string; obj: Record<string, unknown>; msg: string | undefined }[] = [];
  const capture =
    (level: string) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, obj: obj as Record<string, unknown>, msg });
    };
  const logger: Logger = { debug: capture('debug'), info: capture('info'), warn: capture('warn'), error: capture('error') };
  const admin = (path: string, init: RequestInit = {}) =>
    fetch(`${server.url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json', ...init.headers },
    });
  const scrape = async () => {
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    return parse(await res.text());
  };
  const delta = (before: Map<string, number>, after: Map<string, number>, key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
  let n = 0;
  async function newToken(): Promise<string> {
    const res = await admin('/v1/admin/tokens', { method: 'POST', body: '{}' });
    expect(res.status).toBe(201);
    return ((await res.json()) as { token: string }).token;
  }
  async function newAgent(token: string): Promise<AgentState> {
    const stateDir = join(dir, `${kind}-${n++}`);
    await enrollAgent(ctx, { serverUrl: server.url, token, stateDir, name: `m-${kind}-${n}` });
    return loadState(ctx.crypto, stateDir);
  }
  const post = (body: unknown) =>
    fetch(`${server.url}/v1/messages`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

  beforeAll(async () => {
    server = await startTestServer(kind, { telemetry: createPromTelemetry(), logger });
  }, 180_000);
  afterAll(() => server?.close());

  it('counts enrollments, messages, refusals and revocations by outcome, and store batches', async () => {
    const inventory = utf8(await readFile(new URL('../fixtures/glpi/core/computer_networkportwifi.json', import.meta.url), 'utf8'));
    const before = await scrape();

    // Two enrollments, then a token used twice: one refusal with its code.
    const token = await newToken();
    const alice = await newAgent(token);
    const bob = await newAgent(await newToken());
    const refusedCode = await enrollAgent(ctx, { serverUrl: server.url, token, stateDir: join(dir, `${kind}-again`), name: 'again' }).then(
      () => 'enrolled',
      (err: unknown) => (err as { code?: string }).code ?? String(err),
    );
    expect(refusedCode).toMatch(/^token_/);

    // Three messages stored (one at a time: each its own store statement), one replayed.
    const envelopes = [];
    for (let i = 0; i < 3; i++) envelopes.push(await sealInventory(ctx, alice, inventory));
    for (const e of envelopes) expect((await post(e)).status).toBe(200);
    const replay = await post(envelopes[0]);
    expect(replay.status).toBe(409);
    const replayCode = ((await replay.json()) as { error: { code: string } }).error.code;

    // A revocation, and two failed admin sign-ins (a wrong secret; no credential at all).
    expect((await admin(`/v1/admin/agents/${bob.agent.agentId}/revoke`, { method: 'POST', body: '{}' })).status).toBe(200);
    const wrong = `${server.adminToken.slice(0, -4)}AAAA`;
    expect((await fetch(`${server.url}/v1/admin/agents`, { headers: { authorization: `Bearer ${wrong}` } })).status).toBe(401);
    expect((await fetch(`${server.url}/v1/admin/agents`)).status).toBe(401);

    const after = await scrape();
    const d = (key: string) => delta(before, after, key);
    expect(d('latchkey_enrollments_total{outcome="success"}')).toBe(2);
    expect(d(`latchkey_enrollments_total{outcome="${refusedCode}"}`)).toBe(1);
    expect(d('latchkey_messages_total{outcome="accepted"}')).toBe(3);
    expect(d(`latchkey_messages_total{outcome="${replayCode}"}`)).toBe(1);
    expect(d('latchkey_revocations_total{kind="agents"}')).toBe(1);
    expect(d('latchkey_admin_auth_failures_total{code="unauthorized"}')).toBe(2);
    // HTTP requests by method, matched route and status, counted once each (the labelled children are
    // cached after the first use: the second and later requests of a label set must still count).
    expect(d('latchkey_http_requests_total{method="POST",route="/v1/messages",status="200"}')).toBe(3);
    expect(d('latchkey_http_requests_total{method="POST",route="/v1/messages",status="409"}')).toBe(1);
    expect(d('latchkey_http_request_duration_seconds_count{method="POST",route="/v1/messages",status="200"}')).toBe(3);
    expect(d('latchkey_http_requests_total{method="GET",route="/metrics",status="200"}')).toBe(1);
    // Three stored messages went through the batcher (the replay is refused by the statement too).
    expect(d('latchkey_store_batch_size_count')).toBe(4);
    expect(d('latchkey_store_batch_size_sum')).toBe(4);
    expect(d('latchkey_store_batch_seconds_count')).toBe(4);
    expect(after.get('latchkey_store_batch_seconds_sum')).toBeGreaterThan(0);
    // Pool gauges, read at scrape time; nothing in flight once the requests are answered.
    expect(after.get('latchkey_database_connections_max')).toBeGreaterThanOrEqual(1);
    if (kind === 'pglite') expect(after.get('latchkey_database_connections_max')).toBe(1);
    expect(after.get('latchkey_database_statements_in_flight')).toBe(0);
    expect(after.get('latchkey_store_queued_messages')).toBe(0);
    expect(after.get('latchkey_store_statements_in_flight')).toBe(0);

    // Logged at info with their code; never the credential, whole or in part.
    const info = lines.filter((l) => l.level === 'info');
    expect(info.filter((l) => l.msg === 'message refused').map((l) => l.obj.code)).toEqual([replayCode]);
    const signIns = info.filter((l) => l.msg === 'admin sign-in refused');
    expect(signIns.map((l) => l.obj.code)).toEqual(['unauthorized', 'unauthorized']);
    expect(signIns.map((l) => l.obj.reason)).toEqual(['malformed, unknown, revoked or wrong credential', 'no bearer credential']);
    const secret = server.adminToken.split('.').at(-1)!;
    expect(JSON.stringify(lines)).not.toContain(secret.slice(0, 12));
    expect(JSON.stringify(lines)).not.toContain(wrong);
  }, 120_000);
});
