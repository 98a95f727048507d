// Sealed inventory messaging over real HTTP, on PGlite and PostgreSQL: round trips of real GLPI
// inventories, and every refusal with its code and nothing stored.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { HttpError } from '../../src/agent/http.js';
import { sealInventory, submitEnvelope } from '../../src/agent/send.js';
import { loadState, type AgentState } from '../../src/agent/state.js';
import { agentKeys, agents, inventories, seenMessages } from '../../src/db/schema.js';
import { b64u, fromB64u, utf8 } from '../../src/protocol/bytes.js';
import { parseEnvelope, sealEnvelope, type Envelope } from '../../src/protocol/envelope.js';
import { generateKeySet } from '../../src/protocol/keys.js';
import { envelopeBinding, verifyReceipt } from '../../src/protocol/receipt.js';
import { batchProof, verifyBatchAnswer, type BatchAnswer } from '../../src/protocol/batch-receipt.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
const fixture = (name: string) => readFile(new URL(`../fixtures/glpi/${name}`, import.meta.url), 'utf8');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latchkey-msg-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));
let n = 0;

describe.each(dbKinds)('messaging on %s', (kind) => {
  let server: TestServer;
  let alice: AgentState;
  let bob: AgentState;

  const post = (body: unknown) =>
    fetch(`${server.url}/v1/messages`, {
      method: 'POST',
      body: typeof body === 'string' ? body : JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });
  const codeOf = async (res: Response) => ((await res.json()) as { error?: { code: string } }).error?.code ?? `status ${res.status}`;
  const stored = async () => ({
    inventories: (await server.database.db.select({ c: sql<number>`count(*)::int` }).from(inventories))[0]!.c,
    seen: (await server.database.db.select({ c: sql<number>`count(*)::int` }).from(seenMessages))[0]!.c,
  });
  async function newAgent(name: string): Promise<AgentState> {
    const res = await fetch(`${server.url}/v1/admin/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    const { token } = (await res.json()) as { token: string };
    const stateDir = join(dir, `${kind}-${n++}`);
    await enrollAgent(ctx, { serverUrl: server.url, token, stateDir, name });
    return loadState(ctx.crypto, stateDir);
  }
  const seal = async (agent: AgentState, inventory: string, over: Partial<Parameters<typeof sealEnvelope>[1]> = {}, c = ctx) =>
    (
      await sealEnvelope(c, {
        sender: agent.keys,
        recipient: agent.server.agreement,
        type: 'inventory',
        contentType: 'application/json',
        contentEncoding: 'gzip',
        counter: Date.now(),
        plaintext: new Uint8Array(gzipSync(inventory)),
        credential: agent.agent.credential,
        ...over,
      })
    ).envelope;

  beforeAll(async () => {
    server = await startTestServer(kind);
    alice = await newAgent(`alice-${kind}`);
    bob = await newAgent(`bob-${kind}`);
  });
  afterAll(() => server.close());

  it('round-trips real GLPI inventories (up to the 1.4 MB sample) exactly, with signed receipts', async () => {
    for (const name of [
      'format/computer_3_updated.json',
      'format/networkequipment_2.json',
      'format/phone_1.json',
      'core/lxc-server-1.json',
    ]) {
      const text = await fixture(name);
      const { receipt } = await submitEnvelope(ctx, alice, await sealInventory(ctx, alice, utf8(text)));
      expect(receipt.status).toBe('accepted');
      const res = await fetch(`${server.url}/v1/admin/agents/${alice.agent.agentId}/inventory`, {
        headers: { authorization: `Bearer ${server.adminToken}` },
      });
      const body = (await res.json()) as { inventory: unknown; messageId: string; size: number };
      expect(body.inventory, name).toEqual(JSON.parse(text));
      expect(body.messageId).toBe(receipt.mid);
      expect(body.size).toBe(utf8(text).length);
    }
    const [a] = await server.database.db.select().from(agents).where(eq(agents.id, alice.agent.agentId));
    expect(a!.lastSeenAt).not.toBeNull();
  });

  it('accepts an envelope once: a second submission, even concurrent, is replay_detected', async () => {
    const env = await seal(alice, await fixture('format/printer_1.json'));
    expect((await post(env)).status).toBe(200);
    const again = await post(env);
    expect(again.status).toBe(409);
    expect(await codeOf(again)).toBe('replay_detected');

    const twin = await seal(alice, await fixture('format/printer_2.json'));
    const both = await Promise.all([post(twin), post(twin), post(twin)]);
    expect(both.map((r) => r.status).sort()).toEqual([200, 409, 409]);
  });

  it('refuses tampering in every region of the envelope and stores nothing', async () => {
    const env = await seal(alice, await fixture('format/printer_3.json'));
    const before = await stored();
    const flip = (s: string, at = 10) => {
      const b = fromB64u(s);
      b[Math.min(at, b.length - 1)]! ^= 0x01;
      return b64u(b);
    };
    const cases: [string, Envelope | string, string][] = [
      ['header', { ...env, header: flip(env.header) }, 'signature_invalid|envelope_malformed'],
      ['enc', { ...env, enc: flip(env.enc) }, 'signature_invalid'],
      ['ct', { ...env, ct: flip(env.ct, 40) }, 'signature_invalid'],
      ['sig', { ...env, sig: flip(env.sig) }, 'signature_invalid'],
      ['cred', { ...env, cred: `${env.cred}x` }, 'signature_invalid'],
      ['cred removed', (({ cred: _c, ...rest }) => rest)(env) as Envelope, 'signature_invalid'],
      ['version', { ...env, v: 2 } as unknown as Envelope, 'version_unsupported'],
      ['extra field', { ...env, extra: 1 } as unknown as Envelope, 'envelope_malformed'],
      ['not json', '{"v":1,', 'envelope_malformed'],
    ];
    for (const [region, body, expected] of cases) {
      const res = await post(body);
      expect(res.status, region).toBeGreaterThanOrEqual(400);
      expect(res.status, region).toBeLessThan(500);
      expect(expected.split('|'), region).toContain(await codeOf(res));
    }
    expect(await stored()).toEqual(before);
    expect((await post(env)).status).toBe(200);
  });

  it('refuses a wrong recipient, an unknown sender, a forged sender, stale and future messages', async () => {
    const before = await stored();
    const otherServer = await generateKeySet(ctx);
    expect(await codeOf(await post(await seal(alice, await fixture('format/printer_1.json'), { recipient: otherServer.agreement })))).toBe(
      'recipient_mismatch',
    );
    const stranger = await generateKeySet(ctx);
    expect(await codeOf(await post(await seal({ ...alice, keys: stranger }, await fixture('format/printer_1.json'))))).toBe('key_unknown');
    // Bob's keys claiming Alice's key id: the signature cannot verify against Alice's key.
    const forged = { ...bob.keys, signing: { ...bob.keys.signing, kid: alice.keys.signing.kid } };
    expect(await codeOf(await post(await seal({ ...bob, keys: forged }, await fixture('format/printer_1.json'))))).toBe(
      'signature_invalid',
    );
    // Alice's signing key with Bob's agreement key: the HPKE Auth mode binding fails.
    const mixed = { ...alice.keys, agreement: bob.keys.agreement };
    expect(await codeOf(await post(await seal({ ...alice, keys: mixed }, await fixture('format/printer_1.json'))))).toBe('decrypt_failed');
    const past = testContext(ctx.crypto, () => Date.now() - 8 * 24 * 3600_000);
    const future = testContext(ctx.crypto, () => Date.now() + 10 * 60_000);
    expect(await codeOf(await post(await seal(alice, await fixture('format/printer_1.json'), {}, past)))).toBe('stale_message');
    expect(await codeOf(await post(await seal(alice, await fixture('format/printer_1.json'), {}, future)))).toBe('stale_message');
    expect(await codeOf(await post(await seal(alice, await fixture('format/printer_1.json'), { counter: 1 })))).toBe('stale_message');
    expect(await stored()).toEqual(before);
  });

  it('one agent cannot send as another: what Bob sends is stored as Bob, whatever deviceid it names', async () => {
    const aliceInventory = JSON.parse(await fixture('format/computer_1.json')) as { deviceid: string };
    await submitEnvelope(ctx, bob, await sealInventory(ctx, bob, utf8(JSON.stringify(aliceInventory))));
    const rows = await server.database.db
      .select({ agentId: inventories.agentId })
      .from(inventories)
      .where(sql`${inventories.content}->>'deviceid' = ${aliceInventory.deviceid}`);
    expect(rows.map((r) => r.agentId)).toEqual([bob.agent.agentId]);
  });

  it('refuses oversize bodies, a gzip bomb and an invalid inventory, storing nothing', async () => {
    const before = await stored();
    const huge = await fetch(`${server.url}/v1/messages`, {
      method: 'POST',
      body: 'x'.repeat(9 * 1024 * 1024),
      headers: { 'content-type': 'application/json' },
    });
    expect(huge.status).toBe(413);
    // Refused before the body was read: the server closes that connection rather than have it reused.
    expect(huge.headers.get('connection')).toBe('close');
    expect(await codeOf(huge)).toBe('payload_too_large');

    const bomb = gzipSync(Buffer.alloc(40 * 1024 * 1024), { level: 9 });
    expect(bomb.length).toBeLessThan(100_000);
    const bombEnv = (
      await sealEnvelope(ctx, {
        sender: alice.keys,
        recipient: alice.server.agreement,
        type: 'inventory',
        contentType: 'application/json',
        contentEncoding: 'gzip',
        counter: Date.now(),
        plaintext: new Uint8Array(bomb),
      })
    ).envelope;
    const b = await post(bombEnv);
    expect(b.status).toBe(413);
    expect(await codeOf(b)).toBe('payload_too_large');

    const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
    for (const bad of [
      `{"deviceid":"x","content":{"versionclient":"x","big":1e200000}}`,
      `{"deviceid":"x","content":{"versionclient":"x","deep":${deep}}}`,
      '{"deviceid":"x\\u0000","content":{"versionclient":"x"}}',
      '{"deviceid":"x\\ud800","content":{"versionclient":"x"}}',
      '{"deviceid":"x"}',
      '{"deviceid":"x","content":{}}',
      '{"deviceid":1,"content":{"versionclient":"x"}}',
      '{"deviceid":"x","content":{"versionclient":"x"},"unknown":1}',
      'not json',
    ]) {
      const res = await post(await seal(alice, bad));
      expect(await codeOf(res), bad).toBe('payload_invalid');
    }
    expect(await stored()).toEqual(before);
  });

  it('a plaintext marker inside the inventory never appears in the bytes on the wire', async () => {
    const marker = `MARKER-${b64u(ctx.random(12))}`;
    const inv = JSON.parse(await fixture('format/computer_2.json')) as { content: Record<string, unknown> };
    inv.content.marker = marker;
    const sent: string[] = [];
    const realFetch = globalThis.fetch;
    globalThis.fetch = (async (input: string | URL | Request, init?: RequestInit) => {
      sent.push(String(init?.body ?? ''));
      const res = await realFetch(input, init);
      sent.push(await res.clone().text());
      return res;
    }) as typeof fetch;
    try {
      const { receipt } = await submitEnvelope(ctx, alice, await sealInventory(ctx, alice, utf8(JSON.stringify(inv))));
      expect(receipt.status).toBe('accepted');
    } finally {
      globalThis.fetch = realFetch;
    }
    expect(sent.join('')).not.toContain(marker);
    expect(sent.join('')).not.toContain(b64u(utf8(marker)));
    // Uncompressed too (identity encoding).
    const plain = await seal(alice, JSON.stringify(inv), { contentEncoding: 'identity', plaintext: utf8(JSON.stringify(inv)) });
    expect(JSON.stringify(plain)).not.toContain(marker);
  });

  /** Calls `run`, counting the Ed25519 signatures the server's crypto backend makes meanwhile. */
  async function countingSignatures<T>(run: () => Promise<T>): Promise<{ value: T; signatures: number }> {
    const c = server.ctx.crypto;
    const real = c.ed25519Sign.bind(c);
    let signatures = 0;
    c.ed25519Sign = (seed, message) => {
      signatures++;
      return real(seed, message);
    };
    try {
      return { value: await run(), signatures };
    } finally {
      c.ed25519Sign = real;
    }
  }
  const bindingOf = (e: Envelope) => {
    const p = parseEnvelope(e);
    return { mid: p.header.mid, snd: p.header.snd, env: envelopeBinding(p) };
  };

  it('batches: one batch receipt, signed once, covers every result in order (§10.1)', async () => {
    const good = await seal(alice, await fixture('format/printer_2.json'));
    const sent = { envelopes: [good, { ...good, sig: good.enc }, good] };
    const { value: res, signatures } = await countingSignatures(() => post(sent));
    expect(res.status).toBe(200);
    const answer = (await res.json()) as BatchAnswer;
    expect(signatures).toBe(1);
    expect(answer.batchReceipts).toHaveLength(1);
    expect(answer.results.map((r) => r.error?.code ?? 'accepted')).toEqual(['accepted', 'envelope_malformed', 'replay_detected']);
    // What a relay does: the whole answer, verified once against the bytes it sent.
    const results = await verifyBatchAnswer(ctx.crypto, alice.server.signing, answer, {
      request: utf8(JSON.stringify(sent)),
      items: [good, good, good].map(bindingOf),
    });
    expect(results.map((r) => [r.status, r.code])).toEqual([
      ['accepted', undefined],
      ['refused', 'envelope_malformed'],
      ['rejected', 'replay_detected'],
    ]);
    // What an agent does with its share: the pinned key, its own envelope.
    const first = await verifyReceipt(
      ctx,
      alice.server.signing,
      batchProof(answer, results[0]!),
      bindingOf(good),
      alice.keys.agreement.privateKey,
    );
    expect(first.status).toBe('accepted');
    const third = await verifyReceipt(
      ctx,
      alice.server.signing,
      batchProof(answer, results[2]!),
      bindingOf(good),
      alice.keys.agreement.privateKey,
    );
    expect(third).toMatchObject({ status: 'rejected', code: 'replay_detected' });
    // An unjudged item is no receipt for anyone.
    await expect(
      verifyReceipt(ctx, alice.server.signing, batchProof(answer, results[1]!), bindingOf(good), alice.keys.agreement.privateKey),
    ).rejects.toMatchObject({ code: 'signature_invalid' });
    expect(await codeOf(await post({ envelopes: [] }))).toBe('envelope_malformed');
  });

  it('a batch of 20 new envelopes from two agents costs one signature; the same 20 alone cost 20', async () => {
    const inv = await fixture('format/printer_1.json');
    const batch: Envelope[] = [];
    for (let i = 0; i < 10; i++) batch.push(await seal(alice, inv), await seal(bob, inv));
    const { value: res, signatures } = await countingSignatures(() => post({ envelopes: batch }));
    const answer = (await res.json()) as BatchAnswer;
    expect(answer.results.every((r) => r.error === undefined)).toBe(true);
    expect(signatures).toBe(1);
    const alone: Envelope[] = [];
    for (let i = 0; i < 20; i++) alone.push(await seal(i % 2 ? bob : alice, inv));
    const single = await countingSignatures(async () => {
      for (const e of alone) expect((await post(e)).status).toBe(200);
    });
    expect(single.signatures).toBe(20);
  });

  it('revoking a key or an agent, or its expiry, takes effect on the very next message', async () => {
    const carol = await newAgent(`carol-${kind}`);
    const dave = await newAgent(`dave-${kind}`);
    const erin = await newAgent(`erin-${kind}`);
    const inv = await fixture('format/printer_1.json');
    const admin = (path: string) =>
      fetch(`${server.url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
        body: '{}',
      });
    // Each sends once first, so the server already knows the key when its status changes.
    for (const a of [carol, dave, erin]) expect((await post(await seal(a, inv))).status).toBe(200);
    const before = await stored();
    expect((await admin(`/v1/admin/agents/${carol.agent.agentId}/revoke`)).status).toBe(200);
    expect(await codeOf(await post(await seal(carol, inv)))).toBe('agent_revoked');
    expect((await admin(`/v1/admin/keys/${dave.keys.signing.kid}/revoke`)).status).toBe(200);
    expect(await codeOf(await post(await seal(dave, inv)))).toBe('key_revoked');
    await server.database.db
      .update(agentKeys)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(agentKeys.sigKid, erin.keys.signing.kid));
    expect(await codeOf(await post(await seal(erin, inv)))).toBe('key_expired');
    // And again: still refused, now on the full lookup path.
    expect(await codeOf(await post(await seal(carol, inv)))).toBe('agent_revoked');
    expect(await codeOf(await post(await seal(dave, inv)))).toBe('key_revoked');
    expect(await stored()).toEqual(before);
  });

  it('a second instance on the same database: revocation, replay and counters hold across both', async () => {
    const other = await startTestServer(kind, { database: server.database, identity: server.identity });
    try {
      const postTo = (url: string, body: unknown) =>
        fetch(`${url}/v1/messages`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      const gina = await newAgent(`gina-${kind}`);
      const inv = await fixture('format/printer_1.json');
      // Both instances learn Gina's key.
      expect((await postTo(server.url, await seal(gina, inv))).status).toBe(200);
      expect((await postTo(other.url, await seal(gina, inv))).status).toBe(200);
      // Accepted by one, replayed to the other.
      const once = await seal(gina, inv);
      expect((await postTo(server.url, once)).status).toBe(200);
      expect(await codeOf(await postTo(other.url, once))).toBe('replay_detected');
      // A counter far beyond, accepted by one: the other refuses one below the window.
      const high = Date.now() + 1_000_000;
      expect((await postTo(server.url, await seal(gina, inv, { counter: high }))).status).toBe(200);
      expect(await codeOf(await postTo(other.url, await seal(gina, inv, { counter: high - 5000 })))).toBe('stale_message');
      // Revoked through one instance, refused by the other on the next message.
      const before = await stored();
      const res = await fetch(`${server.url}/v1/admin/agents/${gina.agent.agentId}/revoke`, {
        method: 'POST',
        headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
        body: '{}',
      });
      expect(res.status).toBe(200);
      expect(await codeOf(await postTo(other.url, await seal(gina, inv, { counter: high + 1 })))).toBe('agent_revoked');
      expect(await stored()).toEqual(before);
    } finally {
      await other.close();
    }
  });

  it('signed receipts carry sealed directives the agent applies after verifying them', async () => {
    const frank = await newAgent(`frank-${kind}`);
    await server.database.db.update(agents).set({ sendIntervalSeconds: 900 }).where(eq(agents.id, frank.agent.agentId));
    const { receipt } = await submitEnvelope(ctx, frank, await sealInventory(ctx, frank, utf8(await fixture('format/printer_1.json'))));
    expect(receipt.directives).toEqual({ sendIntervalSeconds: 900 });
    expect((await loadState(ctx.crypto, frank.dir)).agent.sendIntervalSeconds).toBe(900);
    // A receipt not signed by the pinned server key is refused before anything is applied.
    const impostor = await generateKeySet(ctx);
    await expect(
      submitEnvelope(
        ctx,
        { ...frank, server: { ...frank.server, signing: impostor.signing } },
        await sealInventory(ctx, frank, utf8(await fixture('format/printer_1.json'))),
      ),
    ).rejects.toSatisfy((e) => e instanceof HttpError && e.code === 'receipt_invalid');
  });
});

