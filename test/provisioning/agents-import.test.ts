// `POST /v1/admin/agents/import` (spec §20.1) over real HTTP on PGlite and PostgreSQL: 10,000 agents
// in one transaction, all or nothing, enrollment's rules, audited with count and SHA-256; imported
// agents send without a credential, renew to get one, and are held to their cidr.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renewAgent } from '../../src/agent/renew.js';
import { sendInventory } from '../../src/agent/send.js';
import { saveEnrollment } from '../../src/agent/state.js';
import { agents, auditLog } from '../../src/db/schema.js';
import { b64u } from '../../src/protocol/bytes.js';
import { sealEnvelope } from '../../src/protocol/envelope.js';
import { generateKeySet, type KeySet } from '../../src/protocol/keys.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { testContext } from '../helpers/protocol.js';
import { createNodeCrypto } from '../../src/runtime/node-crypto.js';

// node:crypto makes the 10,000 key sets in a fraction of noble's time (the backends agree: crypto-differential).
const ctx = testContext(createNodeCrypto());
let dir: string;
let inventory: Buffer;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latchkey-import-'));
  inventory = await readFile(new URL('../fixtures/glpi/core/lxc-server-1.json', import.meta.url));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const line = (keys: KeySet, name: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ name, signingKey: b64u(keys.signing.publicKey), agreementKey: b64u(keys.agreement.publicKey), ...extra });

/** Public keys only matter here: random distinct 32-byte points would not do (they must be acceptable). */
const made: KeySet[] = [];
/** n key sets, named prefix-i; made once per file (10,000 cost seconds of CPU), each database has its own server. */
async function fleet(n: number, prefix: string): Promise<{ keys: KeySet[]; text: string }> {
  while (made.length < n) made.push(await generateKeySet(ctx));
  const keys = made.slice(0, n);
  return { keys, text: keys.map((k, i) => line(k, `${prefix}-${i}`)).join('\n') + '\n' };
}

