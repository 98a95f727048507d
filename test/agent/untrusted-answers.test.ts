// The agent believes only what the server signed, about the exact envelope it sent (spec §10).
// A real server on PGlite and PostgreSQL, and in front of it a small real HTTP server that lies the
// way a proxy, a captive portal or an attacker in the path would: unsigned error codes, forged or
// borrowed receipts, 401/403, 429 with Retry-After, 5xx.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDaemon } from '../../src/agent/daemon.js';
import { enrollAgent } from '../../src/agent/enroll.js';
import { HttpError } from '../../src/agent/http.js';
import { sealInventory, SignedRejection, submitEnvelope } from '../../src/agent/send.js';
import { loadState, type AgentState } from '../../src/agent/state.js';
import { inventories, seenMessages } from '../../src/db/schema.js';
import { b64u, fromB64u, utf8 } from '../../src/protocol/bytes.js';
import { parseEnvelope, type Envelope } from '../../src/protocol/envelope.js';
import { issueCredential } from '../../src/protocol/credential.js';
import { discoveryDocument } from '../../src/protocol/discovery.js';
import { openEnrollRequest, parseEnrollRequest, signEnrollResponse } from '../../src/protocol/enrollment.js';
import { fingerprintOf, generateKeySet } from '../../src/protocol/keys.js';
import { formatToken } from '../../src/protocol/token.js';
import { signReceipt } from '../../src/protocol/receipt.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { answer, forwardTo, lyingUpstream, type Handler } from '../helpers/upstream.js';
import { dbKinds } from '../helpers/db.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
const fixture = (name: string) => new URL(`../fixtures/glpi/${name}`, import.meta.url).pathname;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latchkey-untrusted-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));
let n = 0;

