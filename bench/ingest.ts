// End-to-end ingest over HTTP on loopback into PostgreSQL: the sealed path (POST /v1/messages,
// every check, signed receipts) against baselines taking the same JSON unsealed and
// unauthenticated. The one the ratio is reported against first is the bare baseline: a separate
// process with no Latchkey code (bench/bare-baseline-server.ts) on its own database of the same
// PostgreSQL. The in-app baselines (mounted in the product's app, behind its middleware) stay as a
// diagnosis of the app's own overhead. Load comes from a separate process (bench/load.ts,
// autocannon). Envelopes are sealed beforehand (agents seal on their own machines), each sent once.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { getJson, postJson } from '../src/agent/http.js';
import { pinServer } from '../src/protocol/discovery.js';
import { sealEnrollRequest, verifyEnrollResponse } from '../src/protocol/enrollment.js';
import { sealEnvelope } from '../src/protocol/envelope.js';
import { generateKeySet, type KeySet } from '../src/protocol/keys.js';
import { parseToken } from '../src/protocol/token.js';
import type { AppServerReady } from './app-server.js';
import { summarise } from './profile-summary.js';
import { cpuPerRequest, cpuSample } from './measure.js';
import { createToken, inventoryOfSize, POSTGRES_URL, random, type BenchServer } from './fixtures.js';
import type { ServerPublicKeys } from '../src/protocol/enrollment.js';
import type { ProtocolContext } from '../src/protocol/crypto/types.js';
import { selectCrypto } from '../src/runtime/crypto.js';

const run = promisify(execFile);

const LOAD = fileURLToPath(new URL('./load.ts', import.meta.url));
const BARE = fileURLToPath(new URL('./bare-baseline-server.ts', import.meta.url));
const APP = fileURLToPath(new URL('./app-server.ts', import.meta.url));

/**
 * Profiling mode (`npm run bench ingest -- --profile`, or LATCHKEY_BENCH_PROFILE=DIR): both servers
 * run under `node --cpu-prof`, their profiles are kept in DIR (default bench-artifacts/profile-TIME)
 * and summarised per load phase (bench/profile-summary.ts). Profiling slows the servers: ratios and
 * CPU figures of a profiling run are not the bench's figures.
 */
