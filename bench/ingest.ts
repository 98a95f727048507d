// End-to-end ingest over HTTP on loopback into PostgreSQL: the sealed path (POST /v1/messages,
// every check, signed receipts) against baselines taking the same JSON unsealed and
// unauthenticated. The one the ratio is reported against first is the bare baseline: a separate
// process with no Latchkey code (bench/bare-baseline-server.ts) on its own database of the same
// PostgreSQL. The in-app baselines (mounted in the product's app, behind its middleware) stay as a
// diagnosis of the app's own overhead. Load comes from a separate process (bench/load.ts,
// autocannon). Envelopes are sealed beforehand (agents seal on their own machines), each sent once.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { getJson, postJson } from '../src/agent/http.js';
import { pinServer } from '../src/protocol/discovery.js';
import { sealEnrollRequest, verifyEnrollResponse } from '../src/protocol/enrollment.js';
import { sealEnvelope } from '../src/protocol/envelope.js';
import { generateKeySet, type KeySet } from '../src/protocol/keys.js';
import { parseToken } from '../src/protocol/token.js';
import { mountBaseline } from './baseline-route.js';
import { cpuPerRequest, cpuSample } from './measure.js';
import { createToken, inventoryOfSize, POSTGRES_URL, startBenchServer, type BenchServer } from './fixtures.js';

const run = promisify(execFile);

/** BENCH_PROFILE=1: a CPU profile of the server process during the sealed load only. */
async function startProfile(): Promise<(file: string) => Promise<void>> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async (file) => {
    const { profile } = await session.post('Profiler.stop');
    await writeFile(file, JSON.stringify(profile));
    session.disconnect();
  };
}
const LOAD = fileURLToPath(new URL('./load.ts', import.meta.url));
const BARE = fileURLToPath(new URL('./bare-baseline-server.ts', import.meta.url));

