// `npm run bench workers`: scaling of the real `latchkey serve` (the built CLI) from 1 to N worker
// processes (`--workers`, N = BENCH_WORKERS or the number of CPUs), on PostgreSQL, each server on a
// database of its own. Two phases, the load sent from a separate process (bench/load.ts, 16
// connections, every body sent once): enrollments (requests sealed beforehand, each with its own
// keys, one token with enough uses) and sealed 4 KiB per-request ingest (256 agents). Rounds alternate
// 1 and N workers so that drift on a shared machine hits both alike; each figure is the median round
// with its range. Server CPU counts the primary and every worker (from /proc).
// Profiling (`--profile`, or LATCHKEY_BENCH_PROFILE=DIR): every server process runs under
// `node --cpu-prof` (cluster workers inherit it) and each phase of the first round is broken down by
// category, summed over the processes' profiles (bench/profile-summary.ts). Profiled servers are
// slower: those runs' rates are not the bench figures. Alone:
//   node --import tsx bench/workers.ts [--profile] [--workers N] [--rounds R] [--enrollments E] [--phases enroll,ingest]
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { getJson, postJson } from '../src/agent/http.js';
import { pinServer } from '../src/protocol/discovery.js';
import { sealEnrollRequest, verifyEnrollResponse, type ServerPublicKeys } from '../src/protocol/enrollment.js';
import { sealEnvelope } from '../src/protocol/envelope.js';
import { generateKeySet, type KeySet } from '../src/protocol/keys.js';
import { parseToken } from '../src/protocol/token.js';
import type { ProtocolContext } from '../src/protocol/crypto/types.js';
import { selectCrypto } from '../src/runtime/crypto.js';
import { inventoryOfSize, POSTGRES_URL, random } from './fixtures.js';
import { load, profileDir } from './ingest.js';
import { pidTicks } from './measure.js';
import { summarise } from './profile-summary.js';

const CLI = new URL('../dist/cli/main.js', import.meta.url).pathname;
const AGENTS = 256;
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

interface Served {
  workers: number;
  url: string;
  pins: ServerPublicKeys;
  fingerprint: string;
  /** Profiling mode: where its processes write their .cpuprofile files. */
  profileDir?: string;
  adminToken: string;
  /** The primary and every worker alive now (workers are named by their `latchkey listening` lines). */
  pids(): number[];
  stop(): Promise<void>;
}

