// Attacks on ingest reproduced over real HTTP, on PGlite and PostgreSQL (issue 10, items 1, 3, 4, 9
// and 16): each test is the attack as an outsider makes it, and what the server must do instead.
// Attacker and victim speak from different loopback addresses (127.0.0.2 and 127.0.0.1), so budgets
// per source address are exercised as they are in a deployment.
import { request } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { eq, sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { loadState, type AgentState } from '../../src/agent/state.js';
import { agents, inventories } from '../../src/db/schema.js';
import { fromB64u, fromUtf8 } from '../../src/protocol/bytes.js';
import { issueCredential } from '../../src/protocol/credential.js';
import { sealEnvelope, type Envelope } from '../../src/protocol/envelope.js';
import { generateKeySet } from '../../src/protocol/keys.js';
import { SENDER_LOOKUP_SQL, type IngestPolicy } from '../../src/server/services/ingest.js';
import { createRateLimiter } from '../../src/server/services/rate-limiter.js';
import { STORE_BATCH_SQL } from '../../src/server/services/store-batcher.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { createTestDatabase, dbKinds, type TestDatabase } from '../helpers/db.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
const fixture = (name: string) => readFile(new URL(`../fixtures/glpi/${name}`, import.meta.url), 'utf8');
const VICTIM = '127.0.0.1';
const ATTACKER = '127.0.0.2';

interface Answer {
  status: number;
  retryAfter: string | undefined;
  body: { error?: { code: string }; results?: { error?: { code: string } }[] };
}

/** POST /v1/messages from a chosen local address (the server sees it as the client's address). */
function post(url: string, body: unknown, from = VICTIM): Promise<Answer> {
  const target = new URL(`${url}/v1/messages`);
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        localAddress: from,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers['retry-after'],
            body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Answer['body'],
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}
const codeOf = (a: Answer) => a.body.error?.code ?? (a.status === 200 ? 'accepted' : `status ${a.status}`);
const codesOf = (a: Answer) => (a.body.results ?? []).map((r) => r.error?.code ?? 'accepted');
const tally = (codes: string[]) => codes.reduce<Record<string, number>>((t, c) => ({ ...t, [c]: (t[c] ?? 0) + 1 }), {});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latchkey-attack-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));
let n = 0;

