// Key request on first contact (spec §20.2) against a real key source: a Node script reading a real
// MariaDB table with parameterised queries, run as a program (argv, clean environment, deadline)
// and behind a Unix socket. On PGlite and PostgreSQL.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { and, eq } from 'drizzle-orm';
import type mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agents, auditLog } from '../../src/db/schema.js';
import { b64u } from '../../src/protocol/bytes.js';
import { sealEnvelope } from '../../src/protocol/envelope.js';
import { generateKeySet, type KeySet } from '../../src/protocol/keys.js';
import { createKeySource } from '../../src/runtime/key-source.js';
import { silentLogger } from '../../src/server/logger.js';
import { DEFAULT_INGEST_POLICY } from '../../src/server/services/ingest.js';
import type { KeySourceTransport } from '../../src/server/services/key-request.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { connectMariaDb } from '../helpers/mariadb.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
const SCRIPT = fileURLToPath(new URL('../fixtures/key-source/mariadb-key-source.mjs', import.meta.url));
const table = `ks_${process.pid}_${Date.now()}`;
let dir: string;
let maria: mysql.Connection;
let inventory: Uint8Array;

/** A program the server runs: the test key source with its table and behaviour. */
async function program(name: string, behave = 'normal'): Promise<{ path: string; calls: string }> {
  const path = join(dir, `${name}.sh`);
  const calls = join(dir, `${name}.calls`);
  await writeFile(path, `#!/bin/sh\nexec ${process.execPath} ${SCRIPT} --table ${table} --calls ${calls} --behave ${behave} "$@"\n`);
  await chmod(path, 0o755);
  return { path, calls };
}
const callCount = async (file: string) => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;

/** A fleet member whose keys live only in MariaDB. */
async function provision(name: string, extra: { cidr?: string } = {}): Promise<KeySet> {
  const keys = await generateKeySet(ctx);
  await maria.execute(`INSERT INTO ${table} (name, sig_kid, signing_key, agreement_key, role, cidr, ip) VALUES (?, ?, ?, ?, ?, ?, ?)`, [
    name,
    keys.signing.kid,
    b64u(keys.signing.publicKey),
    b64u(keys.agreement.publicKey),
    'agent',
    extra.cidr ?? null,
    null,
  ]);
  return keys;
}

/** POST JSON; a connection reset before any answer (a kept-alive socket the server closed) is tried once more. */
async function post(url: string, body: string): Promise<Response> {
  const init = { method: 'POST', body, headers: { 'content-type': 'application/json' } };
  return fetch(url, init).catch(() => fetch(url, init));
}

const children: ChildProcess[] = [];
async function socketSource(name: string, behave = 'normal'): Promise<{ socket: string; calls: string; child: ChildProcess }> {
  const socket = join(dir, `${name}.sock`);
  const calls = join(dir, `${name}.calls`);
  const child = spawn(process.execPath, [SCRIPT, '--table', table, '--calls', calls, '--behave', behave, '--socket', socket], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', () => reject(new Error('socket key source exited')));
  });
  return { socket, calls, child };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latchkey-keyreq-'));
  maria = await connectMariaDb();
  await maria.query(
    `CREATE TABLE ${table} (name VARCHAR(128) PRIMARY KEY, sig_kid VARCHAR(32) NOT NULL UNIQUE, signing_key VARCHAR(64) NOT NULL,
     agreement_key VARCHAR(64) NOT NULL, role VARCHAR(16) NOT NULL, cidr VARCHAR(64) NULL, ip VARCHAR(64) NULL)`,
  );
  inventory = new Uint8Array(gzipSync(await readFile(new URL('../fixtures/glpi/core/lxc-server-1.json', import.meta.url))));
}, 60_000);
afterAll(async () => {
  for (const c of children) c.kill('SIGTERM');
  await maria?.query(`DROP TABLE IF EXISTS ${table}`);
  await maria?.end();
  await rm(dir, { recursive: true, force: true });
});

