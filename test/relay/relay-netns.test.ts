// Relays in a real topology (issue 12): network namespaces and veth pairs (iproute2). The server runs
// in the root namespace, relay R in namespace R with a leg to the root namespace and a leg to
// namespace A, and the agents in namespace A, which has no route to the server: only R bridges them.
//
//   root (server 10.X.Y.1, test) ──veth── R (10.X.Y.2 | 10.X.Y+1.1) ──veth── A (10.X.Y+1.2, agents, relay B)
//
// Needs root (ip netns). Skipped with a loud reason when not root and not under CI; under CI=true it
// must run. Needs PostgreSQL (the server's stored rows are counted directly).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { loadState } from '../../src/agent/state.js';
import { utf8 } from '../../src/protocol/bytes.js';
import { sealEnvelope, type Envelope } from '../../src/protocol/envelope.js';
import { postgresUrl } from '../helpers/db.js';
import { createTempPostgresDatabase, type TempDatabase } from '../helpers/pg-database.js';
import { CLI, cleanEnv, runCli, startServe, until, type CliResult, type ServeProcess } from '../helpers/process.js';
import { testContext } from '../helpers/protocol.js';

const isRoot = process.getuid?.() === 0;
const ci = process.env.CI === 'true';
if (!isRoot && !ci)
  console.warn('\n*** SKIPPING test/relay/relay-netns.test.ts: network namespaces need root (run as root, or under CI=true) ***\n');
if (!postgresUrl && !ci) console.warn('\n*** SKIPPING test/relay/relay-netns.test.ts: PostgreSQL is not reachable ***\n');
const run = ci || (isRoot && postgresUrl !== undefined);

const ctx = testContext();
const fixture = new URL('../fixtures/glpi/format/computer_1.json', import.meta.url).pathname;

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

/** A latchkey process in a namespace, run to completion. */
async function inNs(ns: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI, ...args], {
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

interface RelayProcess {
  child: ChildProcess;
  port: number;
  log(): string;
  kill(signal: NodeJS.Signals): Promise<void>;
}

/** `latchkey relay serve` in a namespace, listening on every address of it, port 0. */
async function startRelay(ns: string, args: string[]): Promise<RelayProcess> {
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, CLI, 'relay', 'serve', '--listen', '0.0.0.0:0', '--log-level', 'info', ...args],
    { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', () => {
      const m = /latchkey relay listening on http:\/\/[^:]+:(\d+)/.exec(log);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`relay exited with ${code}: ${log}`)));
  });
  return {
    child,
    port,
    log: () => log,
    kill: async (signal) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await once(child, 'exit');
    },
  };
}

/** This file's waits: a probe that throws (a process restarting in its namespace) is "not yet". */
const waitFor = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> =>
  until(what, probe, { timeoutMs, everyMs: 300, ignoreErrors: true });

/** Every file under dir, as text. */
async function allText(dir: string): Promise<string> {
  let out = '';
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out += await readFile(join(e.parentPath, e.name), 'utf8').catch(() => '');
  }
  return out;
}

