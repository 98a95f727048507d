// Relays (spec §11) on loopback into PostgreSQL, every part in a process of its own:
//   - the server: bench/app-server.ts, composed as `latchkey serve` composes it (pino at info,
//     prom-client metrics);
//   - relays R (upstream: the server), S (upstream: R) and Q (upstream: the server, answering "queued"
//     at once): bench/relay-process.ts, composed exactly as `latchkey relay serve` (src/relay/node.ts),
//     each with its own spool on disk (fsync before acknowledging);
//   - the load: bench/relay-load.ts, the agents: each envelope (sealed beforehand: agents seal on
//     their own machines) POSTed on its own from its agent's own address, sent once.
// Measured:
//   - ingest side by side, in alternating rounds: relay-batched sealed ingest (envelopes posted to Q,
//     timed from the first until Q's spool is empty: every envelope checked by Q, spooled, forwarded in
//     relay batches, stored by the server, the batch receipt verified by Q) against the bare unsealed
//     per-request baseline (bench/bare-baseline-server.ts, its own process and database); the ratio
//     first (median round, range). Targets: >= 2 (issue 12), >= 0.8 (issue 17);
//   - CPU per envelope of the server, of Q, of PostgreSQL and of the load generator (from /proc), so
//     the figures mean something on a loaded machine; Ed25519 signatures and verifications per envelope
//     in the server and in Q (bench/count-crypto.ts);
//   - latency: one envelope at a time straight to the server, through R, and through S then R (the
//     relays wait for the server's receipt), median and p90; the added latency of one and two hops.
// Profiling (`npm run bench relay -- --profile` or LATCHKEY_BENCH_PROFILE=DIR): the server and Q run
// under `node --cpu-prof`; their profiles are kept and summarised over the first round's window.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { getJson, postJson } from '../src/agent/http.js';
import { pinServer } from '../src/protocol/discovery.js';
import { sealEnrollRequest, verifyEnrollResponse } from '../src/protocol/enrollment.js';
import { sealEnvelope, type Envelope } from '../src/protocol/envelope.js';
import { generateKeySet, type KeySet } from '../src/protocol/keys.js';
import type { ProtocolContext } from '../src/protocol/crypto/types.js';
import { parseToken } from '../src/protocol/token.js';
import { selectCrypto } from '../src/runtime/crypto.js';
import type { AppServerReady } from './app-server.js';
import type { CryptoCounts } from './count-crypto.js';
import { inventoryOfSize, random } from './fixtures.js';
import { load, profileDir, startBare } from './ingest.js';
import { cpuSample, pidTicks } from './measure.js';
import { summarise } from './profile-summary.js';
import type { RelayReady } from './relay-process.js';

const APP = fileURLToPath(new URL('./app-server.ts', import.meta.url));
const RELAY = fileURLToPath(new URL('./relay-process.ts', import.meta.url));
const LOAD = fileURLToPath(new URL('./relay-load.ts', import.meta.url));
const COUNT = fileURLToPath(new URL('./count-crypto.ts', import.meta.url));

/** A fleet, as in bench/ingest.ts: each agent's credential comes back every AGENTS envelopes. */
const AGENTS = 256;
/** Agents sending to the relay at once (each one envelope per request, from its own address). */
const AGENT_CONCURRENCY = 16;
/** Agent i's address, as the relay hears it (all of 127.0.0.0/8 is loopback on Linux). */
const agentAddress = (i: number) => `127.1.${(i >> 8) & 255}.${i & 255}`;
const TICK_MS = 10; // USER_HZ

interface Proc {
  child: ChildProcess;
  profileDir?: string;
  /** The next IPC message. */
  ask<T>(message: object): Promise<T>;
  stop(): Promise<void>;
}

