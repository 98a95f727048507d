// Relayed objects at POST /v1/messages (spec §11), over real HTTP against the real server, on PGlite
// and PostgreSQL: agents and relays enroll for real (relays with a token of role `relay`), relays
// wrap with src/protocol/relay.ts, and the server verifies every layer, stores the path, answers
// with the envelope's own receipt, and refuses each kind of tampering with its own code. Different
// loopback addresses stand for different peers, so budgets per source address are exercised.
import { request } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { loadState, type AgentState } from '../../src/agent/state.js';
import { agents, inventories } from '../../src/db/schema.js';
import { b64u, fromB64u, utf8 } from '../../src/protocol/bytes.js';
import { sealEnvelope, type Envelope } from '../../src/protocol/envelope.js';
import { envelopeBinding, verifyReceipt } from '../../src/protocol/receipt.js';
import { batchProof, verifyBatchAnswer } from '../../src/protocol/batch-receipt.js';
import { parseRelayPath, relayLayers, wrapRelayed, type Relayed } from '../../src/protocol/relay.js';
import { parseEnvelope } from '../../src/protocol/envelope.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
const AGENT_ADDR = '127.0.0.1';
const RELAY_ADDR = '127.0.0.2';

interface Answer {
  status: number;
  retryAfter: string | undefined;
  body: { error?: { code: string }; receipt?: unknown; results?: { error?: { code: string }; result?: string }[] } & Record<
    string,
    unknown
  >;
}

function call(url: string, method: 'GET' | 'POST', path: string, body: unknown, from: string): Promise<Answer> {
  const target = new URL(`${url}${path}`);
  const data = body === undefined ? '' : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method,
        localAddress: from,
        headers: method === 'POST' ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
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
    req.end(method === 'POST' ? data : undefined);
  });
}
const post = (url: string, body: unknown, from = RELAY_ADDR) => call(url, 'POST', '/v1/messages', body, from);
const codeOf = (a: Answer) => a.body.error?.code ?? (a.status === 200 ? 'accepted' : `status ${a.status}`);
const codesOf = (a: Answer) => (a.body.results ?? []).map((r) => r.error?.code ?? 'accepted');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latchkey-relay-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));
let n = 0;