describe.runIf(run)('relays in network namespaces (real processes)', { timeout: 300_000 }, () => {
  const id = randomBytes(3).toString('hex');
  const nsR = `lkr${id}`;
  const nsA = `lka${id}`;
  const x = 100 + (parseInt(id.slice(0, 2), 16) % 150);
  const y = (parseInt(id.slice(2, 4), 16) % 120) * 2;
  const rootIp = `10.${x}.${y}.1`;
  const rUp = `10.${x}.${y}.2`;
  const rDown = `10.${x}.${y + 1}.1`;
  const aIp = `10.${x}.${y + 1}.2`;
  const marker = `relay-marker-${randomBytes(8).toString('hex')}`;
  let dir: string;
  let db: TempDatabase;
  let sql: postgres.Sql;
  let server: ServeProcess;
  let relay: RelayProcess;
  let admin: Record<string, string>;
  let relayUrlForAgents: string;
  let relayUrlFromRoot: string;
  let inventoryFile: string;
  let agentId: string;
  const serverArgs = () => ['--host', rootIp, '--data-dir', join(dir, 'data'), '--database-url', db.url];

  const token = async (role: 'agent' | 'relay') => {
    const r = await runCli(['token', 'create', '--role', role, '--json'], admin);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { token: string }).token;
  };
  /**
   * The server, then the relay in nsR in front of it (enrolling it with a fresh relay token the first
   * time; a restart reuses its state), and the admin environment and relay URLs that follow them.
   */
  const startServerAndRelay = async (enroll: boolean) => {
    server = await startServe(serverArgs());
    admin = { LATCHKEY_SERVER: server.url, LATCHKEY_DATA_DIR: join(dir, 'data') };
    const enrollment = enroll ? ['--token', await token('relay'), '--name', 'relay-r'] : [];
    relay = await startRelay(nsR, [
      '--upstream',
      server.url,
      '--state-dir',
      join(dir, 'relay'),
      ...enrollment,
      '--revocation-interval',
      '1s',
      '--receipt-wait',
      '20s',
    ]);
    relayUrlForAgents = `http://${rDown}:${relay.port}`;
    relayUrlFromRoot = `http://${rUp}:${relay.port}`;
  };
  const enrollInA = async (name: string, server: string) => {
    const r = await inNs(nsA, [
      'agent',
      'enroll',
      '--server',
      server,
      '--token',
      await token('agent'),
      '--state-dir',
      join(dir, name),
      '--name',
      name,
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { agentId: string }).agentId;
  };
  const storedPaths = async (agent: string) =>
    (await sql`select path, encode(message_id, 'base64') as mid from inventories where agent_id = ${agent}`) as unknown as {
      path: { relay: string; agentId: string; hop: number; src?: string }[];
      mid: string;
    }[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-relay-netns-'));
    ip('netns', 'add', nsR);
    ip('netns', 'add', nsA);
    ip('link', 'add', `lku${id}`, 'type', 'veth', 'peer', 'name', `lkv${id}`);
    ip('link', 'set', `lkv${id}`, 'netns', nsR);
    ip('addr', 'add', `${rootIp}/30`, 'dev', `lku${id}`);
    ip('link', 'set', `lku${id}`, 'up');
    ip('-n', nsR, 'addr', 'add', `${rUp}/30`, 'dev', `lkv${id}`);
    ip('-n', nsR, 'link', 'set', `lkv${id}`, 'up');
    ip('-n', nsR, 'link', 'set', 'lo', 'up');
    ip('-n', nsR, 'link', 'add', `lkw${id}`, 'type', 'veth', 'peer', 'name', `lkx${id}`);
    ip('-n', nsR, 'link', 'set', `lkx${id}`, 'netns', nsA);
    ip('-n', nsR, 'addr', 'add', `${rDown}/30`, 'dev', `lkw${id}`);
    ip('-n', nsR, 'link', 'set', `lkw${id}`, 'up');
    ip('-n', nsA, 'addr', 'add', `${aIp}/30`, 'dev', `lkx${id}`);
    ip('-n', nsA, 'link', 'set', `lkx${id}`, 'up');
    ip('-n', nsA, 'link', 'set', 'lo', 'up');

    db = await createTempPostgresDatabase();
    sql = postgres(db.url, { max: 1, onnotice: () => {} });
    await startServerAndRelay(true);
    const inventory = JSON.parse(await readFile(fixture, 'utf8')) as { content: { hardware: { name: string } } };
    inventory.content.hardware.name = marker;
    inventoryFile = join(dir, 'inventory.json');
    await (await import('node:fs/promises')).writeFile(inventoryFile, JSON.stringify(inventory));
  }, 240_000);

  afterAll(async () => {
    await relay?.kill('SIGKILL');
    await server?.stop();
    await sql?.end();
    await db?.drop();
    spawnSync('ip', ['netns', 'del', nsR]);
    spawnSync('ip', ['netns', 'del', nsA]);
    spawnSync('ip', ['link', 'del', `lku${id}`]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('agent -> relay -> server: enrolled and stored through the relay with its path; nothing readable on the relay', async () => {
    // Namespace A has no route to the server.
    const probe = spawnSync('ip', [
      'netns',
      'exec',
      nsA,
      process.execPath,
      '-e',
      `fetch(${JSON.stringify(server.url)}).then(() => process.exit(0), () => process.exit(3))`,
    ]);
    expect(probe.status).toBe(3);

    agentId = await enrollInA('agent1', relayUrlForAgents); // `agent enroll --server RELAY_URL`
    const sent = await inNs(nsA, [
      'agent',
      'send',
      '--state-dir',
      join(dir, 'agent1'),
      '--via',
      relayUrlForAgents,
      '--file',
      inventoryFile,
      '--json',
    ]);
    expect(sent.code, sent.stderr).toBe(0);
    expect(JSON.parse(sent.stdout).status).toBe('accepted'); // upstream answered in time: the server's own receipt

    const relayRecord = JSON.parse(await readFile(join(dir, 'relay', 'agent.json'), 'utf8')) as { agentId: string };
    const rows = await storedPaths(agentId);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.path).toHaveLength(1);
    expect(rows[0]!.path[0]).toMatchObject({ agentId: relayRecord.agentId, hop: 1, src: aIp });
    const shown = await runCli(['inventory', 'show', agentId, '--json'], admin);
    expect(JSON.parse(shown.stdout).inventory.content.hardware.name).toBe(marker);

    expect(await allText(join(dir, 'relay'))).not.toContain(marker);
    expect(relay.log()).not.toContain(marker);
  });

  it('refuses a revoked agent at the relay, from the signed revocation list', async () => {
    const revokedId = await enrollInA('agent2', relayUrlForAgents);
    const revoked = await runCli(['agents', 'revoke', revokedId], admin);
    expect(revoked.code, revoked.stderr).toBe(0);
    const refused = await waitFor('the relay to refuse the revoked agent', async () => {
      const r = await inNs(nsA, ['agent', 'send', '--state-dir', join(dir, 'agent2'), '--via', relayUrlForAgents, '--file', fixture]);
      return r.code !== 0 && r.stderr.includes('agent_revoked') ? r : undefined;
    });
    expect(refused.stderr).toMatch(/agent_revoked/);
    const metrics = await (await fetch(`${relayUrlFromRoot}/metrics`)).text();
    expect(metrics).toMatch(/latchkey_relay_refused_total\{code="agent_revoked"\} [1-9]/);
    expect(await storedPaths(revokedId)).toHaveLength(0);
  });

  it('server stopped: 1,000 envelopes accepted by the relay, relay SIGKILLed, both restarted: all stored exactly once', async () => {
    // 20 agents x 50 messages: the server's per-agent budget (60 at once, then 1 a second) is not the subject here.
    const agentToken = await runCli(['token', 'create', '--uses', '20', '--json'], admin);
    const bulkToken = (JSON.parse(agentToken.stdout) as { token: string }).token;
    const senders = [];
    for (let a = 0; a < 20; a++) {
      await enrollAgent(ctx, { serverUrl: server.url, token: bulkToken, stateDir: join(dir, `bulk-${a}`), name: `bulk-${a}` });
      senders.push(await loadState(ctx.crypto, join(dir, `bulk-${a}`)));
    }
    const gz = new Uint8Array(
      await new Response(
        new Blob([utf8(await readFile(inventoryFile, 'utf8'))]).stream().pipeThrough(new CompressionStream('gzip')),
      ).arrayBuffer(),
    );
    await server.stop();
    // Whatever fails below, both come back (and admin and the relay URLs follow them), so a failure
    // here is reported here and does not turn the next test into a "server unreachable" failure.
    const envelopes: Envelope[] = [];
    let restarted = false;
    const restart = async () => {
      if (restarted) return;
      restarted = true;
      await relay.kill('SIGKILL');
      await startServerAndRelay(false);
    };
    try {
      for (let i = 0; i < 1000; i++) {
        const state = senders[i % 20]!;
        const { envelope } = await sealEnvelope(ctx, {
          sender: state.keys,
          recipient: state.server.agreement,
          type: 'inventory',
          contentType: 'application/json',
          contentEncoding: 'gzip',
          counter: i + 1,
          plaintext: gz,
          credential: state.agent.credential,
        });
        envelopes.push(envelope);
      }
      // Its own connection pool: the shared one may hold a keep-alive connection to the relay from the
      // test before (GET /metrics), idle past the relay's 5 s keep-alive timeout while this test's
      // event loop was busy sealing 1,000 envelopes (no timers, no socket events ran), so the relay has
      // closed it but the pool has not noticed; a POST written to it fails with EPIPE and is not retried.
      const pool = new Agent();
      try {
        for (let i = 0; i < 1000; i += 100) {
          const res = await undiciFetch(`${relayUrlFromRoot}/v1/messages`, {
            dispatcher: pool,
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ envelopes: envelopes.slice(i, i + 100) }),
          });
          const text = await res.text();
          expect(res.status, `${text.slice(0, 2000)}\n${relay.log().slice(-4000)}`).toBe(200);
          const { results } = JSON.parse(text) as { results: { status?: string }[] };
          const notQueued = results.filter((r) => r.status !== 'queued');
          expect(notQueued, `${JSON.stringify(notQueued.slice(0, 3))}\n${relay.log().slice(-4000)}`).toHaveLength(0);
          expect(results).toHaveLength(100);
        }
      } finally {
        await pool.close();
      }
      const status = await runCli(['relay', 'status', '--state-dir', join(dir, 'relay'), '--json']);
      expect(status.code, status.stderr).toBe(0);
      expect(JSON.parse(status.stdout).spool.depth, relay.log().slice(-4000)).toBe(1000);
      expect(await allText(join(dir, 'relay', 'spool'))).not.toContain(marker);
    } finally {
      await restart();
    }
    await waitFor(
      'the spool to drain',
      async () => {
        const s = await runCli(['relay', 'status', '--state-dir', join(dir, 'relay'), '--json']);
        return JSON.parse(s.stdout).spool.depth === 0 ? true : undefined;
      },
      180_000,
    );
    const ids = senders.map((st) => st.agent.agentId);
    const [counts] =
      await sql`select count(*)::int as n, count(distinct (agent_id, message_id))::int as d from inventories where agent_id in ${sql(ids)}`;
    expect(counts).toEqual({ n: 1000, d: 1000 });
    const stored = new Set(
      (
        (await sql`select encode(message_id, 'base64') as mid from inventories where agent_id in ${sql(ids)}`) as unknown as {
          mid: string;
        }[]
      ).map((r) => r.mid),
    );
    const { parseEnvelope } = await import('../../src/protocol/envelope.js');
    expect(envelopes.filter((e) => !stored.has(Buffer.from(parseEnvelope(e).header.mid, 'base64url').toString('base64')))).toHaveLength(0);
  });

  it('a full spool says relay_full (507, Retry-After) and drops nothing', async () => {
    // The same relay identity in a second state dir, with a tiny spool and an upstream nobody answers.
    const small = join(dir, 'relay-small');
    // Copied while the relay runs: skip the files it rewrites through a temporary name (gone mid-copy).
    await cp(join(dir, 'relay'), small, { recursive: true, filter: (src) => !/(spool|receipts|expired|refused|\.tmp)$/.test(src) });
    const tiny = await startRelay(nsR, [
      '--upstream',
      `http://${rootIp}:9`,
      '--state-dir',
      small,
      '--spool-max-bytes',
      '20000',
      '--receipt-wait',
      '0s',
    ]);
    try {
      const state = await loadState(ctx.crypto, join(dir, 'agent1'));
      const { sealInventory } = await import('../../src/agent/send.js');
      let full: Response | undefined;
      let queued = 0;
      for (let i = 0; i < 20 && !full; i++) {
        const res = await fetch(`http://${rUp}:${tiny.port}/v1/messages`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(await sealInventory(ctx, state, utf8(await readFile(fixture, 'utf8')))),
        });
        if (res.status === 507) full = res;
        else {
          expect(res.status).toBe(202);
          queued++;
        }
      }
      expect(full).toBeDefined();
      expect(((await full!.json()) as { error: { code: string } }).error.code).toBe('relay_full');
      expect(Number(full!.headers.get('retry-after'))).toBeGreaterThan(0);
      const s = JSON.parse((await runCli(['relay', 'status', '--state-dir', small, '--json'])).stdout) as { spool: { depth: number } };
      expect(s.spool.depth).toBe(queued);
    } finally {
      await tiny.kill('SIGTERM');
    }
  });

  it('two relays in a chain: agent -> relay B -> relay R -> server, path of two layers', async () => {
    // Relay B runs in namespace A and enrolls through relay R.
    const b = await startRelay(nsA, [
      '--upstream',
      relayUrlForAgents,
      '--state-dir',
      join(dir, 'relay-b'),
      '--token',
      await token('relay'),
      '--name',
      'relay-b',
      '--receipt-wait',
      '20s',
    ]);
    try {
      const viaB = `http://127.0.0.1:${b.port}`;
      const chained = await enrollInA('agent3', viaB);
      const sent = await inNs(nsA, ['agent', 'send', '--state-dir', join(dir, 'agent3'), '--via', viaB, '--file', inventoryFile, '--json']);
      expect(sent.code, sent.stderr).toBe(0);
      const status = JSON.parse(sent.stdout).status as string;
      expect(['accepted', 'queued']).toContain(status);
      const rows = await waitFor('the chained message to be stored', async () => {
        const r = await storedPaths(chained);
        return r.length === 1 ? r : undefined;
      });
      const bId = (JSON.parse(await readFile(join(dir, 'relay-b', 'agent.json'), 'utf8')) as { agentId: string }).agentId;
      const rId = (JSON.parse(await readFile(join(dir, 'relay', 'agent.json'), 'utf8')) as { agentId: string }).agentId;
      expect(rows[0]!.path.map((h) => [h.agentId, h.hop])).toEqual([
        [rId, 2],
        [bId, 1],
      ]);
      expect(await allText(join(dir, 'relay-b'))).not.toContain(marker);
      expect(b.log()).not.toContain(marker);
    } finally {
      await b.kill('SIGTERM');
    }
  });
});