async function startServed(workers: number, profiling?: string): Promise<Served> {
  const profileDir = profiling ? join(profiling, `workers${workers}`) : undefined;
  const name = `bench_workers_${randomBytes(5).toString('hex')}`;
  const admin = postgres(POSTGRES_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-bench-workers-'));
  const child: ChildProcess = spawn(
    process.execPath,
    [
      ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []),
      CLI,
      'serve',
      '--port',
      '0',
      '--log-level',
      'info',
      '--data-dir',
      join(dir, 'data'),
      '--workers',
      String(workers),
    ],
    {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATABASE_URL: url.toString() },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const ready = await new Promise<{ url: string; fingerprint: string }>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      // Keep only what names a process: the per-request lines are many.
      for (const line of d.toString().split('\n')) if (!line.startsWith('{') || line.includes('"latchkey listening"')) out += `${line}\n`;
      const m = /latchkey listening on (\S+)\nserver key fingerprint (\S+)/.exec(out);
      if (m) resolve({ url: m[1]!, fingerprint: m[2]! });
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
  const adminToken = (await readFile(join(dir, 'data', 'admin.token'), 'utf8')).trim();
  const pins = pinServer(await getJson(`${ready.url}/.well-known/latchkey`), ready.fingerprint);
  let stopped = false;
  return {
    workers,
    ...ready,
    ...(profileDir ? { profileDir } : {}),
    pins,
    adminToken,
    pids: () => [
      child.pid!,
      ...[...out.matchAll(/"pid":(\d+)[^\n]*"latchkey listening"/g)].map((m) => Number(m[1])).filter((p) => pidTicks(p) !== undefined),
    ],
    // Idempotent: profiling stops the servers before the final clean-up does.
    stop: async () => {
      if (stopped) return;
      stopped = true;
      const exited = child.exitCode === null ? once(child, 'exit') : undefined;
      child.kill('SIGTERM');
      await exited;
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function createToken(s: Served, uses: number): Promise<string> {
  const r = (await postJson(
    `${s.url}/v1/admin/tokens`,
    { uses, ttlSeconds: 3600 },
    { headers: { authorization: `Bearer ${s.adminToken}` } },
  )) as {
    token: string;
  };
  return r.token;
}

/** `count` enrollment requests sealed now (each with its own keys), one per line. */
async function sealEnrollments(ctx: ProtocolContext, s: Served, count: number, tag: string): Promise<string> {
  const t = parseToken(await createToken(s, count));
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const keys = await generateKeySet(ctx);
    lines.push(JSON.stringify((await sealEnrollRequest(ctx, t, s.pins, keys, `${tag}-${i}`)).request));
  }
  return lines.join('\n');
}

/** AGENTS real enrollments, eight at a time: the senders of the ingest phase. */
async function enrollAgents(ctx: ProtocolContext, s: Served): Promise<KeySet[]> {
  const t = parseToken(await createToken(s, AGENTS));
  const out: KeySet[] = [];
  const one = async (i: number) => {
    const keys = await generateKeySet(ctx);
    const { request, nonce } = await sealEnrollRequest(ctx, t, s.pins, keys, `sender-${i}`);
    await verifyEnrollResponse(ctx.crypto, s.pins, await postJson(`${s.url}/v1/enroll`, request), nonce);
    out[i] = keys;
  };
  for (let i = 0; i < AGENTS; i += 8) await Promise.all(Array.from({ length: Math.min(8, AGENTS - i) }, (_, j) => one(i + j)));
  return out;
}

/** A load phase's window on the monotonic clock (microseconds), the clock of a .cpuprofile. */
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

/** One load phase, with the server's CPU (primary + workers) per request. */
async function phase(s: Served, path: string, file: string) {
  const pids = s.pids();
  const ticks = () => pids.reduce((a, p) => a + (pidTicks(p) ?? 0), 0);
  const before = ticks();
  const fromUs = nowUs();
  const r = await load(s.url, path, file);
  const toUs = nowUs();
  // Refusals are reported, not fatal: on an overloaded machine a few 503 (database timeouts) happen.
  if (!r.complete) throw new Error(`${path} load on ${s.workers} workers did not finish: ${JSON.stringify(r)}`);
  const serverMs = (((ticks() - before) / TICKS_PER_SECOND) * 1000) / r.requests;
  return {
    reqPerSec: r.reqPerSec,
    non2xx: r.non2xx,
    p50: r.latencyMs.p50,
    p99: r.latencyMs.p99,
    serverCpuMsPerRequest: Number(serverMs.toFixed(3)),
    window: { fromUs, toUs, requests: r.requests },
  };
}

type Phase = Awaited<ReturnType<typeof phase>>;

/**
 * Where one phase's server CPU went, by category: the samples of its window in every profile the
 * server's processes wrote (the primary and each worker), summed, per request.
 */
async function breakdown(dir: string, w: Phase['window']): Promise<Record<string, unknown>> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  const cats = new Map<string, number>();
  const incl = new Map<string, number>();
  let busyMs = 0;
  for (const f of files) {
    const s = summarise(JSON.parse(await readFile(join(dir, f), 'utf8')) as Parameters<typeof summarise>[0], {
      from: w.fromUs,
      to: w.toUs,
      top: 15,
    });
    busyMs += s.window.busyMs;
    for (const r of s.byCategory) cats.set(r.name, (cats.get(r.name) ?? 0) + r.ms);
    for (const r of s.inclusive) incl.set(r.name, (incl.get(r.name) ?? 0) + r.ms);
  }
  const perRequest = (m: Map<string, number>) =>
    Object.fromEntries([...m].sort((a, b) => b[1] - a[1]).map(([k, ms]) => [k, Number((ms / w.requests).toFixed(4))]));
  return {
    profiles: files.map((f) => join(dir, f)),
    window: w,
    busyMsPerRequest: Number((busyMs / w.requests).toFixed(4)),
    byCategory: perRequest(cats),
    topInclusive: perRequest(incl),
  };
}

const medianOf = (xs: number[]): number => [...xs].sort((x, y) => x - y)[(xs.length - 1) >> 1]!;
const range = (xs: number[]): [number, number] => [Math.min(...xs), Math.max(...xs)];

export async function benchWorkers(
  opts: { workers?: number; rounds?: number; enrollments?: number; envelopes?: number; phases?: ('enroll' | 'ingest')[] } = {},
): Promise<Record<string, unknown>> {
  const want = new Set(opts.phases ?? ['enroll', 'ingest']);
  const profiling = profileDir();
  if (profiling) await mkdir(profiling, { recursive: true });
  const n = opts.workers ?? (Number(process.env.BENCH_WORKERS) || availableParallelism());
  const rounds = opts.rounds ?? 3;
  const enrollments = opts.enrollments ?? 3000;
  // Per agent and worker, 60 stored messages at once then 1 a second: 256 agents stay within it.
  const envelopes = opts.envelopes ?? 2048;
  const crypto = await selectCrypto();
  const ctx: ProtocolContext = { crypto, random, now: () => Date.now() };
  const counts = n > 1 ? [1, n] : [1];
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-bench-workers-'));
  const servers: Served[] = [];
  try {
    for (const w of counts) servers.push(await startServed(w, profiling));
    const senders = new Map<Served, KeySet[]>();
    if (want.has('ingest')) for (const s of servers) senders.set(s, await enrollAgents(ctx, s));
    const inventory = gzipSync(inventoryOfSize(4096, 'bench-workers'));
    const perServer = new Map<Served, { enroll: Phase[]; ingest: Phase[] }>();
    let counter = 0;
    for (let round = 0; round < rounds; round++) {
      for (const s of servers) {
        const got = perServer.get(s) ?? { enroll: [], ingest: [] };
        perServer.set(s, got);
        if (want.has('enroll')) {
          const enrollFile = join(dir, `enroll-${s.workers}-${round}.jsonl`);
          await writeFile(enrollFile, await sealEnrollments(ctx, s, enrollments, `r${round}`));
          got.enroll.push(await phase(s, '/v1/enroll', enrollFile));
        }
        if (!want.has('ingest')) continue;
        const agents = senders.get(s)!;
        const lines: string[] = [];
        for (let i = 0; i < envelopes; i++) {
          const { envelope } = await sealEnvelope(ctx, {
            sender: agents[i % AGENTS]!,
            recipient: s.pins.agreement,
            type: 'inventory',
            contentType: 'application/json',
            contentEncoding: 'gzip',
            counter: ++counter,
            plaintext: new Uint8Array(inventory),
          });
          lines.push(JSON.stringify(envelope));
        }
        const sealedFile = join(dir, `sealed-${s.workers}-${round}.jsonl`);
        await writeFile(sealedFile, lines.join('\n'));
        got.ingest.push(await phase(s, '/v1/messages', sealedFile));
      }
    }
    const summary = (runs: Phase[]) => ({
      reqPerSec: medianOf(runs.map((r) => r.reqPerSec)),
      range: range(runs.map((r) => r.reqPerSec)),
      p99Ms: medianOf(runs.map((r) => r.p99)),
      serverCpuMsPerRequest: medianOf(runs.map((r) => r.serverCpuMsPerRequest)),
      non2xx: runs.reduce((a, r) => a + r.non2xx, 0),
    });
    const results: Record<string, { enroll?: ReturnType<typeof summary>; sealedIngest4KiB?: ReturnType<typeof summary> }> =
      Object.fromEntries(
        servers.map((s) => {
          const got = perServer.get(s)!;
          return [
            `workers${s.workers}`,
            {
              ...(got.enroll.length ? { enroll: summary(got.enroll) } : {}),
              ...(got.ingest.length ? { sealedIngest4KiB: summary(got.ingest) } : {}),
            },
          ];
        }),
      );
    // Profiles are written when the processes exit: stop them, then break the first round down.
    for (const s of servers) await s.stop();
    const profiles = profiling
      ? {
          dir: profiling,
          note: "profiled servers run slower: these runs' rates are not the bench figures",
          ...Object.fromEntries(
            await Promise.all(
              servers.map(async (s) => {
                const got = perServer.get(s)!;
                return [
                  `workers${s.workers}`,
                  {
                    ...(got.enroll[0] ? { enroll: await breakdown(s.profileDir!, got.enroll[0].window) } : {}),
                    ...(got.ingest[0] ? { sealedIngest4KiB: await breakdown(s.profileDir!, got.ingest[0].window) } : {}),
                  },
                ];
              }),
            ),
          ),
        }
      : undefined;
    const one = results.workers1!;
    const many = results[`workers${n}`];
    const ratio = (a?: { reqPerSec: number }, b?: { reqPerSec: number }) =>
      a && b ? Number((a.reqPerSec / b.reqPerSec).toFixed(2)) : undefined;
    return {
      database: 'postgresql',
      cpus: availableParallelism(),
      connections: 16,
      rounds,
      enrollmentsPerRound: enrollments,
      envelopesPerRound: envelopes,
      note: 'the real serve process (dist CLI) with --workers 1 and N, each on its own database; enrollment requests and 4 KiB gzip envelopes sealed beforehand and sent once each from a separate load process; median round and range; server CPU is the primary plus every worker',
      ...results,
      ...(many && n > 1
        ? { scaling: { enroll: ratio(many.enroll, one.enroll), sealedIngest4KiB: ratio(many.sealedIngest4KiB, one.sealedIngest4KiB) } }
        : {}),
      ...(profiles ? { profiles } : {}),
    };
  } finally {
    for (const s of servers) await s.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      profile: { type: 'boolean' },
      workers: { type: 'string' },
      rounds: { type: 'string' },
      enrollments: { type: 'string' },
      envelopes: { type: 'string' },
      phases: { type: 'string' },
    },
  });
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const result = await benchWorkers({
    ...(values.workers ? { workers: num(values.workers)! } : {}),
    ...(values.rounds ? { rounds: num(values.rounds)! } : {}),
    ...(values.enrollments ? { enrollments: num(values.enrollments)! } : {}),
    ...(values.envelopes ? { envelopes: num(values.envelopes)! } : {}),
    ...(values.phases ? { phases: values.phases.split(',') as ('enroll' | 'ingest')[] } : {}),
  });
  console.log(JSON.stringify(result, null, 2));
}