// Generous: the first test on PGlite also starts PGlite, and the machine may be shared.
describe.each(dbKinds)('ingest under attack on %s', { timeout: 120_000 }, (kind) => {
  const servers: TestServer[] = [];
  const databases: TestDatabase[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
    for (const d of databases.splice(0)) await d.dispose();
  });
  async function serve(
    ingestPolicy: Partial<IngestPolicy> = {},
    database?: TestDatabase,
    identity?: TestServer['identity'],
  ): Promise<TestServer> {
    const s = await startTestServer(kind, { ingestPolicy, database, identity });
    servers.push(s);
    return s;
  }
  async function newAgent(server: TestServer): Promise<AgentState> {
    const res = await fetch(`${server.url}/v1/admin/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    const { token } = (await res.json()) as { token: string };
    const stateDir = join(dir, `${kind}-${n++}`);
    await enrollAgent(ctx, { serverUrl: server.url, token, stateDir, name: `agent-${kind}-${n}` });
    return loadState(ctx.crypto, stateDir);
  }
  let counter = Date.now();
  const seal = async (agent: AgentState, inventory: string, over: Partial<Parameters<typeof sealEnvelope>[1]> = {}): Promise<Envelope> =>
    (
      await sealEnvelope(ctx, {
        sender: agent.keys,
        recipient: agent.server.agreement,
        type: 'inventory',
        contentType: 'application/json',
        contentEncoding: 'gzip',
        counter: counter++,
        plaintext: new Uint8Array(gzipSync(inventory)),
        credential: agent.agent.credential,
        ...over,
      })
    ).envelope;
  const storedFor = async (server: TestServer, agentId: string) =>
    (
      await server.database.db
        .select({ c: sql<number>`count(*)::int` })
        .from(inventories)
        .where(eq(inventories.agentId, agentId))
    )[0]!.c;
  /** Counts the statements of one kind the server runs (the real database underneath). */
  function countStatements(database: TestDatabase, text: string): () => number {
    let count = 0;
    const prepared = database.prepared.bind(database);
    database.prepared = (t) => {
      const run = prepared(t);
      return t === text ? (params) => (count++, run(params)) : run;
    };
    return () => count;
  }

  it('item 1: replayed copies of a captured envelope cost the replaying source, never the agent', async () => {
    const server = await serve({ messageBurst: 5, messagesPerSecond: 0.001, sourceRefusalBurst: 60, sourceRefusalsPerSecond: 0.001 });
    const victim = await newAgent(server);
    const inv = await fixture('format/printer_1.json');
    const captured = await seal(victim, inv);
    expect(codeOf(await post(server.url, captured))).toBe('accepted');

    // The attacker replays the copy: one batch of 50, then 50 one by one.
    expect(tally(codesOf(await post(server.url, { envelopes: Array(50).fill(captured) }, ATTACKER)))).toEqual({ replay_detected: 50 });
    const singles = await Promise.all(Array.from({ length: 50 }, () => post(server.url, captured, ATTACKER)));
    const codes = tally(singles.map(codeOf));
    // Its own address pays: 60 refusals, then rate_limited with Retry-After, before any work.
    expect(codes).toEqual({ replay_detected: 10, rate_limited: 40 });
    expect(Number(singles.find((a) => codeOf(a) === 'rate_limited')!.retryAfter)).toBeGreaterThan(0);

    // The victim's fresh messages are all accepted: its budget of 5 held the one it sent and these 4.
    for (let i = 0; i < 4; i++) expect(codeOf(await post(server.url, await seal(victim, inv)))).toBe('accepted');
    // Its own budget still applies to what it stores.
    expect(codeOf(await post(server.url, await seal(victim, inv)))).toBe('rate_limited');
    expect(await storedFor(server, victim.agent.agentId)).toBe(5);
  });

  it('item 3: the byte budget counts the bytes stored (decompressed), not the compressed bytes sent', async () => {
    const inventory = JSON.parse(await fixture('format/computer_1.json')) as { content: Record<string, unknown> };
    inventory.content.padding = 'x'.repeat(600_000);
    const text = JSON.stringify(inventory);
    expect(gzipSync(text).length).toBeLessThan(50_000);
    const server = await serve({ byteBurst: 1024 * 1024, bytesPerSecond: 1 });
    const agent = await newAgent(server);
    expect(codeOf(await post(server.url, await seal(agent, text)))).toBe('accepted');
    const second = await post(server.url, await seal(agent, text));
    expect(codeOf(second)).toBe('rate_limited');
    expect(Number(second.retryAfter)).toBeGreaterThan(100_000); // ~440 KB over, refilled at 1 B/s
    expect(await storedFor(server, agent.agent.agentId)).toBe(1);
    const [row] = await server.database.db.select({ used: agents.byteBudgetUsed }).from(agents).where(eq(agents.id, agent.agent.agentId));
    expect(row!.used).toBeGreaterThanOrEqual(text.length - 1);
  });

  it('item 3: the stored-bytes budget holds across two instances sharing one database', async () => {
    const inv = await fixture('format/computer_1.json');
    const size = Buffer.byteLength(inv);
    const database = await createTestDatabase(kind);
    databases.push(database);
    const policy = { byteBurst: Math.floor(2.5 * size), bytesPerSecond: 1 };
    const a = await serve(policy, database);
    const b = await serve(policy, database, a.identity);
    const agent = await newAgent(a);
    expect(codeOf(await post(a.url, await seal(agent, inv)))).toBe('accepted');
    expect(codeOf(await post(b.url, await seal(agent, inv)))).toBe('accepted');
    // Each instance has seen one message, but together they stored two: a third does not fit.
    expect(codeOf(await post(a.url, await seal(agent, inv)))).toBe('rate_limited');
    expect(codeOf(await post(b.url, await seal(agent, inv)))).toBe('rate_limited');
    expect(await storedFor(a, agent.agent.agentId)).toBe(2);
  });

  it('item 4: unknown senders are refused from memory, and their lookups are budgeted per source', async () => {
    const database = await createTestDatabase(kind);
    databases.push(database);
    const lookups = countStatements(database, SENDER_LOOKUP_SQL);
    const server = await serve({ sourceLookupBurst: 10, sourceLookupsPerSecond: 0.001 }, database);
    const victim = await newAgent(server);
    const inv = await fixture('format/printer_1.json');
    const strangers = await Promise.all(Array.from({ length: 100 }, () => generateKeySet(ctx)));
    const forged = await Promise.all(strangers.map((keys) => seal({ ...victim, keys }, inv)));

    // One unknown key, 100 times: one lookup, then refused from memory.
    expect(tally(codesOf(await post(server.url, { envelopes: Array(100).fill(forged[0]) }, ATTACKER)))).toEqual({ key_unknown: 100 });
    expect(lookups()).toBe(1);
    // 100 different unknown keys: the source's lookup budget (10, one already spent) runs out.
    expect(tally(codesOf(await post(server.url, { envelopes: forged.slice(1) }, ATTACKER)))).toEqual({ key_unknown: 9, rate_limited: 90 });
    expect(lookups()).toBe(10);
    // Another address, with a registered key, is not held back.
    expect(codeOf(await post(server.url, await seal(victim, inv)))).toBe('accepted');
    expect(lookups()).toBe(11);
  });

  it('item 4: honest senders this instance has not seen, more at once than the lookup budget, wait for it and are all stored', async () => {
    const database = await createTestDatabase(kind);
    databases.push(database);
    const lookups = countStatements(database, SENDER_LOOKUP_SQL);
    const server = await serve({ sourceLookupBurst: 10, sourceLookupsPerSecond: 0.001 }, database);
    const inv = await fixture('format/printer_1.json');
    // A relay's batch after a restart: 40 registered agents, none of them in this instance's memory.
    const agents = await Promise.all(Array.from({ length: 40 }, () => newAgent(server)));
    const batch = await Promise.all(agents.map((agent) => seal(agent, inv)));
    expect(tally(codesOf(await post(server.url, { envelopes: batch }, ATTACKER)))).toEqual({ accepted: 40 });
    expect(lookups()).toBe(40);
    // Usable keys spent nothing: the budget still refuses unknown keys only after its 10.
    const strangers = await Promise.all(Array.from({ length: 12 }, () => generateKeySet(ctx)));
    const forged = await Promise.all(strangers.map((keys) => seal({ ...agents[0]!, keys }, inv)));
    expect(tally(codesOf(await post(server.url, { envelopes: forged }, ATTACKER)))).toEqual({ key_unknown: 10, rate_limited: 2 });
  });

  it('item 9: a number beyond PostgreSQL numeric range is refused before the database', async () => {
    const database = await createTestDatabase(kind);
    databases.push(database);
    const stores = countStatements(database, STORE_BATCH_SQL);
    const server = await serve({}, database);
    const agent = await newAgent(server);
    const base = JSON.parse(await fixture('format/printer_1.json')) as { content: Record<string, unknown> };
    base.content.poison = 'POISON';
    const poison = (n: string) => JSON.stringify(base).replace('"POISON"', n);
    for (const n of [`1${'0'.repeat(131_072)}`, '1e131072', '-9.5e131072', `0.${'0'.repeat(16_383)}1`, '1e-16384', '1e1073741823']) {
      const text = poison(n);
      JSON.parse(text);
      expect(codeOf(await post(server.url, await seal(agent, text))), n.slice(0, 20)).toBe('payload_invalid');
    }
    expect(stores()).toBe(0);
    // The largest and smallest that fit are stored, and -0 too (as 0: numeric has no negative zero).
    for (const n of [`9${'9'.repeat(131_071)}`, '1e131071', `0.${'0'.repeat(16_382)}1`, '-0', '-0.0e-5']) {
      expect(codeOf(await post(server.url, await seal(agent, poison(n)))), n.slice(0, 20)).toBe('accepted');
    }
    expect(stores()).toBe(5);
  });

  it('item 16: the envelope credential is verified when present; the batch wrapper takes no other field', async () => {
    const server = await serve();
    const alice = await newAgent(server);
    const bob = await newAgent(server);
    const inv = await fixture('format/printer_1.json');
    const now = Math.floor(Date.now() / 1000);
    const issue = (signing: TestServer['identity']['signing'], fingerprint: string, over: { exp?: number; agentId?: string } = {}) =>
      issueCredential(signing, fingerprint, {
        agentId: over.agentId ?? alice.agent.agentId,
        role: 'agent',
        signingKey: alice.keys.signing,
        agreementKey: alice.keys.agreement,
        issuedAt: now - 100,
        expiresAt: over.exp ?? now + 3600,
        jti: `j${n++}`,
      });
    const otherServer = await generateKeySet(ctx);
    const bad: [string, string][] = [
      ['not a JWT', 'not-a-jwt'],
      ["another agent's credential", bob.agent.credential],
      ['expired', await issue(server.identity.signing, server.identity.fingerprint, { exp: now - 10 })],
      ['naming another agent id', await issue(server.identity.signing, server.identity.fingerprint, { agentId: bob.agent.agentId })],
      ['signed by another key', await issue({ ...otherServer.signing, kid: server.identity.signing.kid }, server.identity.fingerprint)],
    ];
    for (const [what, credential] of bad) {
      const res = await post(server.url, await seal(alice, inv, { credential }));
      expect(codeOf(res), what).toBe('credential_invalid');
      expect(res.status, what).toBe(401);
    }
    expect(await storedFor(server, alice.agent.agentId)).toBe(0);
    // A fresh credential this server issued for this key, or none at all: accepted.
    expect(
      codeOf(
        await post(server.url, await seal(alice, inv, { credential: await issue(server.identity.signing, server.identity.fingerprint) })),
      ),
    ).toBe('accepted');
    expect(codeOf(await post(server.url, await seal(alice, inv, { credential: undefined })))).toBe('accepted');

    const good = await seal(alice, inv);
    for (const wrapper of [
      { envelopes: [good], extra: 1 },
      { envelopes: [good], results: [] },
    ]) {
      const res = await post(server.url, wrapper);
      expect(res.status).toBe(400);
      expect(codeOf(res)).toBe('envelope_malformed');
    }
    expect(await storedFor(server, alice.agent.agentId)).toBe(2);
    expect(JSON.parse(fromUtf8(fromB64u(good.header))).snd).toBe(alice.keys.signing.kid);
  });
});

describe('reservations', () => {
  it('a refund gives back what a reservation took, never beyond capacity', () => {
    let t = 0;
    const limiter = createRateLimiter({ capacity: 2, refillPerSecond: 0.001, now: () => t });
    expect(limiter.take('a').ok).toBe(true);
    expect(limiter.take('a').ok).toBe(true);
    expect(limiter.take('a').ok).toBe(false);
    limiter.refund('a');
    expect(limiter.take('a').ok).toBe(true);
    limiter.refund('a', 5);
    t += 1000;
    expect(limiter.take('a', 2).ok).toBe(true);
    expect(limiter.peek('a').ok).toBe(false);
    limiter.refund('never-taken');
    expect(limiter.peek('never-taken', 2).ok).toBe(true);
  });
});