describe.each(dbKinds)('key request on %s', (kind) => {
  let server: TestServer;
  // The server's one key source; each case points it at the transport it is about.
  let current: KeySourceTransport;
  const source: KeySourceTransport = { ask: (q, v) => current.ask(q, v) };
  // Generous deadlines: node and mysql2 start slowly on a loaded 2-core machine.
  const viaProgram = (path: string, timeoutMs = 15_000) => createKeySource({ exec: path, timeoutMs }, silentLogger)!;

  beforeAll(async () => {
    server = await startTestServer(kind, { keySource: source });
  });
  afterAll(() => server.close());

  async function send(keys: KeySet, to: TestServer = server): Promise<{ status: number; code: string | undefined; ms: number }> {
    const { envelope } = await sealEnvelope(ctx, {
      sender: keys,
      recipient: to.identity.agreement,
      type: 'inventory',
      contentType: 'application/json',
      contentEncoding: 'gzip',
      counter: Date.now(),
      plaintext: inventory,
    });
    const started = performance.now();
    const res = await post(`${to.url}/v1/messages`, JSON.stringify(envelope));
    const body = (await res.json()) as { error?: { code: string } };
    return { status: res.status, code: body.error?.code, ms: performance.now() - started };
  }
  const listed = async (name: string) => (await server.database.db.select().from(agents).where(eq(agents.name, name))).length === 1;
  const audits = async (outcome: 'success' | 'failure') =>
    server.database.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.action, 'agent.key-request'), eq(auditLog.outcome, outcome)));

  it('an agent known only to MariaDB is registered by the program on its first message, listed and audited', async () => {
    const p = await program(`ok-${kind}`);
    current = viaProgram(p.path);
    const keys = await provision(`mdb-prog-${kind}`);
    const first = await send(keys);
    expect(first).toMatchObject({ status: 200 });
    expect(await listed(`mdb-prog-${kind}`)).toBe(true);
    // The second message does not ask again.
    expect(await send(keys)).toMatchObject({ status: 200 });
    expect(await callCount(p.calls)).toBe(1);
    const res = await fetch(`${server.url}/v1/admin/agents?limit=1000`, { headers: { authorization: `Bearer ${server.adminToken}` } });
    const names = ((await res.json()) as { agents: { name: string }[] }).agents.map((a) => a.name);
    expect(names).toContain(`mdb-prog-${kind}`);
    const ok = await audits('success');
    expect(ok.some((e) => e.details.sigKid === keys.signing.kid && e.details.question === 'kid' && e.actor === 'key-source')).toBe(true);
  });

  it('a key the source does not know gets key_unknown (after asking kid, then ip), and is not asked again for a while', async () => {
    const p = await program(`unknown-${kind}`);
    current = viaProgram(p.path);
    const stranger = await generateKeySet(ctx);
    expect(await send(stranger)).toMatchObject({ status: 401, code: 'key_unknown' });
    expect(await send(stranger)).toMatchObject({ status: 401, code: 'key_unknown' });
    expect((await readFile(p.calls, 'utf8')).split('\n').filter(Boolean)).toEqual([`kid ${stranger.signing.kid}`, 'ip 127.0.0.1']);
  });

  it('the same through a Unix socket, with fallback to the program when the socket is down', async () => {
    const s = await socketSource(`sock-${kind}`);
    current = createKeySource({ socket: s.socket, timeoutMs: 15_000 }, silentLogger)!;
    const keys = await provision(`mdb-sock-${kind}`);
    expect(await send(keys)).toMatchObject({ status: 200 });
    expect(await callCount(s.calls)).toBe(1);
    expect(await send(await generateKeySet(ctx))).toMatchObject({ status: 401, code: 'key_unknown' });

    const p = await program(`fallback-${kind}`);
    current = createKeySource({ socket: join(dir, `nobody-${kind}.sock`), exec: p.path, timeoutMs: 15_000 }, silentLogger)!;
    const other = await provision(`mdb-fallback-${kind}`);
    expect(await send(other)).toMatchObject({ status: 200 });
    expect(await callCount(p.calls)).toBe(1);
  });

  it.each(['hang', 'crash', 'garbage', 'wrong-key', 'extra'])(
    'a source that answers %s is refused with key_unknown, audited, and blocks nobody',
    async (behave) => {
      const p = await program(`${behave}-${kind}`, behave);
      current = viaProgram(p.path, 3000);
      const keys = await provision(`mdb-${behave}-${kind}`);
      // A registered agent sends meanwhile: answered at once, not after the source's deadline.
      const known = await provision(`mdb-known-${behave}-${kind}`);
      current = viaProgram((await program(`ok2-${behave}-${kind}`)).path);
      expect(await send(known)).toMatchObject({ status: 200 });
      current = viaProgram(p.path, 3000);
      const [bad, good] = await Promise.all([send(keys), send(known)]);
      expect(bad).toMatchObject({ status: 401, code: 'key_unknown' });
      expect(good.status).toBe(200);
      // The source's deadline holds the unknown key's message only.
      if (behave === 'hang') {
        expect(bad.ms).toBeGreaterThanOrEqual(2900);
        expect(good.ms).toBeLessThan(bad.ms);
      }
      expect(await listed(`mdb-${behave}-${kind}`)).toBe(false);
      const refused = await audits('failure');
      expect(refused.some((e) => e.details.sigKid === keys.signing.kid && typeof e.details.reason === 'string')).toBe(true);
    },
  );

  it('an answer naming a taken name, or from outside its cidr, is refused', async () => {
    const p = await program(`rules-${kind}`);
    current = viaProgram(p.path);
    // The name of an agent registered earlier, with other keys.
    const taken = await generateKeySet(ctx);
    await maria.execute(`INSERT INTO ${table} (name, sig_kid, signing_key, agreement_key, role) VALUES (?, ?, ?, ?, 'agent')`, [
      `mdb-twin-${kind}`,
      taken.signing.kid,
      b64u(taken.signing.publicKey),
      b64u(taken.agreement.publicKey),
    ]);
    const original = await provision(`mdb-twin-orig-${kind}`);
    expect(await send(original)).toMatchObject({ status: 200 });
    await maria.execute(`UPDATE ${table} SET name = ? WHERE sig_kid = ?`, [`mdb-twin-moved-${kind}`, original.signing.kid]);
    await maria.execute(`UPDATE ${table} SET name = ? WHERE sig_kid = ?`, [`mdb-twin-orig-${kind}`, taken.signing.kid]);
    expect(await send(taken)).toMatchObject({ status: 401, code: 'key_unknown' });
    const far = await provision(`mdb-far-${kind}`, { cidr: '10.0.0.0/8' });
    expect(await send(far)).toMatchObject({ status: 401, code: 'key_unknown' });
    const near = await provision(`mdb-near-${kind}`, { cidr: '127.0.0.0/8' });
    expect(await send(near)).toMatchObject({ status: 200 });
    const reasons = (await audits('failure')).map((e) => e.details.reason);
    expect(reasons).toContain('name taken by another agent');
    expect(reasons).toContain('source address outside cidr');
  });

  it('200 concurrent messages from unknown keys call the source a bounded number of times, without a 5xx', async () => {
    const p = await program(`flood-${kind}`);
    // A fresh instance on the same database: a full lookup budget for the source address, refilled
    // slowly (the default 2/s over a flood that lasts many seconds on a loaded machine adds dozens),
    // and its own transport, so that a question still running after the last answer (a request
    // retried after a reset) is counted here and not in the next case's file.
    const burst = DEFAULT_INGEST_POLICY.sourceLookupBurst;
    const refill = 1 / 3600;
    const flood = await startTestServer(kind, {
      keySource: viaProgram(p.path),
      database: server.database,
      ingestPolicy: { sourceLookupsPerSecond: refill },
    });
    try {
      const strangers = await Promise.all(Array.from({ length: 200 }, () => generateKeySet(ctx)));
      const started = performance.now();
      const answers = await Promise.all(strangers.map((k) => send(k, flood)));
      const lookups = Math.floor(burst + (refill * (performance.now() - started)) / 1000);
      expect(answers.every((a) => a.status === 401 || a.status === 429)).toBe(true);
      expect(answers.every((a) => a.code === 'key_unknown' || a.code === 'rate_limited')).toBe(true);
      // The source address's lookup budget bounds the questions: kid then ip for each (an unbounded
      // implementation asks 400 times).
      const calls = await callCount(p.calls);
      expect(calls).toBeGreaterThan(0);
      expect(calls).toBeLessThanOrEqual(2 * lookups);
    } finally {
      await flood.close();
    }
  }, 60_000);

  it('200 concurrent messages from one unknown key ask the source once (single flight, then the negative cache)', async () => {
    const p = await program(`one-${kind}`);
    current = viaProgram(p.path);
    const stranger = await generateKeySet(ctx);
    // A fresh source address budget: a second server on the same database.
    const other = await startTestServer(kind, { keySource: source, database: server.database });
    try {
      const answers = await Promise.all(
        Array.from({ length: 200 }, async () => {
          const { envelope } = await sealEnvelope(ctx, {
            sender: stranger,
            recipient: other.identity.agreement,
            type: 'inventory',
            contentType: 'application/json',
            contentEncoding: 'gzip',
            counter: Date.now(),
            plaintext: inventory,
          });
          const res = await post(`${other.url}/v1/messages`, JSON.stringify(envelope));
          return res.status;
        }),
      );
      expect(answers.every((s) => s === 401 || s === 429)).toBe(true);
      expect((await readFile(p.calls, 'utf8')).split('\n').filter(Boolean)).toEqual([`kid ${stranger.signing.kid}`, 'ip 127.0.0.1']);
    } finally {
      await other.close();
    }
  }, 60_000);
});
