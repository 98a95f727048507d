// The relay's /openapi.json is complete, like the server's (test/server/openapi.test.ts): a valid
// OpenAPI 3.1 document, every route the relay app registers is in it and nothing else is, unique
// operationIds, the shared Error schema on every error status, and every status the real relay (in
// front of the real server) answers to a set of probes is one the document lists for that operation.
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { composeRelay } from '../../src/relay/compose.js';
import { silentLogger } from '../../src/server/logger.js';
import { startTestServer, type TestServer } from '../helpers/app.js';

type Responses = Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
type Operation = { operationId?: string; responses: Responses };
type Doc = { paths: Record<string, Record<string, Operation>> };

let server: TestServer;
let dir: string;
let relay: Awaited<ReturnType<typeof composeRelay>>;
let url: string;
let close: () => Promise<void>;
let doc: Doc;

beforeAll(async () => {
  server = await startTestServer('pglite');
  dir = await mkdtemp(join(tmpdir(), 'latchkey-relay-openapi-'));
  const res = await fetch(`${server.url}/v1/admin/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ uses: 1, ttlSeconds: 3600, role: 'relay' }),
  });
  const { token } = (await res.json()) as { token: string };
  await enrollAgent(server.ctx, { serverUrl: server.url, token, stateDir: dir });
  relay = await composeRelay(
    server.ctx,
    { stateDir: dir, upstream: server.url, spoolMaxBytes: 1 << 20, receiptWaitMs: 0, revocationIntervalMs: 60_000 },
    silentLogger,
    () => '127.0.0.1',
  );
  const http = createAdaptorServer({ fetch: relay.app.fetch, hostname: '127.0.0.1' });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  await relay.start();
  url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  close = async () => {
    await new Promise<void>((resolve) => http.close(() => resolve()));
    await relay.stop();
  };
  doc = (await (await fetch(`${url}/openapi.json`)).json()) as Doc;
}, 120_000);
afterAll(async () => {
  await close?.();
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const openapiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

function registered(): { method: string; path: string }[] {
  const seen = new Map<string, { method: string; path: string }>();
  for (const r of relay.app.routes) {
    if (r.method === 'ALL') continue;
    seen.set(`${r.method} ${r.path}`, { method: r.method.toLowerCase(), path: r.path });
  }
  return [...seen.values()];
}

function operations(): { method: string; path: string; op: Operation }[] {
  return Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ method, path, op })));
}

describe("the relay's /openapi.json", () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await new Validator().validate(doc as unknown as Record<string, unknown>);
    expect(result.errors ?? [], JSON.stringify(result.errors)).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('documents every registered route, and only those', () => {
    const routes = registered();
    expect(routes.length).toBeGreaterThanOrEqual(11);
    const missing = routes.filter((r) => !doc.paths[openapiPath(r.path)]?.[r.method]).map((r) => `${r.method} ${r.path}`);
    expect(missing).toEqual([]);
    const known = new Set(routes.map((r) => `${r.method} ${openapiPath(r.path)}`));
    expect(
      operations()
        .map(({ method, path }) => `${method} ${path}`)
        .filter((k) => !known.has(k)),
    ).toEqual([]);
  });

  it('gives every operation a unique operationId, and every error status the shared Error schema', () => {
    const ids = operations().map(({ op }) => op.operationId);
    expect(ids.filter((id) => typeof id !== 'string' || !/^[a-z][A-Za-z0-9]+$/.test(id))).toEqual([]);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { method, path, op } of operations()) {
      const where = `${method} ${path}`;
      expect(Object.keys(op.responses), where).toEqual(expect.arrayContaining(['500', '503']));
      if (method === 'post') expect(Object.keys(op.responses), where).toContain('413');
      for (const [status, response] of Object.entries(op.responses)) {
        if (Number(status) < 400) continue;
        expect(response.content?.['application/json']?.schema?.$ref, `${where} ${status}`).toBe('#/components/schemas/Error');
      }
    }
  });

  it('lists every status the routes answer to probes', async () => {
    const undocumented: string[] = [];
    for (const { method, path } of registered()) {
      const target = `${url}${path.replace(/:[A-Za-z0-9_]+/g, 'no-such-thing')}`;
      const documented = Object.keys(doc.paths[openapiPath(path)]?.[method]?.responses ?? {});
      const probes: RequestInit[] = [{}];
      if (method === 'post') {
        probes.push(
          { body: '{}', headers: { 'content-type': 'application/json' } },
          { body: 'x', headers: { 'content-type': 'text/plain' } },
          { body: '{"envelopes":[{}]}', headers: { 'content-type': 'application/json' } },
          { body: `"${'x'.repeat(80 * 1024)}"`, headers: { 'content-type': 'application/json' } },
        );
      }
      for (const probe of probes) {
        const res = await fetch(target, { method: method.toUpperCase(), ...probe });
        await res.arrayBuffer();
        if (!documented.includes(String(res.status))) undocumented.push(`${method} ${path} → ${res.status}`);
      }
    }
    expect(undocumented).toEqual([]);
  }, 60_000);
});