/** Starts the bare baseline in its own process; resolves once it listens. */
export async function startBare(): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', BARE, POSTGRES_URL], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`bare baseline exited with ${code}`)));
  });
  return {
    url,
    child,
    async stop() {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}
// A fleet, not a handful: first messages from each agent take the server's lookup path.
const AGENTS = 256;
const CONNECTIONS = 16;

/** Real enrollments of `count` agents (eight at a time): their keys and ids. */
export async function enrollAgents(server: BenchServer, count = AGENTS): Promise<{ keys: KeySet; agentId: string }[]> {
  const token = await createToken(server, count);
  const t = parseToken(token);
  const pinned = pinServer(await getJson(`${server.url}/.well-known/latchkey`), t.serverFingerprint);
  const out: { keys: KeySet; agentId: string }[] = [];
  const enrollOne = async (i: number) => {
    const keys = await generateKeySet(server.ctx);
    const { request, nonce } = await sealEnrollRequest(server.ctx, t, pinned, keys, `ingest-${i}`);
    const body = await verifyEnrollResponse(server.ctx.crypto, pinned, await postJson(`${server.url}/v1/enroll`, request), nonce);
    out[i] = { keys, agentId: body.agentId };
  };
  // Real enrollments, eight at a time.
  for (let i = 0; i < count; i += 8) await Promise.all(Array.from({ length: Math.min(8, count - i) }, (_, j) => enrollOne(i + j)));
  return out;
}

/** One load run from a separate process (bench/load.ts), with the server's CPU per request. */
export async function load(url: string, path: string, file: string, repeatSeconds?: number, serverPid?: number) {
  const args = ['--import', 'tsx', LOAD, url, path, file, String(CONNECTIONS), ...(repeatSeconds ? [String(repeatSeconds)] : [])];
  const before = cpuSample(serverPid);
  const { stdout } = await run(process.execPath, args, { maxBuffer: 16 * 1024 * 1024 });
  const after = cpuSample(serverPid);
  const result = JSON.parse(stdout) as {
    requests: number;
    seconds: number;
    reqPerSec: number;
    latencyMs: { p50: number; p99: number };
    non2xx: number;
    errors: number;
    complete: boolean;
  };
  // Includes the load generator's start-up, so per-request figures are slight over-estimates.
  return { ...result, cpuPerRequest: cpuPerRequest(before, after, result.requests) };
}

type LoadResult = Awaited<ReturnType<typeof load>>;

/** The run with the median throughput of an odd number of runs. */
const median = <T extends { reqPerSec: number }>(runs: T[]): T =>
  [...runs].sort((x, y) => x.reqPerSec - y.reqPerSec)[(runs.length - 1) >> 1]!;
const medianOf = (xs: number[]): number => [...xs].sort((x, y) => x - y)[(xs.length - 1) >> 1]!;
const range = (xs: number[]): [number, number] => [Math.min(...xs), Math.max(...xs)];

export async function benchIngest(opts: { envelopes?: Record<number, number>; rounds?: number } = {}): Promise<Record<string, unknown>> {
  const counts = opts.envelopes ?? { 4096: 6000, 65536: 3000 };
  // Rounds alternate sealed, bare baseline, in-app baseline and in-app prepared baseline, so drift on
  // a shared machine hits all alike; figures are the median round's.
  const rounds = opts.rounds ?? 3;
  const server = await startBenchServer(
    { ingestPolicy: { messageBurst: 1e9, messagesPerSecond: 1e9, byteBurst: 1e15, bytesPerSecond: 1e15 } },
    (app) => {
      mountBaseline(app, 'baseline');
    },
  );
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-bench-'));
  const bare = await startBare();
  try {
    const agents = await enrollAgents(server);
    // The baseline stores under an agent row too (inventories.agent_id is a foreign key).
    await server.database.withSession((run) => run(`INSERT INTO agents (id, name, role) VALUES ('baseline', 'baseline', 'agent')`));
    const results: Record<string, unknown> = {
      database: 'postgresql',
      crypto: server.ctx.crypto.name,
      connections: CONNECTIONS,
      agents: AGENTS,
      rounds,
      note: 'sealed bodies are gzip-compressed before sealing, as the agent sends them; baseline bodies are the plain JSON. ratioVsBare = sealed / the bare baseline (separate process, bare hono + postgres.js, prepared insert, own database: the honest comparison); ratio = sealed / the in-app baseline (the ORM insert inside the product app); ratioVsPrepared = sealed / the in-app prepared insert; each the median over rounds. appOverhead = in-app prepared / bare',
    };
    // Counters keep rising across phases, as a real agent's do (the server enforces the window).
    let counter = 0;
    for (const [size, count] of Object.entries(counts).map(([s, c]) => [Number(s), c] as const)) {
      const inventory = inventoryOfSize(size, `bench-${size}`);
      const plainFile = join(dir, `plain-${size}.jsonl`);
      await writeFile(plainFile, inventory);
      let sealSeconds = 0;
      let envelopeBytes = 0;
      const perRound: {
        sealed: LoadResult;
        bare: LoadResult;
        baseline: LoadResult;
        baselinePrepared: LoadResult;
        ratioVsBare: number;
        ratio: number;
        ratioVsPrepared: number;
      }[] = [];
      for (let round = 0; round < rounds; round++) {
        const sealStart = performance.now();
        const lines: string[] = [];
        for (let i = 0; i < count; i++) {
          const agent = agents[i % AGENTS]!;
          const { envelope } = await sealEnvelope(server.ctx, {
            sender: agent.keys,
            recipient: server.identity.agreement,
            type: 'inventory',
            contentType: 'application/json',
            contentEncoding: 'gzip',
            counter: ++counter,
            plaintext: new Uint8Array(gzipSync(inventory)),
          });
          lines.push(JSON.stringify(envelope));
        }
        sealSeconds += (performance.now() - sealStart) / 1000;
        envelopeBytes = lines[0]!.length;
        const sealedFile = join(dir, `sealed-${size}-${round}.jsonl`);
        await writeFile(sealedFile, lines.join('\n'));

        const stopProfile = process.env.BENCH_PROFILE && round === 0 ? await startProfile() : undefined;
        const sealed = await load(server.url, '/v1/messages', sealedFile);
        await stopProfile?.(`/tmp/ingest-${size}.cpuprofile`);
        if (sealed.non2xx > 0) throw new Error(`sealed load had ${sealed.non2xx} rejections: ${JSON.stringify(sealed)}`);
        if (!sealed.complete) throw new Error(`sealed load did not finish in time: ${JSON.stringify(sealed)}`);
        const bareRun = await load(bare.url, '/ingest', plainFile, 5, bare.child.pid);
        const baseline = await load(server.url, '/bench/baseline', plainFile, 5);
        const baselinePrepared = await load(server.url, '/bench/baseline-prepared', plainFile, 5);
        perRound.push({
          sealed,
          bare: bareRun,
          baseline,
          baselinePrepared,
          ratioVsBare: Number((sealed.reqPerSec / bareRun.reqPerSec).toFixed(2)),
          ratio: Number((sealed.reqPerSec / baseline.reqPerSec).toFixed(2)),
          ratioVsPrepared: Number((sealed.reqPerSec / baselinePrepared.reqPerSec).toFixed(2)),
        });
      }
      results[`${size / 1024}KiB`] = {
        inventoryBytes: inventory.length,
        envelopeBytes,
        agentSealPerSecond: Math.round((count * rounds) / sealSeconds),
        ratioVsBare: medianOf(perRound.map((r) => r.ratioVsBare)),
        ratioVsBareRange: range(perRound.map((r) => r.ratioVsBare)),
        sealed: median(perRound.map((r) => r.sealed)),
        bare: median(perRound.map((r) => r.bare)),
        baseline: median(perRound.map((r) => r.baseline)),
        baselinePrepared: median(perRound.map((r) => r.baselinePrepared)),
        ratio: medianOf(perRound.map((r) => r.ratio)),
        ratioVsPrepared: medianOf(perRound.map((r) => r.ratioVsPrepared)),
        appOverhead: medianOf(perRound.map((r) => Number((r.baselinePrepared.reqPerSec / r.bare.reqPerSec).toFixed(2)))),
        rounds: perRound.map((r) => ({
          sealed: r.sealed.reqPerSec,
          bare: r.bare.reqPerSec,
          ratioVsBare: r.ratioVsBare,
          sealedServerCpuMs: r.sealed.cpuPerRequest.serverMs,
          bareServerCpuMs: r.bare.cpuPerRequest.serverMs,
          baseline: r.baseline.reqPerSec,
          baselinePrepared: r.baselinePrepared.reqPerSec,
          ratio: r.ratio,
          ratioVsPrepared: r.ratioVsPrepared,
        })),
      };
    }
    return results;
  } finally {
    await rm(dir, { recursive: true, force: true });
    await bare.stop();
    await server.close();
  }
}