describe.each(dbKinds)('relayed messages on %s', { timeout: 120_000 }, (kind) => {
  let server: TestServer;
  let agent: AgentState;
  let relay1: AgentState;
  let relay2: AgentState;
  let notRelay: AgentState;
  let inventory: string;
  let counter = Date.now();

  async function enroll(role: 'agent' | 'relay', name: string): Promise<AgentState> {
    const res = await fetch(`${server.url}/v1/admin/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ role }),
    });
    expect(res.status).toBe(201);
    const { token } = (await res.json()) as { token: string };
    const stateDir = join(dir, `${kind}-${n++}`);
    await enrollAgent(ctx, { serverUrl: server.url, token, stateDir, name: `${name}-${kind}` });
    return loadState(ctx.crypto, stateDir);
  }
  async function admin(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Record<string, unknown>> {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    expect(res.status).toBe(200);
    return (await res.json()) as Record<string, unknown>;
  }
  const seal = async (from: AgentState = agent): Promise<Envelope> =>
    (
      await sealEnvelope(ctx, {
        sender: from.keys,
        recipient: from.server.agreement,
        type: 'inventory',
        contentType: 'application/json',
        contentEncoding: 'identity',
        counter: counter++,
        plaintext: utf8(inventory),
        credential: from.agent.credential,
      })
    ).envelope;
  const wrap = (inner: Envelope | Relayed, by: AgentState, src?: string, cred = by.agent.credential): Promise<Relayed> =>
    wrapRelayed(ctx, {
      inner,
      relayKid: by.keys.signing.kid,
      relaySigningKey: by.keys.signing.privateKey,
      rat: Date.now(),
      cred,
      ...(src === undefined ? {} : { src }),
    });
  /** The receipt in an answer, verified as the agent verifies it: pinned key, mid, snd and env of what it sent. */
  async function verified(receipt: unknown, env: Envelope, from: AgentState = agent) {
    const p = parseEnvelope(env);
    return verifyReceipt(
      ctx,
      from.server.signing,
      receipt,
      { mid: p.header.mid, snd: p.header.snd, env: envelopeBinding(p) },
      from.keys.agreement.privateKey,
    );
  }
  const midOf = (env: Envelope) => parseEnvelope(env).header.mid;
  const storedPath = async (env: Envelope) =>
    (
      await server.database.db
        .select({ path: inventories.path })
        .from(inventories)
        .where(eq(inventories.messageId, fromB64u(midOf(env))))
    )[0]?.path;

  beforeAll(async () => {
    // Small source budgets: refusals from one address are few in this file, and the test of who
    // pays for what spends one on purpose.
    server = await startTestServer(kind, {
      ingestPolicy: { sourceRefusalBurst: 40, sourceRefusalsPerSecond: 0.001, receiptLookupBurst: 20, receiptLookupsPerSecond: 0.001 },
    });
    inventory = await readFile(new URL('../fixtures/glpi/format/computer_1.json', import.meta.url), 'utf8');
    agent = await enroll('agent', 'agent');
    relay1 = await enroll('relay', 'relay-one');
    relay2 = await enroll('relay', 'relay-two');
    notRelay = await enroll('agent', 'not-a-relay');
  }, 180_000);
  afterAll(() => server.close());

  it('agent -> relay -> server: stored with its path, answered with the envelope own receipt, shown to admins', async () => {
    const env = await seal();
    const relayed = await wrap(env, relay1, '192.0.2.10');
    const a = await post(server.url, relayed);
    expect(codeOf(a)).toBe('accepted');
    const receipt = await verified(a.body, env);
    expect(receipt.status).toBe('accepted');
    const hop = { relay: relay1.keys.signing.kid, agentId: relay1.agent.agentId, name: `relay-one-${kind}`, hop: 1, src: '192.0.2.10' };
    const path = await storedPath(env);
    expect(path).toEqual([{ ...hop, rat: relayLayers(relayed).layers[0]!.rat }]);
    // inventory show --json reads this route; agents list reads the next.
    const shown = await admin('GET', `/v1/admin/agents/${agent.agent.agentId}/inventory`);
    expect(shown.path).toEqual(path);
    expect(shown.messageId).toBe(midOf(env));
    const listed = (await admin('GET', '/v1/admin/agents?limit=100')).agents as Record<string, unknown>[];
    const mine = listed.find((x) => x.id === agent.agent.agentId)!;
    expect(mine.lastRelay).toEqual({ id: relay1.agent.agentId, name: `relay-one-${kind}` });
    expect(mine.lastPath).toEqual(path);
    // The agent's receipt, fetched again later by (snd, mid): same env, signed by the server.
    const again = await call(server.url, 'GET', `/v1/receipts/${agent.keys.signing.kid}/${midOf(env)}`, undefined, RELAY_ADDR);
    expect(again.status).toBe(200);
    const r2 = await verified(again.body, env);
    expect(r2.status).toBe('accepted');
    expect(r2.rat).toBe(receipt.rat);
  });

  it('a direct message stores an empty path; the agent keeps the relay it last came through', async () => {
    const env = await seal();
    expect(codeOf(await post(server.url, env, AGENT_ADDR))).toBe('accepted');
    expect(await storedPath(env)).toEqual([]);
    const [row] = await server.database.db.select().from(agents).where(eq(agents.id, agent.agent.agentId));
    expect(row!.lastPath).toEqual([]);
    expect(row!.lastRelayId).toBe(relay1.agent.agentId);
  });

  it('two relays in a chain: the path is outer -> inner with hops 2, 1', async () => {
    const env = await seal();
    const relayed = await wrap(await wrap(env, relay1, '192.0.2.11'), relay2, RELAY_ADDR);
    const a = await post(server.url, relayed);
    expect(codeOf(a)).toBe('accepted');
    await verified(a.body, env);
    const path = (await storedPath(env))!;
    expect(path.map((h) => [h.name, h.hop, h.src])).toEqual([
      [`relay-two-${kind}`, 2, RELAY_ADDR],
      [`relay-one-${kind}`, 1, '192.0.2.11'],
    ]);
  });

  it('a batch mixes envelopes and relayed objects; a replayed relayed object is replay_detected with a signed receipt', async () => {
    const [e1, e2, e3] = [await seal(), await seal(), await seal()];
    const r2 = await wrap(e2, relay1);
    const sent = { envelopes: [e1, r2, await wrap(e3, relay2, 'x'), r2] };
    const a = await post(server.url, sent);
    expect(codesOf(a)).toEqual(['accepted', 'accepted', 'accepted', 'replay_detected']);
    // One batch receipt answers all four (§10.1), verified once as the relay does, then each share as its agent does.
    const results = await verifyBatchAnswer(ctx.crypto, agent.server.signing, a.body, {
      request: utf8(JSON.stringify(sent)),
      items: [e1, e2, e3, e2].map((e) => ({ mid: midOf(e), snd: parseEnvelope(e).header.snd, env: envelopeBinding(parseEnvelope(e)) })),
    });
    expect((a.body.batchReceipts as unknown[]).length).toBe(1);
    for (const [i, e] of [e1, e2, e3, e2].entries()) await verified(batchProof(a.body as { batchReceipts: unknown }, results[i]!), e);
    // The same envelope through another relay, later: the same message, still a replay.
    const other = await post(server.url, await wrap(e2, relay2));
    expect(codeOf(other)).toBe('replay_detected');
    expect((await verified(other.body.receipt, e2)).code).toBe('replay_detected');
  });

  it('tampering: an altered byte, a dropped, reordered or foreign layer, a fifth layer', async () => {
    const env = await seal();
    const two = await wrap(await wrap(env, relay1), relay2);
    const [outer, inner] = relayLayers(two).layers;
    // A byte of the envelope inside (its ciphertext): every layer's signature covers it.
    const ct = fromB64u(env.ct);
    ct[5]! ^= 0x10;
    const altered = { ...outer!.wire, inner: { ...inner!.wire, inner: { ...env, ct: b64u(ct) } } };
    expect(codeOf(await post(server.url, altered))).toBe('signature_invalid');
    // A byte of a layer body (the received-at), re-encoded.
    const body = JSON.parse(new TextDecoder().decode(inner!.layerBytes)) as Record<string, unknown>;
    const bumped = { ...outer!.wire, inner: { ...inner!.wire, layer: b64u(utf8(JSON.stringify({ ...body, rat: Number(body.rat) + 1 }))) } };
    expect(codeOf(await post(server.url, bumped))).toBe('signature_invalid');
    // The inner layer dropped: the outer one (hop 2) now wraps the envelope.
    expect(codeOf(await post(server.url, { ...outer!.wire, inner: env }))).toBe('envelope_malformed');
    // Layers reordered: relay 1's layer outside relay 2's.
    const reordered = { ...inner!.wire, inner: { ...outer!.wire, inner: env } };
    expect(codeOf(await post(server.url, reordered))).toBe('envelope_malformed');
    // Relay 2's layer moved onto another envelope, hops intact.
    const moved = { ...outer!.wire, inner: await wrap(await seal(), relay1) };
    expect(codeOf(await post(server.url, moved))).toBe('signature_invalid');
    // A fifth layer.
    let deep: Envelope | Relayed = await seal();
    for (const r of [relay1, relay2, relay1, relay2]) deep = await wrap(deep, r);
    expect(codeOf(await post(server.url, { v: 1, layer: b64u(utf8('{}')), inner: deep, sig: b64u(new Uint8Array(64)) }))).toBe(
      'hop_limit_exceeded',
    );
    // None of those refusals carries a receipt, and the genuine object still goes through.
    const a = await post(server.url, two);
    expect(codeOf(a)).toBe('accepted');
    await verified(a.body, env);
  });

  it('layers from identities that may not relay: not a relay, unknown, wrong credential, revoked key, revoked relay', async () => {
    expect(codeOf(await post(server.url, await wrap(await seal(), notRelay)))).toBe('relay_not_authorized');
    const stranger = { ...notRelay, keys: { ...notRelay.keys, signing: { ...relay1.keys.signing, kid: 'A'.repeat(22) } } };
    expect(codeOf(await post(server.url, await wrap(await seal(), stranger)))).toBe('key_unknown');
    expect(codeOf(await post(server.url, await wrap(await seal(), relay1, undefined, relay2.agent.credential)))).toBe('credential_invalid');
    expect(codeOf(await post(server.url, await wrap(await seal(), relay1, undefined, agent.agent.credential)))).toBe('credential_invalid');
    expect(codeOf(await post(server.url, await wrap(await seal(), relay1, undefined, 'not.a.jwt')))).toBe('credential_invalid');
    // An agent's own credential in its envelope is still checked (§8 step 7) behind a good layer.
    const spare = await enroll('relay', 'relay-spare');
    await admin('POST', `/v1/admin/keys/${spare.keys.signing.kid}/revoke`, {});
    expect(codeOf(await post(server.url, await wrap(await seal(), spare)))).toBe('key_revoked');
    await admin('POST', `/v1/admin/agents/${relay2.agent.agentId}/revoke`, {});
    // Revoked: refused on its very next request, also as the outer layer of a chain.
    expect(codeOf(await post(server.url, await wrap(await seal(), relay2)))).toBe('agent_revoked');
    expect(codeOf(await post(server.url, await wrap(await wrap(await seal(), relay1), relay2)))).toBe('agent_revoked');
    expect(codeOf(await post(server.url, await wrap(await seal(), relay1)))).toBe('accepted');
  });

  it("who pays: refusals of a relayed envelope spend the attested source's budget, not the relay's", async () => {
    const env = await seal();
    const peer = '127.0.0.4';
    expect(codeOf(await post(server.url, await wrap(env, relay1, '198.51.100.1'), peer))).toBe('accepted');
    // 60 replayed copies attested as coming from 198.51.100.1: 40 refusals, then that source is spent.
    const copies = await Promise.all(Array.from({ length: 60 }, () => wrap(env, relay1, '198.51.100.1')));
    const a = await post(server.url, { envelopes: copies }, peer);
    const codes = codesOf(a);
    expect(codes.filter((c) => c === 'replay_detected')).toHaveLength(40);
    expect(codes.slice(40).every((c) => c === 'rate_limited')).toBe(true);
    // The relay's own address, and another source it attests, still send.
    expect(codeOf(await post(server.url, await wrap(await seal(), relay1, '198.51.100.2'), peer))).toBe('accepted');
    expect(codeOf(await post(server.url, await seal(), peer))).toBe('accepted');
  });

  it('GET /v1/receipts: unknown is not_found, malformed is request_invalid, and it is budgeted per address', async () => {
    const from = '127.0.0.3';
    const kid = agent.keys.signing.kid;
    const unknown = await call(server.url, 'GET', `/v1/receipts/${kid}/${b64u(new Uint8Array(16))}`, undefined, from);
    expect([unknown.status, codeOf(unknown)]).toEqual([404, 'not_found']);
    const bad = await call(server.url, 'GET', `/v1/receipts/${kid}/xyz`, undefined, from);
    expect([bad.status, codeOf(bad)]).toEqual([400, 'request_invalid']);
    let limited: Answer | undefined;
    for (let i = 0; i < 30 && !limited; i++) {
      const r = await call(server.url, 'GET', `/v1/receipts/${kid}/${b64u(new Uint8Array(16))}`, undefined, from);
      if (r.status === 429) limited = r;
    }
    expect(limited && codeOf(limited)).toBe('rate_limited');
    expect(Number(limited!.retryAfter)).toBeGreaterThan(0);
  });

  it('a relay cannot pass off a receipt for another envelope: the env binding differs', async () => {
    const env = await seal();
    const a = await post(server.url, await wrap(env, relay1));
    expect(codeOf(a)).toBe('accepted');
    const other = await seal();
    await expect(verified(a.body, other)).rejects.toMatchObject({ code: 'signature_invalid' });
    expect(parseRelayPath(await wrap(env, relay1)).envelope.wire).toEqual(env);
  });
});
