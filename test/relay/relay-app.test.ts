// The relay in process over real HTTP (loopback), in front of the real server on PGlite and on
// PostgreSQL: answers within the receipt wait, queued answers the agent verifies (and forged ones it
// refuses), pending receipts collected later, an envelope without `cred` refused, and a tampering
// hop between the relay and the server caught by the server.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { HttpError } from '../../src/agent/http.js';
import { collectReceipts, listPending } from '../../src/agent/pending.js';
import { QueuedAtRelay, sealInventory, submitEnvelope } from '../../src/agent/send.js';
import { loadState } from '../../src/agent/state.js';
import { utf8 } from '../../src/protocol/bytes.js';
import { generateKeySet } from '../../src/protocol/keys.js';
import { signRelayAccept } from '../../src/protocol/relay-accept.js';
import { composeRelay } from '../../src/relay/compose.js';
import { silentLogger } from '../../src/server/logger.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';

const inventory = utf8(readFileSync(new URL('../fixtures/glpi/format/computer_1.json', import.meta.url), 'utf8'));

async function token(server: TestServer, role: 'agent' | 'relay'): Promise<string> {
  const res = await fetch(`${server.url}/v1/admin/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ uses: 1, ttlSeconds: 3600, role }),
  });
  return ((await res.json()) as { token: string }).token;
}

/** A relay (compose + a real listener) on an existing or new relay state dir. */
async function startRelay(server: TestServer, stateDir: string, upstream: string, receiptWaitMs: number) {
  const relay = await composeRelay(
    server.ctx,
    { stateDir, upstream, spoolMaxBytes: 1 << 26, receiptWaitMs, revocationIntervalMs: 60_000 },
    silentLogger,
    () => '127.0.0.1',
  );
  const http = createAdaptorServer({ fetch: relay.app.fetch, hostname: '127.0.0.1' });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  await relay.start();
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    relay,
    close: async () => {
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await relay.stop();
    },
  };
}

/**
 * A hop between the relay and the server that passes everything on, after `edit` rewrites message
 * batches and `editAnswer` (when given) the server's answers to them.
 */
async function tamperingHop(
  upstream: string,
  edit: (body: { envelopes: Record<string, unknown>[] }) => void,
  editAnswer?: (answer: { results: unknown[] }) => void,
) {
  const answers: unknown[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => {
      void (async () => {
        let body = text;
        if (req.method === 'POST' && req.url === '/v1/messages') {
          const parsed = JSON.parse(text) as { envelopes: Record<string, unknown>[] };
          edit(parsed);
          body = JSON.stringify(parsed);
        }
        const r = await fetch(`${upstream}${req.url}`, {
          method: req.method!,
          headers: { 'content-type': 'application/json' },
          ...(req.method === 'POST' ? { body } : {}),
        });
        let answer = await r.text();
        if (req.url === '/v1/messages') {
          answers.push(JSON.parse(answer));
          if (editAnswer) {
            const parsed = JSON.parse(answer) as { results: unknown[] };
            editAnswer(parsed);
            answer = JSON.stringify(parsed);
          }
        }
        res.writeHead(r.status, { 'content-type': 'application/json' }).end(answer);
      })().catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    answers,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.each(dbKinds)('relay in process (%s)', { timeout: 120_000 }, (kind) => {
  let server: TestServer;
  let dir: string;
  const closers: (() => Promise<void>)[] = [];
  let main: Awaited<ReturnType<typeof startRelay>>;

  beforeAll(async () => {
    server = await startTestServer(kind);
    dir = await mkdtemp(join(tmpdir(), 'latchkey-relay-app-'));
    await enrollAgent(server.ctx, { serverUrl: server.url, token: await token(server, 'relay'), stateDir: join(dir, 'relay') });
  }, 120_000);
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await server.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('answers with the server receipt in time, or queued with a relay-accept the agent verifies, and hands over the receipt later', async () => {
    const r = await startRelay(server, join(dir, 'relay'), server.url, 10_000);
    closers.push(r.close);
    main = r;
    await enrollAgent(server.ctx, { serverUrl: r.url, token: await token(server, 'agent'), stateDir: join(dir, 'agent') });
    const agent = await loadState(server.ctx.crypto, join(dir, 'agent'));
    const { receipt } = await submitEnvelope(server.ctx, agent, await sealInventory(server.ctx, agent, inventory), r.url);
    expect(receipt.status).toBe('accepted');

    // A relay that never waits: the agent gets a verified acceptance, keeps the envelope pending,
    // then collects the server's receipt from the relay.
    await enrollAgent(server.ctx, { serverUrl: server.url, token: await token(server, 'relay'), stateDir: join(dir, 'relay-q') });
    const q = await startRelay(server, join(dir, 'relay-q'), server.url, 0);
    closers.push(q.close);
    const err = await submitEnvelope(server.ctx, agent, await sealInventory(server.ctx, agent, inventory), q.url).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QueuedAtRelay);
    expect(await listPending(agent.dir)).toHaveLength(1);
    let collected: Awaited<ReturnType<typeof collectReceipts>> = [];
    for (let i = 0; i < 100 && collected.length === 0; i++) {
      collected = await collectReceipts(server.ctx, agent);
      if (collected.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(collected.map((c) => c.receipt.status)).toEqual(['accepted']);
    expect(collected[0]!.receipt.mid).toBe((err as QueuedAtRelay).accept.mid);
    expect(await listPending(agent.dir)).toHaveLength(0);
  });

  it('a forged relay-accept (not signed by a relay the server credentialed) proves nothing', async () => {
    const agent = await loadState(server.ctx.crypto, join(dir, 'agent'));
    const relayState = await loadState(server.ctx.crypto, join(dir, 'relay'));
    const impostor = await generateKeySet(server.ctx);
    const liar = createServer((req, res) => {
      let text = '';
      req.on('data', (d: Buffer) => (text += d.toString()));
      req.on('end', () => {
        const env = JSON.parse(text) as { header: string };
        const h = JSON.parse(Buffer.from(env.header, 'base64url').toString()) as { mid: string; snd: string };
        void signRelayAccept(server.ctx.crypto, impostor.signing, { mid: h.mid, snd: h.snd, env: 'x', rat: Date.now() }).then((accept) =>
          res
            .writeHead(202, { 'content-type': 'application/json' })
            .end(JSON.stringify({ status: 'queued', accept, credential: relayState.agent.credential })),
        );
      });
    });
    await new Promise<void>((resolve) => liar.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(liar.address() as AddressInfo).port}`;
      const err = await submitEnvelope(server.ctx, agent, await sealInventory(server.ctx, agent, inventory), url).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HttpError);
      expect((err as HttpError).code).toBe('receipt_invalid');
      expect(await listPending(agent.dir)).toHaveLength(0);
    } finally {
      await new Promise<void>((resolve) => liar.close(() => resolve()));
    }
  });

  it('refuses an envelope without cred (credential_invalid) and spools nothing', async () => {
    const r = main;
    const agent = await loadState(server.ctx.crypto, join(dir, 'agent'));
    const envelope = await sealInventory(
      server.ctx,
      { ...agent, agent: { ...agent.agent, credential: undefined as unknown as string } },
      inventory,
    );
    expect(envelope.cred).toBeUndefined();
    const res = await fetch(`${r.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(envelope),
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('credential_invalid');
    expect(r.relay.spool.stats().depth).toBe(0);
  });

  it('a hop that alters a byte between the relay and the server: the server stores nothing, the relay believes nothing and keeps it', async () => {
    const hop = await tamperingHop(server.url, (body) => {
      const env = (body.envelopes[0]!.inner as Record<string, string>) ?? {};
      const ct = Buffer.from(env.ct!, 'base64url');
      ct[5]! ^= 1;
      env.ct = ct.toString('base64url');
    });
    closers.push(hop.close);
    const stateDir = join(dir, 'relay-tamper');
    await enrollAgent(server.ctx, { serverUrl: server.url, token: await token(server, 'relay'), stateDir });
    const r = await startRelay(server, stateDir, hop.url, 10_000);
    closers.push(r.close);
    const agent = await loadState(server.ctx.crypto, join(dir, 'agent'));
    const err = await submitEnvelope(server.ctx, agent, await sealInventory(server.ctx, agent, inventory), r.url).catch((e: unknown) => e);
    // No server receipt the relay could believe: the agent holds the relay's durable acceptance only.
    expect(err).toBeInstanceOf(QueuedAtRelay);
    expect(hop.answers.length).toBeGreaterThanOrEqual(1);
    // The server refused the altered layer (unsigned copy for people)...
    expect((hop.answers[0] as { results: { error: { code: string } }[] }).results[0]!.error.code).toBe('signature_invalid');
    // ...and signed that, for a request the relay never sent: the batch receipt binds the altered bytes,
    // so the relay trusts nothing in the answer (§10.1) and keeps the envelope spooled for a later try.
    expect(r.relay.spool.stats().depth).toBe(1);
    expect(await readdir(join(stateDir, 'refused'))).toEqual([]);
  });

  it('a hop that reorders the results of a batch answer: the relay believes none of it, keeps both, and settles them once the answers are honest', async () => {
    let swap = true;
    const hop = await tamperingHop(
      server.url,
      () => {},
      (a) => {
        if (swap && a.results.length === 2) a.results.reverse();
      },
    );
    closers.push(hop.close);
    const stateDir = join(dir, 'relay-swap');
    await enrollAgent(server.ctx, { serverUrl: server.url, token: await token(server, 'relay'), stateDir });
    const r = await startRelay(server, stateDir, hop.url, 0);
    closers.push(r.close);
    const agent = await loadState(server.ctx.crypto, join(dir, 'agent'));
    const sent = [await sealInventory(server.ctx, agent, inventory), await sealInventory(server.ctx, agent, inventory)];
    const res = await fetch(`${r.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ envelopes: sent }),
    });
    expect(res.status).toBe(200);
    for (let i = 0; i < 100 && hop.answers.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    // The server stored both and signed one batch receipt; reordered on the way, it proves nothing.
    expect((hop.answers[0] as { batchReceipts: unknown[] }).batchReceipts).toHaveLength(1);
    expect(r.relay.spool.stats().depth).toBe(2);
    expect(await readdir(join(stateDir, 'receipts'))).toEqual([]);
    // Honest again: the resent copies are replays, and the relay keeps the original receipts.
    swap = false;
    for (let i = 0; i < 200 && r.relay.spool.stats().depth > 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(r.relay.spool.stats().depth).toBe(0);
    expect(await readdir(join(stateDir, 'receipts'))).toHaveLength(2);
    expect(await readdir(join(stateDir, 'refused'))).toEqual([]);
  });
});
