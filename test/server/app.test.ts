// The uniform error layer, in-process over real HTTP; readiness while the database goes away.
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/client.js';
import { applyMigrations } from '../../src/db/migrate.js';
import { readMigrations } from '../../src/db/migrations-fs.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds, postgresUrl } from '../helpers/db.js';
import { createTempPostgresDatabase } from '../helpers/pg-database.js';

describe.each(dbKinds)('error layer on %s', (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(kind);
    server.app.get('/test/boom', () => {
      throw new Error('secret internals at /srv/app.ts:12');
    });
  });
  afterAll(() => server.close());

  it('answers unknown routes with a JSON 404', async () => {
    const res = await fetch(`${server.url}/v1/nothing-here`, { method: 'POST' });
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expect(await res.json()).toEqual({ error: { code: 'not_found', message: 'no such route' } });
  });

  it('turns an unexpected failure into a 500 with no stack or detail', async () => {
    const res = await fetch(`${server.url}/test/boom`);
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: { code: 'internal_error', message: 'internal error' } });
    expect(text).not.toMatch(/secret internals|\.ts:|at /);
  });

  it('refuses a body over the limit before parsing, by Content-Length and by streamed size', async () => {
    const declared = await fetch(`${server.url}/v1/enroll`, {
      method: 'POST',
      body: '{'.repeat(70_000),
      headers: { 'content-type': 'application/json' },
    });
    expect(declared.status).toBe(413);
    expect(((await declared.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');

    const chunk = new TextEncoder().encode('a'.repeat(16_384));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 8) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const streamed = await fetch(`${server.url}/v1/enroll`, {
      method: 'POST',
      body: stream,
      duplex: 'half',
      headers: { 'content-type': 'application/json' },
    } as RequestInit);
    expect(streamed.status).toBe(413);
  });

  it('reads a body under the limit whether its length is declared or streamed', async () => {
    const body = JSON.stringify({ token: 'x'.repeat(20_000) });
    const declared = await fetch(`${server.url}/v1/enroll`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    // Parsed and refused by the route (not a valid enrollment), not by the size check.
    expect(declared.status).toBe(400);
    const bytes = new TextEncoder().encode(body);
    let sent = false;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent) return controller.close();
        sent = true;
        controller.enqueue(bytes);
      },
    });
    const streamed = await fetch(`${server.url}/v1/enroll`, {
      method: 'POST',
      body: stream,
      duplex: 'half',
      headers: { 'content-type': 'application/json' },
    } as RequestInit);
    expect(streamed.status).toBe(400);
    expect(((await streamed.json()) as { error: { code: string } }).error.code).toBe(
      ((await declared.json()) as { error: { code: string } }).error.code,
    );
  });

  it('reports readiness from the database', async () => {
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  });
});

// A correctness bound, not a benchmark: an outage must be answered promptly, not by a hung request.
const PROMPT_MS = 5_000;

/** GET /readyz with its status, error code (if any) and how long the answer took. */
async function readiness(server: TestServer): Promise<{ status: number; code: string | undefined; ms: number }> {
  const started = performance.now();
  // A hung answer fails here, within the test's time, rather than at the test timeout.
  const res = await fetch(`${server.url}/readyz`, { signal: AbortSignal.timeout(2 * PROMPT_MS) });
  const body = (await res.json()) as { error?: { code: string } };
  return { status: res.status, code: body.error?.code, ms: performance.now() - started };
}

describe('readiness on pglite when the database goes away', () => {
  it('answers 503 unavailable promptly once the PGlite under the running server is closed', async () => {
    // Its own instance, not the file's shared one.
    const own = await openDatabase({});
    await applyMigrations(own, await readMigrations());
    const server = await startTestServer('pglite', { database: Object.assign(own, { dispose: () => own.close() }) });
    try {
      expect(await readiness(server)).toMatchObject({ status: 200 });
      await own.close();
      const down = await readiness(server);
      expect(down).toMatchObject({ status: 503, code: 'unavailable' });
      expect(down.ms).toBeLessThan(PROMPT_MS);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe.runIf(postgresUrl)('readiness on postgres when the database goes away', () => {
  it('answers 503 unavailable promptly while PostgreSQL refuses and after the database is dropped, ready in between', async () => {
    // A database of its own: it refuses connections with its sessions terminated, comes back, then
    // is dropped for good.
    const temp = await createTempPostgresDatabase();
    const name = new URL(temp.url).pathname.slice(1);
    const admin = postgres(postgresUrl!, { max: 1, onnotice: () => {} });
    const own = await openDatabase({ url: temp.url, maxConnections: 2 });
    try {
      await applyMigrations(own, await readMigrations());
      const server = await startTestServer('postgres', { database: Object.assign(own, { dispose: () => own.close() }) });
      try {
        expect(await readiness(server)).toMatchObject({ status: 200 });

        await admin.unsafe(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS false`);
        await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${name}`;
        const refused = await readiness(server);
        expect(refused).toMatchObject({ status: 503, code: 'unavailable' });
        expect(refused.ms).toBeLessThan(PROMPT_MS);

        // Back: ready again within the bound (a pooled session terminated above may fail one more ping).
        await admin.unsafe(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS true`);
        const until = performance.now() + PROMPT_MS;
        let back = await readiness(server);
        while (back.status !== 200 && performance.now() < until) back = await readiness(server);
        expect(back).toMatchObject({ status: 200 });

        await temp.drop();
        const dropped = await readiness(server);
        expect(dropped).toMatchObject({ status: 503, code: 'unavailable' });
        expect(dropped.ms).toBeLessThan(PROMPT_MS);
        expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      } finally {
        await server.close();
      }
    } finally {
      await own.close();
      await admin.end();
      await temp.drop();
    }
  });
});
