// /openapi.json is complete (issue 14): a valid OpenAPI 3.1 document (checked by an independent
// validator, @seriousme/openapi-schema-validator), every route the app registers is in it (method and
// path, path params normalised) and nothing else is, each operation has a unique operationId and the
// shared Error schema on every error status, and every status the real routes answer to a set of
// probes (no credential, a credential, an unknown id, a wrong media type, an oversized body) is one
// the document lists for that operation.
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/app.js';

type Responses = Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
type Operation = { operationId?: string; responses: Responses };
type Doc = { paths: Record<string, Record<string, Operation>> };

let server: TestServer;
let doc: Doc;

beforeAll(async () => {
  server = await startTestServer('pglite', { limits: { maxBodyBytes: 1024, maxMessageBodyBytes: 2048 } });
  const res = await fetch(`${server.url}/openapi.json`);
  expect(res.status).toBe(200);
  doc = (await res.json()) as Doc;
}, 120_000);
afterAll(async () => {
  await server?.close();
});

/** hono's `/v1/x/:id` as OpenAPI writes it, `/v1/x/{id}`. */
const openapiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/**
 * Every method + path the app registers (middleware is registered as ALL, and is not a route),
 * except the admin console's HTML pages under /console (issue 15): browser pages behind a session
 * cookie and CSRF tokens, not an API (README "Admin console"; spec §17).
 */
function registered(): { method: string; path: string }[] {
  const seen = new Map<string, { method: string; path: string }>();
  for (const r of server.app.routes) {
    if (r.method === 'ALL' || r.path === '/console' || r.path.startsWith('/console/')) continue;
    seen.set(`${r.method} ${r.path}`, { method: r.method.toLowerCase(), path: r.path });
  }
  return [...seen.values()];
}

function operations(): { method: string; path: string; op: Operation }[] {
  return Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ method, path, op })));
}

describe('/openapi.json completeness (issue 14)', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await new Validator().validate(doc as unknown as Record<string, unknown>);
    expect(result.errors ?? [], JSON.stringify(result.errors)).toEqual([]);
    expect(result.valid).toBe(true);
    expect((doc as unknown as { openapi: string }).openapi).toMatch(/^3\.1\./);
  });

  it('documents every registered route, and only those', () => {
    const routes = registered();
    expect(routes.length).toBeGreaterThan(25);
    const missing = routes.filter((r) => !doc.paths[openapiPath(r.path)]?.[r.method]).map((r) => `${r.method} ${r.path}`);
    expect(missing).toEqual([]);
    const known = new Set(routes.map((r) => `${r.method} ${openapiPath(r.path)}`));
    const phantom = operations()
      .map(({ method, path }) => `${method} ${path}`)
      .filter((k) => !known.has(k));
    expect(phantom).toEqual([]);
    for (const path of [
      '/healthz',
      '/readyz',
      '/.well-known/latchkey',
      '/.well-known/jwks.json',
      '/metrics',
      '/v1/enroll',
      '/v1/messages',
    ]) {
      expect(Object.keys(doc.paths[path] ?? {}), path).not.toEqual([]);
    }
  });

  it('gives every operation a unique operationId, and every error status the shared Error schema', () => {
    const ids = operations().map(({ op }) => op.operationId);
    expect(ids.filter((id) => typeof id !== 'string' || !/^[a-z][A-Za-z0-9]+$/.test(id))).toEqual([]);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { method, path, op } of operations()) {
      const where = `${method} ${path}`;
      // Any route can meet a database outage or a bug.
      expect(Object.keys(op.responses), where).toEqual(expect.arrayContaining(['500', '503']));
      // Every request body is size-limited before it is parsed.
      if (method === 'post') expect(Object.keys(op.responses), where).toContain('413');
      for (const [status, response] of Object.entries(op.responses)) {
        if (Number(status) < 400) continue;
        expect(response.content?.['application/json']?.schema?.$ref, `${where} ${status}`).toBe('#/components/schemas/Error');
      }
    }
  });

  it('lists every status the routes answer to probes', async () => {
    const undocumented: string[] = [];
    const auth = { authorization: `Bearer ${server.adminToken}` };
    for (const { method, path } of registered()) {
      const url = `${server.url}${path.replace(/:[A-Za-z0-9_]+/g, 'no-such-thing')}`;
      const documented = Object.keys(doc.paths[openapiPath(path)]?.[method]?.responses ?? {});
      const probes: RequestInit[] = [{}, { headers: auth }];
      if (method === 'post') {
        probes.push(
          { body: '{}', headers: { 'content-type': 'application/json' } },
          { body: '{}', headers: { ...auth, 'content-type': 'application/json' } },
          { body: 'x', headers: { ...auth, 'content-type': 'text/plain' } },
          { body: `"${'x'.repeat(4096)}"`, headers: { ...auth, 'content-type': 'application/json' } },
        );
      }
      for (const probe of probes) {
        const res = await fetch(url, { method: method.toUpperCase(), ...probe });
        await res.arrayBuffer();
        if (!documented.includes(String(res.status))) undocumented.push(`${method} ${path} → ${res.status}`);
      }
    }
    expect(undocumented).toEqual([]);
  }, 120_000);
});
