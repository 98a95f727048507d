// One error model: the code's list (src/protocol/errors.ts), the spec's table (spec/PROTOCOL.md §15)
// and the OpenAPI document a real app serves agree; and over real HTTP every error answers with its
// code's one status, its Retry-After and its signed receipt going through the one error path.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { sealInventory, submitEnvelope } from '../../src/agent/send.js';
import { loadState } from '../../src/agent/state.js';
import { openDatabase } from '../../src/db/client.js';
import { utf8 } from '../../src/protocol/bytes.js';
import { ERROR_CODES, ERRORS, isErrorCode, ProtocolError, statusFor } from '../../src/protocol/errors.js';
import { parseEnvelope } from '../../src/protocol/envelope.js';
import { envelopeBinding, verifyReceipt } from '../../src/protocol/receipt.js';
import { gunzipBounded } from '../../src/runtime/zlib.js';
import { composeServer } from '../../src/server/compose.js';
import { deriveIdentity } from '../../src/server/identity.js';
import { silentLogger } from '../../src/server/logger.js';
import { generateAdminCredential } from '../../src/server/services/admin-credentials.js';
import { noTelemetry } from '../../src/server/telemetry.js';
import { parseErrorTable, withErrorTable } from '../../spec/error-table.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
const specFile = new URL('../../spec/PROTOCOL.md', import.meta.url);

/** Asserts the answer is `code` with the status the table gives it, in the shared body shape. */
async function expectError(res: Response, code: string): Promise<{ error: { code: string; message: string }; receipt?: unknown }> {
  const body = (await res.json()) as { error: { code: string; message: string }; receipt?: unknown };
  expect(body.error.code).toBe(code);
  expect(isErrorCode(code)).toBe(true);
  expect(res.status).toBe(statusFor(body.error.code as never));
  expect(typeof body.error.message).toBe('string');
  return body;
}

describe('the error table', () => {
  it('spec/PROTOCOL.md lists every code with its status, exactly as rendered from the code (npm run errors)', async () => {
    const spec = await readFile(specFile, 'utf8');
    expect(withErrorTable(spec), 'run npm run errors').toBe(spec);
    const table = parseErrorTable(spec);
    expect([...table.keys()]).toEqual([...ERROR_CODES]);
    for (const code of ERROR_CODES) expect(table.get(code), code).toBe(ERRORS[code].status);
  });
});