describe.each(dbKinds)('per-agent budgets on %s', (kind) => {
  it('refuses messages over the per-agent rate with rate_limited and Retry-After', async () => {
    const server = await startTestServer(kind, { ingestPolicy: { messageBurst: 2, messagesPerSecond: 0.01 } });
    try {
      const res = await fetch(`${server.url}/v1/admin/tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
        body: '{}',
      });
      const stateDir = join(dir, `budget-${kind}`);
      await enrollAgent(ctx, { serverUrl: server.url, token: ((await res.json()) as { token: string }).token, stateDir, name: 'budget' });
      const agent = await loadState(ctx.crypto, stateDir);
      const inv = utf8(await fixture('format/printer_1.json'));
      for (let i = 0; i < 2; i++)
        expect((await submitEnvelope(ctx, agent, await sealInventory(ctx, agent, inv))).receipt.status).toBe('accepted');
      const third = await fetch(`${server.url}/v1/messages`, {
        method: 'POST',
        body: JSON.stringify(await sealInventory(ctx, agent, inv)),
        headers: { 'content-type': 'application/json' },
      });
      expect(third.status).toBe(429);
      expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(((await third.json()) as { error: { code: string } }).error.code).toBe('rate_limited');
    } finally {
      await server.close();
    }
  });
});