export function profileDir(): string | undefined {
  const dir = process.env.LATCHKEY_BENCH_PROFILE;
  if (dir) return resolve(dir);
  if (process.argv.includes('--profile')) return resolve('bench-artifacts', `profile-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  return undefined;
}

interface Child {
  child: ChildProcess;
  /** Profiling mode: the directory of its profiles (one per thread: tsx adds a loader thread). */
  profileDir?: string;
  stop(): Promise<void>;
}

/** A server script in its own process, under --cpu-prof when profiling. */
function spawnServer(script: string, args: string[], name: string, dir: string | undefined, ipc: boolean): Child {
  const profileDir = dir ? join(dir, name) : undefined;
  const child = spawn(
    process.execPath,
    [...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []), '--import', 'tsx', script, ...args],
    // The app server logs as in production (pino to stdout): the bench discards it.
    { stdio: ['ignore', ipc ? 'ignore' : 'pipe', 'inherit', ...(ipc ? (['ipc'] as const) : [])] },
  );
  return {
    child,
    ...(profileDir ? { profileDir } : {}),
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The main thread's profile in a directory: Node names them CPU.DATE.TIME.PID.TID.SEQ.cpuprofile. */
export async function mainThreadProfile(dir: string): Promise<string> {
  const file = (await readdir(dir)).find((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f));
  if (!file) throw new Error(`no main-thread profile in ${dir}`);
  return join(dir, file);
}

/** Starts the bare baseline in its own process; resolves once it listens. */
export async function startBare(dir?: string): Promise<Child & { url: string }> {
  const bare = spawnServer(BARE, [POSTGRES_URL], 'bare', dir, false);
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    bare.child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    bare.child.once('exit', (code) => reject(new Error(`bare baseline exited with ${code}`)));
  });
  return { ...bare, url };
}

/** Starts the product's server (bench/app-server.ts) in its own process; resolves once it listens. */
export async function startApp(dir: string | undefined): Promise<Child & AppServerReady> {
  const app = spawnServer(APP, [], 'app', dir, true);
  const ready = await new Promise<AppServerReady>((resolve, reject) => {
    app.child.once('message', (m) => resolve(m as AppServerReady));
    app.child.once('exit', (code) => reject(new Error(`app server exited with ${code}`)));
  });
  return { ...app, ...ready };
}

// A fleet, not a handful: first messages from each agent take the server's lookup path.
const AGENTS = 256;
const CONNECTIONS = 16;

/** What enrolling agents needs of a server: its address, an admin token and a protocol context. */
type EnrollTarget = Pick<BenchServer, 'url' | 'adminToken' | 'ctx'>;

/** Real enrollments of `count` agents (eight at a time): their keys and ids, and the server's pinned keys. */
export async function enrollAgents(
  server: EnrollTarget,
  count = AGENTS,
): Promise<{ keys: KeySet; agentId: string }[] & { pinned: ServerPublicKeys }> {
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
  return Object.assign(out, { pinned });
}

/**
 * `count` inventory envelopes sealed now, one JSON per line, round-robin over `agents`; `counter`
 * gives each its next counter value.
 */
export async function sealInventoryLines(
  ctx: ProtocolContext,
  agents: Awaited<ReturnType<typeof enrollAgents>>,
  inventory: string | Uint8Array,
  count: number,
  counter: () => number,
): Promise<string[]> {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const { envelope } = await sealEnvelope(ctx, {
      sender: agents[i % agents.length]!.keys,
      recipient: agents.pinned.agreement,
      type: 'inventory',
      contentType: 'application/json',
      contentEncoding: 'gzip',
      counter: counter(),
      plaintext: new Uint8Array(gzipSync(inventory)),
    });
    lines.push(JSON.stringify(envelope));
  }
  return lines;
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

/** A load phase's window on the monotonic clock (microseconds), the clock of a .cpuprofile. */
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

export async function benchIngest(opts: { envelopes?: Record<number, number>; rounds?: number } = {}): Promise<Record<string, unknown>> {
  const counts = opts.envelopes ?? { 4096: 6000, 65536: 3000 };
  // Rounds alternate sealed, bare baseline, in-app baseline and in-app prepared baseline, so drift on
  // a shared machine hits all alike; figures are the median round's.
  const rounds = opts.rounds ?? 3;
  const profiling = profileDir();
  if (profiling) await mkdir(profiling, { recursive: true });
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-bench-'));
  const server = await startApp(profiling);
  const bare = await startBare(profiling);
  /** Profiling mode: each load phase's window and request count, to slice the profiles with. */
  const phases: { server: 'app' | 'bare'; path: string; size: number; round: number; fromUs: number; toUs: number; requests: number }[] =
    [];
  const timed = async (which: 'app' | 'bare', url: string, path: string, size: number, round: number, file: string, repeat?: number) => {
    const fromUs = nowUs();
    const r = await load(url, path, file, repeat, (which === 'app' ? server : bare).child.pid);
    phases.push({ server: which, path, size, round, fromUs, toUs: nowUs(), requests: r.requests });
    return r;
  };
  try {
    const ctx: ProtocolContext = { crypto: await selectCrypto(), random, now: () => Date.now() };
    const agents = await enrollAgents({ url: server.url, adminToken: server.adminToken, ctx });
    const results: Record<string, unknown> = {
      database: 'postgresql',
      crypto: ctx.crypto.name,
      connections: CONNECTIONS,
      agents: AGENTS,
      rounds,
      note: 'sealed bodies are gzip-compressed before sealing, as the agent sends them; baseline bodies are the plain JSON. Both servers run in processes of their own; the product server as `latchkey serve` composes it (pino at info, prom-client metrics). ratioVsBare = sealed / the bare baseline (separate process, bare hono + postgres.js, prepared insert, own database: the honest comparison); ratio = sealed / the in-app baseline (the ORM insert inside the product app); ratioVsPrepared = sealed / the in-app prepared insert; each the median over rounds. appOverhead = in-app prepared / bare. cpuPerRequest.serverMs: CPU of the server process per request, from /proc (10 ms ticks)',
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
        const lines = await sealInventoryLines(ctx, agents, inventory, count, () => ++counter);
        sealSeconds += (performance.now() - sealStart) / 1000;
        envelopeBytes = lines[0]!.length;
        const sealedFile = join(dir, `sealed-${size}-${round}.jsonl`);
        await writeFile(sealedFile, lines.join('\n'));

        const sealed = await timed('app', server.url, '/v1/messages', size, round, sealedFile);
        if (sealed.non2xx > 0) throw new Error(`sealed load had ${sealed.non2xx} rejections: ${JSON.stringify(sealed)}`);
        if (!sealed.complete) throw new Error(`sealed load did not finish in time: ${JSON.stringify(sealed)}`);
        const bareRun = await timed('bare', bare.url, '/ingest', size, round, plainFile, 5);
        const baseline = await timed('app', server.url, '/bench/baseline', size, round, plainFile, 5);
        const baselinePrepared = await timed('app', server.url, '/bench/baseline-prepared', size, round, plainFile, 5);
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
      const cpu = (pick: (r: (typeof perRound)[number]) => LoadResult) => range(perRound.map((r) => pick(r).cpuPerRequest.serverMs!));
      results[`${size / 1024}KiB`] = {
        inventoryBytes: inventory.length,
        envelopeBytes,
        agentSealPerSecond: Math.round((count * rounds) / sealSeconds),
        ratioVsBare: medianOf(perRound.map((r) => r.ratioVsBare)),
        ratioVsBareRange: range(perRound.map((r) => r.ratioVsBare)),
        // Server CPU per request (ms), range over rounds: more robust than req/s on a loaded machine.
        serverCpuMsRange: {
          sealed: cpu((r) => r.sealed),
          bare: cpu((r) => r.bare),
          baseline: cpu((r) => r.baseline),
          baselinePrepared: cpu((r) => r.baselinePrepared),
        },
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
          baselinePreparedServerCpuMs: r.baselinePrepared.cpuPerRequest.serverMs,
          ratio: r.ratio,
          ratioVsPrepared: r.ratioVsPrepared,
        })),
      };
    }
    await Promise.all([server.stop(), bare.stop()]);
    if (profiling)
      results.profiles = await summariseProfiles(
        profiling,
        { app: await mainThreadProfile(server.profileDir!), bare: await mainThreadProfile(bare.profileDir!) },
        phases,
      );
    return results;
  } finally {
    await rm(dir, { recursive: true, force: true });
    await Promise.all([server.stop(), bare.stop()]);
  }
}

/**
 * The profiles' paths and, per load phase, where the server's CPU went by category (ms per
 * request, from the samples of that phase's window). The JSON written next to the profiles
 * (phases.json) lets bench/profile-summary.ts slice them again: --from/--to.
 */
async function summariseProfiles(
  dir: string,
  files: Record<'app' | 'bare', string>,
  phases: { server: 'app' | 'bare'; path: string; size: number; round: number; fromUs: number; toUs: number; requests: number }[],
): Promise<Record<string, unknown>> {
  await writeFile(join(dir, 'phases.json'), JSON.stringify({ files, phases }, null, 2));
  const loaded = {
    app: JSON.parse(await readFile(files.app, 'utf8')) as Parameters<typeof summarise>[0],
    bare: JSON.parse(await readFile(files.bare, 'utf8')) as Parameters<typeof summarise>[0],
  };
  return {
    dir,
    files,
    phases: join(dir, 'phases.json'),
    note: "profiled servers run slower: these runs' ratios are not the bench figures. Regenerate: node --import tsx bench/profile-summary.ts FILE --from US --to US --requests N --md",
    breakdown: phases
      .filter((p) => p.round === 0)
      .map((p) => {
        const s = summarise(loaded[p.server], { from: p.fromUs, to: p.toUs, requests: p.requests, top: 8 });
        return {
          server: p.server,
          path: p.path,
          size: p.size,
          requests: p.requests,
          busyMsPerRequest: Number((s.window.busyMs / p.requests).toFixed(4)),
          byCategory: Object.fromEntries(s.byCategory.map((r) => [r.name, r.msPerRequest])),
          topInclusive: s.inclusive.map((r) => `${r.name}: ${r.msPerRequest}`),
        };
      }),
  };
}
