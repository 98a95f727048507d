// Issue 10 item 10: a PostgreSQL outage. The server reaches a real PostgreSQL through a TCP proxy in
// the test, which is then made to blackhole every connection (the database silently gone from the
// network: the worst case, nothing is refused, nothing answers) or to refuse them. Every request must
// get 503 `unavailable` with Retry-After within the deadlines, /readyz within ~1 s, and nothing that
// was acknowledged may be lost. PostgreSQL only: PGlite is embedded in the process and cannot be cut off.
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { sealInventory, submitEnvelope } from '../../src/agent/send.js';
import { loadState, type AgentState } from '../../src/agent/state.js';
import { DEFAULT_DEADLINES, openPostgres } from '../../src/db/postgres.js';
import { seenMessages } from '../../src/db/schema.js';
import { fromB64u, utf8 } from '../../src/protocol/bytes.js';
import { parseEnvelope } from '../../src/protocol/envelope.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { createTestDatabase, postgresUrl, type TestDatabase } from '../helpers/db.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();

/** A TCP proxy to PostgreSQL that can pass, blackhole (accept, forward nothing) or refuse. */
async function pgProxy(target: URL) {
  let mode: 'pass' | 'blackhole' | 'refuse' = 'pass';
  const pairs = new Set<[Socket, Socket]>();
  let server: Server;
  const listen = async (port = 0) => {
    server = createServer((client) => {
      if (mode === 'refuse') return client.destroy();
      const upstream = connect(Number(target.port || 5432), target.hostname);
      const pair: [Socket, Socket] = [client, upstream];
      pairs.add(pair);
      const forward = (from: Socket, to: Socket) => from.on('data', (d: Buffer) => mode === 'pass' && to.write(d));
      forward(client, upstream);
      forward(upstream, client);
      const end = () => {
        pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  };
  const port = await listen();
  const url = new URL(target.toString());
  url.host = `127.0.0.1:${port}`;
  return {
    url: url.toString(),
    blackhole: () => void (mode = 'blackhole'),
    /** Connections refused: the proxy stops listening and drops what it holds. */
    refuse: async () => {
      mode = 'refuse';
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    /** The network is back: connections broken by the outage are gone, new ones pass. */
    restore: async () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      if (mode === 'refuse') await listen(port);
      mode = 'pass';
    },
    close: async () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
    },
  };
}

const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
  const t = performance.now();
  const r = await fn();
  return [r, performance.now() - t];
};

describe.skipIf(!postgresUrl)('a PostgreSQL outage on postgres', () => {
  let dir: string;
  let base: TestDatabase;
  let proxy: Awaited<ReturnType<typeof pgProxy>>;
  let server: TestServer;
  let agent: AgentState;
  let inventory: Uint8Array;
  const admin = (path: string) => fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${server.adminToken}` } });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-outage-'));
    base = await createTestDatabase('postgres'); // migrated schema, reached directly
    proxy = await pgProxy(new URL(postgresUrl!));
    const through = await openPostgres({ url: proxy.url, schema: base.schemaName, maxConnections: 4 });
    server = await startTestServer('postgres', { database: Object.assign(through, { dispose: () => through.close() }) });
    const res = await fetch(`${server.url}/v1/admin/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    const stateDir = join(dir, 'agent');
    await enrollAgent(ctx, { serverUrl: server.url, token: ((await res.json()) as { token: string }).token, stateDir, name: 'outage' });
    agent = await loadState(ctx.crypto, stateDir);
    inventory = utf8(await readFile(new URL('../fixtures/glpi/format/printer_1.json', import.meta.url), 'utf8'));
  });
  afterAll(async () => {
    await server?.close();
    await server?.database.close();
    await proxy?.close();
    await base?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  const post = (body: unknown) =>
    fetch(`${server.url}/v1/messages`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  const storedOnce = async (mid: string) =>
    (
      await base.db
        .select({ c: sql<number>`count(*)::int` })
        .from(seenMessages)
        .where(eq(seenMessages.messageId, fromB64u(mid)))
    )[0]!.c;

  it('blackholed: /readyz says 503 within ~1 s, messages and admin calls 503 unavailable + Retry-After within the deadline, nothing lost', async () => {
    const before = await submitEnvelope(ctx, agent, await sealInventory(ctx, agent, inventory));
    expect(before.receipt.status).toBe('accepted');
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);

    proxy.blackhole();
    const [ready, readyMs] = await timed(() => fetch(`${server.url}/readyz`));
    expect(ready.status).toBe(503);
    expect(ready.headers.get('retry-after')).toBeTruthy();
    expect(readyMs).toBeLessThan(DEFAULT_DEADLINES.pingTimeoutMs + 500);

    const during = await sealInventory(ctx, agent, inventory);
    const [sent, sentMs] = await timed(() => post(during));
    expect(sent.status).toBe(503);
    expect(Number(sent.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await sent.json()) as { error: { code: string } }).error.code).toBe('unavailable');
    expect(sentMs).toBeLessThan(DEFAULT_DEADLINES.queryTimeoutMs + 1500);

    const [listed, listedMs] = await timed(() => admin('/v1/admin/agents'));
    expect(listed.status).toBe(503);
    expect(((await listed.json()) as { error: { code: string } }).error.code).toBe('unavailable');
    expect(listedMs).toBeLessThan(DEFAULT_DEADLINES.transactionTimeoutMs + 1500);
    console.log(
      JSON.stringify({
        outage: 'blackhole',
        readyzMs: Math.round(readyMs),
        messageMs: Math.round(sentMs),
        adminListMs: Math.round(listedMs),
      }),
    );

    await proxy.restore();
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    // Acknowledged before the outage: stored. Refused during it: not stored, and accepted once resent.
    expect(await storedOnce(before.receipt.mid)).toBe(1);
    const mid = parseEnvelope(during).header.mid;
    expect(await storedOnce(mid)).toBe(0);
    expect((await submitEnvelope(ctx, agent, during)).receipt.status).toBe('accepted');
    expect(await storedOnce(mid)).toBe(1);
  });

  it('refused: connections refused answer 503 unavailable at once', async () => {
    await proxy.refuse();
    try {
      const [ready, readyMs] = await timed(() => fetch(`${server.url}/readyz`));
      expect(ready.status).toBe(503);
      const envelope = await sealInventory(ctx, agent, inventory);
      const [sent, sentMs] = await timed(() => post(envelope));
      expect(sent.status).toBe(503);
      expect(((await sent.json()) as { error: { code: string } }).error.code).toBe('unavailable');
      const [listed, listedMs] = await timed(() => admin('/v1/admin/tokens'));
      expect(listed.status).toBe(503);
      console.log(
        JSON.stringify({
          outage: 'refused',
          readyzMs: Math.round(readyMs),
          messageMs: Math.round(sentMs),
          adminListMs: Math.round(listedMs),
        }),
      );
      expect(Math.max(readyMs, sentMs, listedMs)).toBeLessThan(DEFAULT_DEADLINES.queryTimeoutMs + 1500);
    } finally {
      await proxy.restore();
    }
    expect((await submitEnvelope(ctx, agent, await sealInventory(ctx, agent, inventory))).receipt.status).toBe('accepted');
  });
});