describe.each(dbKinds)('agents import on %s', (kind) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(kind);
  });
  afterAll(() => server.close());

  const importFile = (ndjson: string, dryRun = false) =>
    fetch(`${server.url}/v1/admin/agents/import`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ndjson, dryRun }),
    });
  const count = async () => (await server.database.db.select({ c: sql<number>`count(*)::int` }).from(agents))[0]!.c;
  const codeOf = async (res: Response) => ((await res.json()) as { error?: { code: string } }).error?.code;

  it('imports 10,000 agents in one transaction, audited with the count and the SHA-256; one bad line changes nothing', async () => {
    const { keys, text } = await fleet(10_000, `fleet-${kind}`);
    // One bad line in the middle (a small-order Ed25519 key: the identity point): nothing is written.
    const bad = text.split('\n');
    bad[5000] = JSON.stringify({
      name: 'bad',
      signingKey: b64u(Uint8Array.of(1, ...new Uint8Array(31))),
      agreementKey: b64u(keys[0]!.agreement.publicKey),
    });
    const before = await count();
    const refused = await importFile(bad.join('\n'));
    expect(refused.status).toBe(400);
    expect(await codeOf(refused)).toBe('request_invalid');
    expect(await count()).toBe(before);

    const dry = await importFile(text, true);
    expect(dry.status).toBe(200);
    expect(((await dry.json()) as { count: number; dryRun: boolean }).count).toBe(10_000);
    expect(await count()).toBe(before);

    const started = performance.now();
    const res = await importFile(text);
    const ms = performance.now() - started;
    expect(res.status).toBe(200);
    const body = (await res.json()) as { count: number; sha256: string };
    expect(body.count).toBe(10_000);
    expect(body.sha256).toBe(createHash('sha256').update(text).digest('hex'));
    expect(await count()).toBe(before + 10_000);
    const [entry] = await server.database.db.select().from(auditLog).where(eq(auditLog.action, 'agents.import'));
    expect(entry!.details).toEqual({ count: 10_000, sha256: body.sha256 });
    console.log(`import of 10,000 agents on ${kind}: ${Math.round(ms)} ms`);

    // Again: every name is taken now; nothing changes.
    const again = await importFile(text);
    expect(again.status).toBe(409);
    expect(await codeOf(again)).toBe('name_taken');
    expect(await count()).toBe(before + 10_000);
  }, 240_000);

  it('refuses what an enrollment refuses: bad names, unacceptable keys, duplicates in the file, extra fields', async () => {
    const a = await generateKeySet(ctx);
    const b = await generateKeySet(ctx);
    const lowOrderKx = b64u(Uint8Array.of(1, ...new Uint8Array(31))); // u = 1
    const nonCanonicalKx = b64u(Uint8Array.from([...a.agreement.publicKey.subarray(0, 31), a.agreement.publicKey[31]! | 0x80]));
    // y = 3 + p: a valid point (y = 3, not of small order) under a non-canonical encoding (y >= p).
    const yAbove = (2n ** 255n - 19n + 3n).toString(16).padStart(64, '0');
    const nonCanonicalSig = b64u(Uint8Array.from(Buffer.from(yAbove, 'hex').reverse()));
    const cases: [string, string][] = [
      [JSON.stringify({ name: 'x', signingKey: nonCanonicalSig, agreementKey: b64u(a.agreement.publicKey) }), 'request_invalid'],
      [line(a, 'white space'), 'name_invalid'],
      [JSON.stringify({ name: 'x', signingKey: b64u(a.signing.publicKey), agreementKey: lowOrderKx }), 'request_invalid'],
      [JSON.stringify({ name: 'x', signingKey: b64u(a.signing.publicKey), agreementKey: nonCanonicalKx }), 'request_invalid'],
      [
        JSON.stringify({ name: 'x', signingKey: b64u(a.signing.publicKey).slice(1), agreementKey: b64u(a.agreement.publicKey) }),
        'request_invalid',
      ],
      [`${line(a, 'one')}\n${line(b, 'one')}`, 'request_invalid'],
      [`${line(a, 'one')}\n${line(a, 'two')}`, 'request_invalid'],
      [line(a, 'x', { password: 'p' }), 'request_invalid'],
      [line(a, 'x', { role: 'admin' }), 'request_invalid'],
      [line(a, 'x', { cidr: '10.0.0.0/33' }), 'request_invalid'],
      [line(a, 'x', { expiresAt: '2001-01-01T00:00:00Z' }), 'request_invalid'],
      ['not json', 'request_invalid'],
    ];
    const before = await count();
    for (const [text, code] of cases) {
      const res = await importFile(text);
      expect([text, await codeOf(res)]).toEqual([text, code]);
    }
    expect(await count()).toBe(before);
  });

  it('an imported agent sends without a credential, renews to get one, and is held to its cidr', async () => {
    const keys = await generateKeySet(ctx);
    const far = await generateKeySet(ctx);
    const expiresAt = new Date(Date.now() + 7 * 86400_000).toISOString().replace(/\.\d+Z$/, 'Z');
    const res = await importFile(
      `${line(keys, `imp-${kind}`, { expiresAt, labels: { site: 'lyon' }, cidr: '127.0.0.0/8' })}\n${line(far, `far-${kind}`, { cidr: '10.0.0.0/8' })}\n`,
    );
    expect(res.status).toBe(200);
    const { agents: imported } = (await res.json()) as { agents: { id: string; name: string }[] };
    // Its state dir as the provisioning line would leave it: keys, the server's keys, no credential yet.
    const state = join(dir, `imp-${kind}`);
    const { identity } = server;
    await saveEnrollment(state, keys, {
      v: 1,
      agentId: imported[0]!.id,
      name: `imp-${kind}`,
      role: 'agent',
      labels: { site: 'lyon' },
      serverUrl: server.url,
      credential: '',
      expiresAt: Date.parse(expiresAt),
      server: {
        sig: b64u(identity.signing.publicKey),
        sigKid: identity.signing.kid,
        kx: b64u(identity.agreement.publicKey),
        kxKid: identity.agreement.kid,
        fp: identity.fingerprint,
      },
    });
    const sent = await sendInventory(ctx, state, new Uint8Array(inventory));
    expect(sent.receipt.status).toBe('accepted');
    const renewed = await renewAgent(ctx, state);
    expect(renewed.agent.credential).not.toBe('');
    expect((await sendInventory(ctx, state, new Uint8Array(inventory))).receipt.status).toBe('accepted');

    // Bound to 10.0.0.0/8, it may not send from 127.0.0.1.
    const { envelope } = await sealEnvelope(ctx, {
      sender: far,
      recipient: identity.agreement,
      type: 'inventory',
      contentType: 'application/json',
      contentEncoding: 'gzip',
      counter: Date.now(),
      plaintext: new Uint8Array(gzipSync(inventory)),
    });
    const refused = await fetch(`${server.url}/v1/messages`, {
      method: 'POST',
      body: JSON.stringify(envelope),
      headers: { 'content-type': 'application/json' },
    });
    expect(refused.status).toBe(403);
    expect(await codeOf(refused)).toBe('source_not_allowed');
  });
});