describe.each(dbKinds)('one error model over HTTP on %s', (kind) => {
  let server: TestServer;
  let dir: string;
  beforeAll(async () => {
    server = await startTestServer(kind, { ingestPolicy: { messageBurst: 1, messagesPerSecond: 0.01 } });
    dir = await mkdtemp(join(tmpdir(), 'latchkey-errors-'));
  });
  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  const admin = (method: string, path: string, body?: unknown, credential = server.adminToken) =>
    fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });

  it("documents every error response of every route with the shared schema and codes whose status is the table's", async () => {
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
      paths: Record<
        string,
        Record<
          string,
          { responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }>; 'x-error-codes'?: string[] }> }
        >
      >;
      components: { schemas: Record<string, { properties: { error: { properties: { code: { enum: string[] } } } } }> };
    };
    expect(doc.components.schemas.Error!.properties.error.properties.code.enum).toEqual([...ERROR_CODES]);
    const table = parseErrorTable(await readFile(specFile, 'utf8'));
    let documented = 0;
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        for (const [status, response] of Object.entries(op.responses)) {
          if (Number(status) < 400) continue;
          const where = `${method.toUpperCase()} ${path} ${status}`;
          expect(response.content?.['application/json']?.schema.$ref, where).toBe('#/components/schemas/Error');
          const codes = response['x-error-codes'] ?? [];
          expect(codes.length, where).toBeGreaterThan(0);
          for (const code of codes) {
            expect(isErrorCode(code), `${where}: ${code}`).toBe(true);
            expect(statusFor(code as never), `${where}: ${code}`).toBe(Number(status));
            expect(table.get(code), `${where}: ${code} in the spec`).toBe(Number(status));
            documented++;
          }
        }
      }
    }
    expect(documented).toBeGreaterThan(50);
    // Admin API keys at /v1/admin/admin-keys; /v1/admin/keys lists agent keys (the old admin-key
    // aliases there are gone), and nothing is deprecated.
    expect((doc.paths['/v1/admin/keys']!.get as { summary?: string }).summary).toMatch(/agent keys/);
    expect(doc.paths['/v1/admin/keys']!.post).toBeUndefined();
    expect(doc.paths['/v1/admin/admin-keys']!.get).not.toMatchObject({ deprecated: true });
    expect(doc.paths['/v1/admin/keys/{id}/revoke']!.post).not.toMatchObject({ deprecated: true });
  });

  it("answers admin failures with the table's status: the same code has the same status everywhere", async () => {
    await expectError(await fetch(`${server.url}/v1/admin/tokens`), 'unauthorized');
    await expectError(await admin('GET', '/v1/admin/tokens', undefined, 'lka.nope'), 'unauthorized');
    await expectError(await admin('POST', '/v1/admin/tokens', { uses: 0 }), 'request_invalid');
    await expectError(await admin('POST', '/v1/admin/tokens', { cidr: 'not a cidr' }), 'request_invalid');
    await expectError(
      await fetch(`${server.url}/v1/admin/tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
        body: '{"ttl',
      }),
      'request_invalid',
    );
    // Unknown ids: token_unknown and key_unknown are 401 here as at enrollment and ingest (spec §15).
    await expectError(await admin('POST', '/v1/admin/tokens/AAAAAAAAAAAAAAAAAAAAAA/revoke', {}), 'token_unknown');
    await expectError(await admin('POST', '/v1/admin/keys/nokey/revoke', {}), 'key_unknown');
    await expectError(await admin('POST', '/v1/admin/agents/noagent/revoke', {}), 'not_found');
    await expectError(await admin('POST', '/v1/admin/admin-keys/nokey/revoke'), 'not_found');
    await expectError(await admin('GET', '/v1/admin/agents/noagent/inventory'), 'not_found');
    await expectError(await fetch(`${server.url}/nope`), 'not_found');
    await expectError(await admin('POST', '/v1/admin/tokens', { labels: { k: 'x'.repeat(100_000) } }), 'payload_too_large');
  });

  it('serves admin API keys at /v1/admin/admin-keys only; /v1/admin/keys lists agent keys', async () => {
    const created = await admin('POST', '/v1/admin/admin-keys', { name: 'reader', scopes: ['read'] });
    expect(created.status).toBe(201);
    const reader = (await created.json()) as { id: string; credential: string };
    // The old alias no longer creates admin keys, and the listing there is of agent keys.
    await expectError(await admin('POST', '/v1/admin/keys', { name: 'old-client', scopes: ['read'] }), 'not_found');
    const listed = (await (await admin('GET', '/v1/admin/keys')).json()) as { keys: { sigKid?: string; id?: string }[] };
    expect(listed.keys.every((k) => typeof k.sigKid === 'string' && k.id === undefined)).toBe(true);
    const ids = async (path: string) =>
      ((await (await admin('GET', path)).json()) as { keys: { id: string }[] }).keys.map((k) => k.id).sort();
    expect(await ids('/v1/admin/admin-keys')).toContain(reader.id);
    expect(await ids('/v1/admin/admin-keys')).not.toContain(undefined);
    await expectError(await admin('GET', '/v1/admin/admin-keys', undefined, reader.credential), 'forbidden');
    await expectError(await admin('POST', '/v1/admin/tokens', {}, reader.credential), 'forbidden');
    expect((await admin('POST', `/v1/admin/admin-keys/${reader.id}/revoke`)).status).toBe(200);
    await expectError(await admin('GET', '/v1/admin/tokens', undefined, reader.credential), 'unauthorized');
  });

  it("sends a refused message's Retry-After and signed receipt through the one error path, and a batch item in the same body", async () => {
    const { token } = (await (await admin('POST', '/v1/admin/tokens', {})).json()) as { token: string };
    const stateDir = join(dir, kind);
    await enrollAgent(ctx, { serverUrl: server.url, token, stateDir, name: `errors-${kind}` });
    const agent = await loadState(ctx.crypto, stateDir);
    const inventory = utf8(await readFile(new URL('../fixtures/glpi/format/printer_1.json', import.meta.url), 'utf8'));
    const post = async (body: unknown) =>
      fetch(`${server.url}/v1/messages`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

    expect((await post(await sealInventory(ctx, agent, inventory))).status).toBe(200); // spends the burst of 1
    const envelope = await sealInventory(ctx, agent, inventory);
    const limited = await post(envelope);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    const body = await expectError(limited, 'rate_limited');
    expect(Object.keys(body)).toEqual(['error', 'receipt']);
    const { header } = parseEnvelope(envelope);
    const receipt = await verifyReceipt(
      ctx,
      agent.server.signing,
      body.receipt,
      { mid: header.mid, snd: header.snd, env: envelopeBinding(parseEnvelope(envelope)) },
      agent.keys.agreement.privateKey,
    );
    expect(receipt).toMatchObject({ status: 'rejected', code: 'rate_limited' });
    // The agent receives the same error, Retry-After included.
    await expect(submitEnvelope(ctx, agent, await sealInventory(ctx, agent, inventory))).rejects.toSatisfy(
      (e) => e instanceof ProtocolError && e.code === 'rate_limited' && e.status === 429 && (e.retryAfterSeconds ?? 0) > 0,
    );

    const batch = (await (await post({ envelopes: [envelope] })).json()) as { results: { error?: { code: string }; result?: string }[] };
    expect(batch.results).toHaveLength(1);
    expect(batch.results[0]!.error!.code).toBe('rate_limited');
    // The signed rejection is the item's result, covered by the batch receipt (§10.1).
    expect(Object.keys(batch.results[0]!)).toEqual(['result', 'error']);
    await expectError(await post({ envelopes: [] }), 'envelope_malformed');
    await expectError(await post({ v: 1 }), 'envelope_malformed');
  });
});

describe('infrastructure faults', () => {
  it('answers 503 unavailable, not 500, when the database is unreachable', async () => {
    // A port nothing listens on: bound, then closed.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const database = await openDatabase({ url: `postgres://postgres@127.0.0.1:${port}/none` });
    const random = (n: number) => ctx.random(n);
    const { app } = composeServer({
      database,
      identity: await deriveIdentity(ctx.crypto, random(32), random(32)),
      ctx,
      logger: silentLogger,
      telemetry: noTelemetry,
      clientAddress: () => '127.0.0.1',
      gunzip: gunzipBounded,
    });
    const http = createAdaptorServer({ fetch: app.fetch, hostname: '127.0.0.1' });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    try {
      const admin = generateAdminCredential(random).credential;
      await expectError(await fetch(`${url}/v1/admin/tokens`, { headers: { authorization: `Bearer ${admin}` } }), 'unavailable');
      await expectError(await fetch(`${url}/readyz`), 'unavailable');
    } finally {
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await database.close();
    }
  });
});