function spawnProc(script: string, args: string[], name: string, profiling: string | undefined): Proc {
  const dir = profiling ? join(profiling, name) : undefined;
  const child = spawn(
    process.execPath,
    [
      ...(dir ? ['--cpu-prof', '--cpu-prof-dir', dir] : []),
      '--import',
      'tsx',
      '--import',
      COUNT,
      ...(process.env.BENCH_STACKS ? ['--import', process.env.BENCH_STACKS] : []),
      script,
      ...args,
    ],
    // Both log as in production (pino to stdout): the bench discards it, or keeps it in BENCH_LOGS=DIR.
    { stdio: ['ignore', process.env.BENCH_LOGS ? 'pipe' : 'ignore', 'inherit', 'ipc'] },
  );
  if (process.env.BENCH_LOGS) child.stdout!.pipe(createWriteStream(join(process.env.BENCH_LOGS, `${name}.log`)));
  return {
    child,
    ...(dir ? { profileDir: dir } : {}),
    ask<T>(message: object) {
      const answer = once(child, 'message') as Promise<[T]>;
      child.send(message);
      return answer.then(([m]) => m);
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function firstMessage<T>(p: Proc, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    p.child.once('message', (m) => resolve(m as T));
    p.child.once('exit', (code) => reject(new Error(`${what} exited with ${code}`)));
  });
}

async function token(server: AppServerReady, role: 'agent' | 'relay', uses: number): Promise<string> {
  const res = await fetch(`${server.url}/v1/admin/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ uses, ttlSeconds: 3600, role }),
  });
  return ((await res.json()) as { token: string }).token;
}

interface Agent {
  keys: KeySet;
  credential: string;
}

/** Real enrollments (eight at a time), keeping each agent's credential: agents attach it (cred) when they send through a relay. */
async function enrollFleet(ctx: ProtocolContext, server: AppServerReady, count: number) {
  const t = parseToken(await token(server, 'agent', count));
  const pinned = pinServer(await getJson(`${server.url}/.well-known/latchkey`), t.serverFingerprint);
  const agents: Agent[] = [];
  const one = async (i: number) => {
    const keys = await generateKeySet(ctx);
    const { request, nonce } = await sealEnrollRequest(ctx, t, pinned, keys, `relay-bench-${i}`);
    const body = await verifyEnrollResponse(ctx.crypto, pinned, await postJson(`${server.url}/v1/enroll`, request), nonce);
    agents[i] = { keys, credential: body.credential };
  };
  for (let i = 0; i < count; i += 8) await Promise.all(Array.from({ length: Math.min(8, count - i) }, (_, j) => one(i + j)));
  return { agents, pinned };
}

async function startRelayProc(upstream: string, dir: string, tok: string, receiptWaitMs: number, name: string, profiling?: string) {
  const p = spawnProc(RELAY, [upstream, dir, tok, String(receiptWaitMs)], name, profiling);
  const { url } = await firstMessage<RelayReady>(p, `relay ${name}`);
  return { ...p, url, dir };
}

/** Envelopes waiting in a relay's spool, read from its directory (temporary files start with a dot). */
async function spoolDepth(stateDir: string): Promise<number> {
  return (await readdir(join(stateDir, 'spool'))).filter((n) => !n.startsWith('.')).length;
}

/** bench/relay-load.ts in its own process; resolves with its result and its own CPU ticks. */
async function loadProc(url: string, file: string, concurrency: number) {
  const child = spawn(process.execPath, ['--import', 'tsx', LOAD, url, file, String(concurrency)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  let ticks = 0;
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    ticks = pidTicks(child.pid!) ?? ticks; // before it exits, its ticks are still readable
  });
  const [code] = (await once(child, 'exit')) as [number];
  if (code !== 0) throw new Error(`load generator exited with ${code}`);
  return { result: JSON.parse(out) as { requests: number; non2xx: number; complete: boolean; seconds: number }, ticks };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
const r2 = (x: number) => Math.round(x * 100) / 100;
const r3 = (x: number) => Math.round(x * 1000) / 1000;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1]!;
const range = (xs: number[]): [number, number] => [Math.min(...xs), Math.max(...xs)];
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

export async function benchRelay(
  opts: { envelopes?: number; latencySamples?: number; rounds?: number } = {},
): Promise<Record<string, unknown>> {
  const total = opts.envelopes ?? 2000;
  const rounds = opts.rounds ?? 3;
  const samples = opts.latencySamples ?? 60;
  const profiling = profileDir();
  if (profiling) await mkdir(profiling, { recursive: true });
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-bench-relay-'));
  const procs: Proc[] = [];
  const server = spawnProc(APP, [], 'app', profiling);
  procs.push(server);
  try {
    const ready = await firstMessage<AppServerReady>(server, 'app server');
    const bare = await startBare();
    procs.push(bare as unknown as Proc);
    const ctx: ProtocolContext = { crypto: await selectCrypto(), random, now: () => Date.now() };
    const r = await startRelayProc(ready.url, join(dir, 'relay-r'), await token(ready, 'relay', 1), 10_000, 'relay-r');
    procs.push(r);
    const s = await startRelayProc(r.url, join(dir, 'relay-s'), await token(ready, 'relay', 1), 10_000, 'relay-s');
    procs.push(s);
    const q = await startRelayProc(ready.url, join(dir, 'relay-q'), await token(ready, 'relay', 1), 0, 'relay-q', profiling);
    procs.push(q);
    const { agents, pinned } = await enrollFleet(ctx, ready, AGENTS);
    const inventory = inventoryOfSize(4096, 'bench-relay');
    const gz = new Uint8Array(gzipSync(inventory));
    let counter = 0;
    const seal = async (i: number): Promise<Envelope> =>
      (
        await sealEnvelope(ctx, {
          sender: agents[i % AGENTS]!.keys,
          recipient: pinned.agreement,
          type: 'inventory',
          contentType: 'application/json',
          contentEncoding: 'gzip',
          counter: ++counter,
          plaintext: gz,
          credential: agents[i % AGENTS]!.credential,
        })
      ).envelope;
    const post = (url: string, body: unknown) =>
      fetch(`${url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

    // Latency, one envelope at a time: direct, one hop, two hops (a few first, unmeasured: JIT, key caches).
    const latency: Record<string, { p50: number; p90: number }> = {};
    for (const [name, url] of [
      ['direct', ready.url],
      ['oneHop', r.url],
      ['twoHops', s.url],
    ] as const) {
      const ms: number[] = [];
      for (let i = -5; i < samples; i++) {
        const envelope = await seal(i + 5);
        const t = performance.now();
        const res = await post(url, envelope);
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`${name}: HTTP ${res.status}`);
        if (i >= 0) ms.push(performance.now() - t);
      }
      latency[name] = { p50: r2(pct(ms, 0.5)), p90: r2(pct(ms, 0.9)) };
    }

    const plainFile = join(dir, 'plain.jsonl');
    await writeFile(plainFile, inventory);
    const phases: { fromUs: number; toUs: number; envelopes: number }[] = [];
    const perRound: Record<string, number>[] = [];
    for (let round = 0; round < rounds; round++) {
      const lines: string[] = [];
      for (let i = 0; i < total; i++) lines.push(`${agentAddress(i % AGENTS)}\t${JSON.stringify(await seal(i))}`);
      const envelopeFile = join(dir, `envelopes-${round}.tsv`);
      await writeFile(envelopeFile, lines.join('\n'));

      const serverCrypto0 = await server.ask<CryptoCounts>({ counts: true });
      const relayCrypto0 = await q.ask<CryptoCounts>({ counts: true });
      const before = cpuSample(server.child.pid);
      const relayTicks0 = pidTicks(q.child.pid!)!;
      const fromUs = nowUs();
      const start = performance.now();
      const loaded = await loadProc(q.url, envelopeFile, AGENT_CONCURRENCY);
      if (loaded.result.non2xx > 0 || !loaded.result.complete) throw new Error(`relay refused envelopes: ${JSON.stringify(loaded.result)}`);
      const acceptedSeconds = (performance.now() - start) / 1000;
      while ((await spoolDepth(q.dir)) > 0) await new Promise((resolve) => setTimeout(resolve, 10));
      const seconds = (performance.now() - start) / 1000;
      const toUs = nowUs();
      const after = cpuSample(server.child.pid);
      const relayTicks1 = pidTicks(q.child.pid!)!;
      const serverCrypto1 = await server.ask<CryptoCounts>({ counts: true });
      const relayCrypto1 = await q.ask<CryptoCounts>({ counts: true });
      phases.push({ fromUs, toUs, envelopes: total });
      const per = (ticks: number) => r3((ticks * TICK_MS) / total);

      const b = await load(bare.url, '/ingest', plainFile, 5, bare.child.pid);
      const forwarded = Math.round(total / seconds);
      perRound.push({
        forwardedPerSecond: forwarded,
        acceptedPerSecond: Math.round(total / acceptedSeconds),
        barePerSecond: b.reqPerSec,
        ratio: r2(forwarded / b.reqPerSec),
        serverCpuMsPerEnvelope: per(after.serverTicks! - before.serverTicks!),
        relayCpuMsPerEnvelope: per(relayTicks1 - relayTicks0),
        postgresCpuMsPerEnvelope: per(after.postgresTicks! - before.postgresTicks!),
        loadCpuMsPerEnvelope: per(loaded.ticks),
        machineBusyShare: r2((after.machine!.busy - before.machine!.busy) / (after.machine!.total - before.machine!.total)),
        serverSignaturesPerEnvelope: r3((serverCrypto1.sign - serverCrypto0.sign) / total),
        serverVerificationsPerEnvelope: r3((serverCrypto1.verify - serverCrypto0.verify) / total),
        relaySignaturesPerEnvelope: r3((relayCrypto1.sign - relayCrypto0.sign) / total),
        relayVerificationsPerEnvelope: r3((relayCrypto1.verify - relayCrypto0.verify) / total),
        bareServerCpuMsPerRequest: b.cpuPerRequest.serverMs ?? -1,
        barePostgresCpuMsPerRequest: b.cpuPerRequest.postgresMs ?? -1,
      });
    }
    const ratios = perRound.map((x) => x.ratio!);
    const mid = perRound.find((x) => x.ratio === median(ratios))!;
    const med = (k: string) => median(perRound.map((x) => x[k]!));
    const rng = (k: string) => range(perRound.map((x) => x[k]!));
    const result: Record<string, unknown> = {
      ingest: {
        ratioVsBare: median(ratios),
        ratioVsBareRange: range(ratios),
        targets: { issue12: 2, issue17: 0.8 },
        relayBatchedSealedPerSecond: mid.forwardedPerSecond,
        bareUnsealedPerRequestPerSecond: mid.barePerSecond,
        rounds: perRound,
        note: 'relay-batched sealed ingest (256 agents, 16 at a time, each envelope POSTed on its own from its own address to relay Q, which checks it (§11), spools it with fsync, answers queued with a signed relay-accept, forwards in batches of up to 100, and verifies the one batch receipt each; timed from the first envelope until the spool is empty) against the bare unsealed per-request baseline (its own process and database, no Latchkey code, 16 connections), alternating rounds, median round. Server, relay, load and PostgreSQL share the 2 cores.',
      },
      cpuMsPerEnvelope: {
        server: { median: med('serverCpuMsPerEnvelope'), range: rng('serverCpuMsPerEnvelope') },
        relay: { median: med('relayCpuMsPerEnvelope'), range: rng('relayCpuMsPerEnvelope') },
        postgres: { median: med('postgresCpuMsPerEnvelope'), range: rng('postgresCpuMsPerEnvelope') },
        load: { median: med('loadCpuMsPerEnvelope'), range: rng('loadCpuMsPerEnvelope') },
        bareServerPerRequest: { median: med('bareServerCpuMsPerRequest'), range: rng('bareServerCpuMsPerRequest') },
        barePostgresPerRequest: { median: med('barePostgresCpuMsPerRequest'), range: rng('barePostgresCpuMsPerRequest') },
        note: 'from /proc (10 ms ticks) over each phase; relay-batched: the whole window from the first batch posted until the spool is empty',
      },
      signaturesPerEnvelope: {
        server: { sign: med('serverSignaturesPerEnvelope'), verify: med('serverVerificationsPerEnvelope') },
        relay: { sign: med('relaySignaturesPerEnvelope'), verify: med('relayVerificationsPerEnvelope') },
        note: 'Ed25519 operations counted in each process (node:crypto and WebCrypto), per envelope',
      },
      database: 'postgresql',
      inventoryBytes: inventory.length,
      agents: AGENTS,
      latencyMs: {
        ...latency,
        addedOneHopP50: r2(latency.oneHop!.p50 - latency.direct!.p50),
        addedTwoHopsP50: r2(latency.twoHops!.p50 - latency.direct!.p50),
        note: 'one envelope at a time; the relays wait for the server receipt (fsync on accept included)',
      },
      forwarding: {
        envelopes: total,
        acceptedPerSecond: mid.acceptedPerSecond,
        forwardedPerSecond: mid.forwardedPerSecond,
        note: 'accepted = checked, spooled with fsync and answered queued (load generator done); forwarded = until the spool is empty (stored by the server, one batch receipt per forwarded batch verified by the relay)',
      },
    };
    await Promise.all([server.stop(), q.stop()]);
    if (profiling) result.profiles = await summariseProfiles(profiling, { app: server.profileDir!, relay: q.profileDir! }, phases[0]!);
    return result;
  } finally {
    for (const p of procs.reverse()) await p.stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

/** The main thread's profile in a directory: Node names them CPU.DATE.TIME.PID.TID.SEQ.cpuprofile. */
async function mainThreadProfile(dir: string): Promise<string> {
  const file = (await readdir(dir)).find((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f));
  if (!file) throw new Error(`no main-thread profile in ${dir}`);
  return join(dir, file);
}

/** Where the server's and the relay's CPU went during the first round, per envelope. */
async function summariseProfiles(
  dir: string,
  dirs: Record<'app' | 'relay', string>,
  phase: { fromUs: number; toUs: number; envelopes: number },
) {
  const out: Record<string, unknown> = {
    dir,
    note: "profiled processes run slower: this run's ratios are not the bench figures. Regenerate: node --import tsx bench/profile-summary.ts FILE --from US --to US --requests N --md",
    window: phase,
  };
  for (const [name, d] of Object.entries(dirs)) {
    const file = await mainThreadProfile(d);
    const s = summarise(JSON.parse(await readFile(file, 'utf8')) as Parameters<typeof summarise>[0], {
      from: phase.fromUs,
      to: phase.toUs,
      requests: phase.envelopes,
      top: 12,
    });
    out[name] = {
      file,
      busyMsPerEnvelope: r3(s.window.busyMs / phase.envelopes),
      byCategory: Object.fromEntries(s.byCategory.map((x) => [x.name, x.msPerRequest])),
      topInclusive: s.inclusive.map((x) => `${x.name}: ${x.msPerRequest}`),
    };
  }
  return out;
}
