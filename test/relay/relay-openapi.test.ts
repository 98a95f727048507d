// The relay's /openapi.json is complete, like the server's (test/server/openapi.test.ts): a valid
// OpenAPI 3.1 document, every route the relay app registers is in it and nothing else is, unique
// operationIds, the shared Error schema on every error status, and every status the real relay (in
// front of the real server) answers to a set of probes is one the document lists for that operation.
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { composeRelay } from '../../src/relay/compose.js';
import { silentLogger } from '../../src/server/logger.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import * as openapi from '../helpers/openapi.js';

let server: TestServer;
let dir: string;
let relay: Awaited<ReturnType<typeof composeRelay>>;
let url: string;
let close: () => Promise<void>;
let doc: openapi.OpenApiDoc;

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
  doc = (await (await fetch(`${url}/openapi.json`)).json()) as openapi.OpenApiDoc;
}, 120_000);
afterAll(async () => {
  await close?.();
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("the relay's /openapi.json", () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    await openapi.expectValidOpenApi31(doc);
  });

  it('documents every registered route, and only those', () => {
    const routes = openapi.registeredRoutes(relay.app.routes);
    expect(routes.length).toBeGreaterThanOrEqual(11);
    openapi.expectRoutesDocumented(doc, routes);
  });

  it('gives every operation a unique operationId, and every error status the shared Error schema', () => {
    openapi.expectOperationsComplete(doc);
  });

  it('lists every status the routes answer to probes', async () => {
    await openapi.expectProbedStatusesDocumented(doc, openapi.registeredRoutes(relay.app.routes), url, (method) => [
      {},
      ...(method === 'post'
        ? [
            { body: '{}', headers: { 'content-type': 'application/json' } },
            { body: 'x', headers: { 'content-type': 'text/plain' } },
            { body: '{"envelopes":[{}]}', headers: { 'content-type': 'application/json' } },
            { body: `"${'x'.repeat(80 * 1024)}"`, headers: { 'content-type': 'application/json' } },
          ]
        : []),
    ]);
  }, 60_000);
});
