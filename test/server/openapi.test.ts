// /openapi.json is complete (issue 14): a valid OpenAPI 3.1 document (checked by an independent
// validator, @seriousme/openapi-schema-validator), every route the app registers is in it (method and
// path, path params normalised) and nothing else is, each operation has a unique operationId and the
// shared Error schema on every error status, and every status the real routes answer to a set of
// probes (no credential, a credential, an unknown id, a wrong media type, an oversized body) is one
// the document lists for that operation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/app.js';
import * as openapi from '../helpers/openapi.js';

let server: TestServer;
let doc: openapi.OpenApiDoc;

beforeAll(async () => {
  server = await startTestServer('pglite', { limits: { maxBodyBytes: 1024, maxMessageBodyBytes: 2048 } });
  const res = await fetch(`${server.url}/openapi.json`);
  expect(res.status).toBe(200);
  doc = (await res.json()) as openapi.OpenApiDoc;
}, 120_000);
afterAll(async () => {
  await server?.close();
});

/**
 * Every route the app registers, except the admin console's HTML pages under /console (issue 15):
 * browser pages behind a session cookie and CSRF tokens, not an API (README "Admin console"; spec §17).
 */
const registered = () => openapi.registeredRoutes(server.app.routes, (path) => path === '/console' || path.startsWith('/console/'));

describe('/openapi.json completeness (issue 14)', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    await openapi.expectValidOpenApi31(doc);
  });

  it('documents every registered route, and only those', () => {
    const routes = registered();
    expect(routes.length).toBeGreaterThan(25);
    openapi.expectRoutesDocumented(doc, routes);
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
    openapi.expectOperationsComplete(doc);
  });

  it('lists every status the routes answer to probes', async () => {
    const auth = { authorization: `Bearer ${server.adminToken}` };
    await openapi.expectProbedStatusesDocumented(doc, registered(), server.url, (method) => [
      {},
      { headers: auth },
      ...(method === 'post'
        ? [
            { body: '{}', headers: { 'content-type': 'application/json' } },
            { body: '{}', headers: { ...auth, 'content-type': 'application/json' } },
            { body: 'x', headers: { ...auth, 'content-type': 'text/plain' } },
            { body: `"${'x'.repeat(4096)}"`, headers: { ...auth, 'content-type': 'application/json' } },
          ]
        : []),
    ]);
  }, 120_000);
});