async function enrolled(server: TestServer, name: string): Promise<AgentState> {
  const res = await fetch(`${server.url}/v1/admin/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    body: '{}',
  });
  const stateDir = join(dir, `${name}-${n++}`);
  await enrollAgent(ctx, { serverUrl: server.url, token: ((await res.json()) as { token: string }).token, stateDir, name });
  return loadState(ctx.crypto, stateDir);
}

const stateFiles = async (s: AgentState) => [
  await readFile(join(s.dir, 'keys.json'), 'utf8'),
  await readFile(join(s.dir, 'agent.json'), 'utf8'),
];

describe.each(dbKinds)('the agent believes only signed receipts bound to its envelope, on %s', (kind) => {
  let server: TestServer;
  let agent: AgentState;
  let inventory: Uint8Array;
  const stored = async (mid: string) =>
    (
      await server.database.db
        .select({ c: sql<number>`count(*)::int` })
        .from(seenMessages)
        .where(eq(seenMessages.messageId, fromB64u(mid)))
    )[0]!.c;

  beforeAll(async () => {
    server = await startTestServer(kind);
    agent = await enrolled(server, `honest-${kind}`);
    inventory = utf8(await readFile(fixture('format/printer_1.json'), 'utf8'));
  });
  afterAll(() => server.close());

  it('a signed rejection obtained with a mangled copy of an envelope is not believed for the genuine one (item 12)', async () => {
    const genuine = await sealInventory(ctx, agent, inventory);
    const { mid } = parseEnvelope(genuine).header;
    // Someone who saw the envelope in transit sends a copy with one signature bit flipped…
    const sig = fromB64u(genuine.sig);
    sig[5]! ^= 1;
    const mangled: Envelope = { ...genuine, sig: b64u(sig) };
    const res = await fetch(`${server.url}/v1/messages`, {
      method: 'POST',
      body: JSON.stringify(mangled),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(401);
    const stolen = (await res.json()) as { error: { code: string }; receipt: unknown };
    expect(stolen.error.code).toBe('signature_invalid');
    expect(stolen.receipt).toBeDefined(); // server-signed, same mid and snd as the genuine envelope
    // …and, in the path, answers the genuine envelope with that server-signed receipt.
    const mitm = await lyingUpstream(answer(401, stolen));
    try {
      const err = await submitEnvelope(ctx, agent, genuine, mitm.url).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HttpError);
      expect(err).not.toBeInstanceOf(SignedRejection);
      expect((err as HttpError).code).toBe('receipt_invalid');
    } finally {
      await mitm.close();
    }
    expect(await stored(mid)).toBe(0);
    // The genuine envelope is still deliverable, and the agent believes that receipt.
    const { receipt } = await submitEnvelope(ctx, agent, genuine);
    expect(receipt).toMatchObject({ mid, status: 'accepted' });
    expect(await stored(mid)).toBe(1);
  });

  it('unsigned codes are hints: a proxy 401/403, an unsigned replay_detected, 5xx, 429, forged receipts change nothing', async () => {
    const before = await stateFiles(agent);
    const envelope = await sealInventory(ctx, agent, inventory);
    const parsed = parseEnvelope(envelope);
    const impostor = await generateKeySet(ctx);
    const forged = await signReceipt(ctx, impostor.signing, {
      mid: parsed.header.mid,
      snd: parsed.header.snd,
      env: 'x',
      status: 'accepted',
      rat: Date.now(),
    });
    // A real receipt the server signed for another envelope of this agent.
    const other = await submitEnvelope(ctx, agent, await sealInventory(ctx, agent, inventory));
    const otherSigned = await (
      await fetch(`${server.url}/v1/messages`, {
        method: 'POST',
        body: JSON.stringify(await sealInventory(ctx, agent, inventory)),
        headers: { 'content-type': 'application/json' },
      })
    ).json();
    expect(other.receipt.status).toBe('accepted');

    const upstream = await lyingUpstream(forwardTo(server.url));
    try {
      const cases: [Handler, string, string | undefined, number | undefined][] = [
        [answer(401, { error: { code: 'key_revoked', message: 'revoked' } }), 'unsigned_answer', 'key_revoked', undefined],
        [answer(403, { error: { code: 'agent_revoked', message: 'revoked' } }), 'unsigned_answer', 'agent_revoked', undefined],
        [answer(403, '<html>captive portal</html>'), 'unsigned_answer', undefined, undefined],
        [answer(409, { error: { code: 'replay_detected', message: 'already accepted' } }), 'unsigned_answer', 'replay_detected', undefined],
        [
          answer(429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'retry-after': '7' }),
          'unsigned_answer',
          'rate_limited',
          7,
        ],
        [answer(500, { error: { code: 'internal_error', message: 'boom' } }), 'unsigned_answer', 'internal_error', undefined],
        [answer(502, 'Bad Gateway'), 'unsigned_answer', undefined, undefined],
        [answer(200, forged), 'receipt_invalid', undefined, undefined],
        [answer(200, 'x'.repeat(2 << 20)), 'bad_response', undefined, undefined],
        [answer(200, otherSigned), 'receipt_invalid', undefined, undefined],
        [answer(401, { error: { code: 'key_revoked', message: 'x' }, receipt: forged }), 'receipt_invalid', 'key_revoked', undefined],
      ];
      for (const [handler, code, hint, retryAfter] of cases) {
        upstream.script.push(handler);
        const err = await submitEnvelope(ctx, agent, envelope, upstream.url).catch((e: unknown) => e);
        expect(err, `${code}/${hint}`).toBeInstanceOf(HttpError);
        expect((err as HttpError).code).toBe(code);
        expect((err as HttpError).hint).toBe(hint);
        expect((err as HttpError).retryAfterSeconds).toBe(retryAfter);
      }
      expect(await stored(parsed.header.mid)).toBe(0);
      // Keys and state untouched, and the same envelope, sent through at last, is accepted.
      expect(await stateFiles(agent)).toEqual(before);
      expect((await submitEnvelope(ctx, agent, envelope, upstream.url)).receipt.status).toBe('accepted');
      // The server's own answer to a resend is signed and bound to this envelope: proven delivered.
      const again = await submitEnvelope(ctx, agent, envelope, upstream.url).catch((e: unknown) => e);
      expect(again).toBeInstanceOf(SignedRejection);
      expect((again as SignedRejection).code).toBe('replay_detected');
    } finally {
      await upstream.close();
    }
  });

  it('agent run waits out a 429 (signed or not) and 5xx, then delivers the same inventory; an unsigned replay_detected is not delivery', async () => {
    const upstream = await lyingUpstream(forwardTo(server.url));
    const log: Record<string, unknown>[] = [];
    const stop = new AbortController();
    upstream.script.push(
      answer(429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'retry-after': '1' }),
      answer(409, { error: { code: 'replay_detected', message: 'already accepted' } }),
      answer(503, { error: { code: 'unavailable', message: 'down' } }),
    );
    const before = await server.database.db.select({ c: sql<number>`count(*)::int` }).from(inventories);
    const started = Date.now();
    const done = runDaemon(ctx, {
      stateDir: agent.dir,
      file: fixture('format/printer_2.json'),
      intervalSeconds: 3600,
      via: upstream.url,
      signal: stop.signal,
      log: (e) => {
        log.push(e);
        if (e.event === 'sent' || e.event === 'rejected') stop.abort();
      },
    });
    await done;
    expect(log.map((e) => e.event)).toEqual(['retry', 'retry', 'retry', 'sent', 'stopped']);
    expect(log[0]).toMatchObject({ code: 'unsigned_answer', hint: 'rate_limited', status: 429, signed: false });
    expect(log[0]!.inMs as number).toBeGreaterThanOrEqual(1000);
    expect(log[1]).toMatchObject({ code: 'unsigned_answer', hint: 'replay_detected' });
    expect(log[3]).toMatchObject({ status: 'accepted' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    // One inventory sealed once: every attempt carried the same envelope, and it was stored once.
    expect(new Set(upstream.seen).size).toBe(1);
    expect(upstream.seen).toHaveLength(4);
    const after = await server.database.db.select({ c: sql<number>`count(*)::int` }).from(inventories);
    expect(after[0]!.c).toBe(before[0]!.c + 1);
    await upstream.close();
  });
});

describe.each(dbKinds)('agent run against a server whose budget is spent, on %s', (kind) => {
  it('a signed rate_limited is waited out (Retry-After) and the same envelope then delivered', async () => {
    const server = await startTestServer(kind, { ingestPolicy: { messageBurst: 1, messagesPerSecond: 0.5 } });
    try {
      const agent = await enrolled(server, `busy-${kind}`);
      const inv = utf8(await readFile(fixture('format/printer_1.json'), 'utf8'));
      expect((await submitEnvelope(ctx, agent, await sealInventory(ctx, agent, inv))).receipt.status).toBe('accepted');
      const log: Record<string, unknown>[] = [];
      const stop = new AbortController();
      await runDaemon(ctx, {
        stateDir: agent.dir,
        file: fixture('format/printer_2.json'),
        intervalSeconds: 3600,
        signal: stop.signal,
        log: (e) => {
          log.push(e);
          if (e.event === 'sent' || e.event === 'rejected') stop.abort();
        },
      });
      expect(log[0]).toMatchObject({ event: 'retry', code: 'rate_limited', signed: true });
      expect(log[0]!.inMs as number).toBeGreaterThanOrEqual(1000);
      expect(log[1]).toMatchObject({ event: 'sent', status: 'accepted' });
    } finally {
      await server.close();
    }
  });
});

describe('the agent state holds the keys the agent pinned', () => {
  it("stores the keys from the token's fingerprint and verified discovery, not the enroll response's self-description", async () => {
    // A server that answers correctly (signed, the right fingerprint) but describes itself with
    // other keys in the response: an agent that kept that description would seal to those keys.
    const server = await generateKeySet(ctx);
    const other = await generateKeySet(ctx);
    const fp = fingerprintOf(server.signing.publicKey, server.agreement.publicKey);
    const pub = {
      signing: { publicKey: server.signing.publicKey, kid: server.signing.kid },
      agreement: { publicKey: server.agreement.publicKey, kid: server.agreement.kid },
      fingerprint: fp,
    };
    const agentId = '6f1c2a4e-0000-4000-8000-00000000000a';
    const upstream = await lyingUpstream(async (req, body, res) => {
      if (req.url === '/.well-known/latchkey') return answer(200, discoveryDocument(pub))(req, body, res);
      const opened = await openEnrollRequest(ctx, parseEnrollRequest(JSON.parse(body)), { agreement: server.agreement, fingerprint: fp });
      const now = Math.floor(Date.now() / 1000);
      const credential = await issueCredential(server.signing, fp, {
        agentId,
        role: 'agent',
        signingKey: opened.signingKey,
        agreementKey: opened.agreementKey,
        issuedAt: now,
        expiresAt: now + 86400,
        jti: b64u(ctx.random(16)),
      });
      const response = await signEnrollResponse(ctx.crypto, server.signing, {
        agentId,
        name: 'pinned',
        role: 'agent',
        labels: {},
        credential,
        expiresAt: (now + 86400) * 1000,
        nonce: opened.nonce,
        server: {
          sig: b64u(other.signing.publicKey),
          sigKid: other.signing.kid,
          kx: b64u(other.agreement.publicKey),
          kxKid: other.agreement.kid,
          fp,
        },
        iat: Date.now(),
      });
      answer(200, response)(req, body, res);
    });
    try {
      const stateDir = join(dir, 'pinned');
      const token = formatToken({ tokenId: b64u(ctx.random(16)), secret: ctx.random(32), serverFingerprint: fp });
      const record = await enrollAgent(ctx, { serverUrl: upstream.url, token, stateDir });
      expect(record.server).toEqual({
        sig: b64u(server.signing.publicKey),
        sigKid: server.signing.kid,
        kx: b64u(server.agreement.publicKey),
        kxKid: server.agreement.kid,
        fp,
      });
      const state = await loadState(ctx.crypto, stateDir);
      expect(state.server.signing.publicKey).toEqual(server.signing.publicKey);
      expect(state.server.agreement.publicKey).toEqual(server.agreement.publicKey);
      expect(state.server.agreement.kid).toBe(server.agreement.kid);
    } finally {
      await upstream.close();
    }
  });
});
