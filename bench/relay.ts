// Relays (spec §11), in process on loopback into PostgreSQL: a server, relay R (upstream: the server)
// and relay S (upstream: R), each a real HTTP listener with its own spool on disk (fsync on accept).
// - forwarding: envelopes posted to R in batches (answered "queued" at once), timed until R's spool
//   is empty, i.e. every envelope forwarded in relay batches, stored, and the batch's one receipt
//   verified (§10.1; the server's signatures are counted);
// - latency: one envelope at a time straight to the server, through R, and through S then R (the
//   relays wait for the server's receipt), median and p90; the added latency of one and two hops;
// - ingest side by side, in alternating rounds: the server's sealed ingest of relay-batched envelopes
//   (posted to R in batches, timed until R's spool is empty) against the bare unsealed per-request
//   baseline (bench/bare-baseline-server.ts, its own process, autocannon from another process); the
//   ratio first, the median round's, with its range. Targets: >= 2 (issue 12), >= 0.8 (issue 17).
// The relays run in the bench process beside the server (one event loop): on a real site they have
// a machine of their own, so these figures are a lower bound for the relay path.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createAdaptorServer } from '@hono/node-server';
import { enrollAgent } from '../src/agent/enroll.js';
import { loadState, type AgentState } from '../src/agent/state.js';
import { sealEnvelope, type Envelope } from '../src/protocol/envelope.js';
import { composeRelay } from '../src/relay/compose.js';
import { silentLogger } from '../src/server/logger.js';
import { mountBaseline } from './baseline-route.js';
import { startBenchServer, inventoryOfSize, type BenchServer } from './fixtures.js';
import { load, startBare } from './ingest.js';

async function token(server: BenchServer, role: 'agent' | 'relay', uses: number): Promise<string> {
  const res = await fetch(`${server.url}/v1/admin/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ uses, ttlSeconds: 3600, role }),
  });
  return ((await res.json()) as { token: string }).token;
}

async function startRelay(server: BenchServer, dir: string, upstream: string, receiptWaitMs: number) {
  await enrollAgent(server.ctx, { serverUrl: upstream, token: await token(server, 'relay', 1), stateDir: dir });
  const relay = await composeRelay(
    server.ctx,
    { stateDir: dir, upstream, spoolMaxBytes: 1 << 30, receiptWaitMs, revocationIntervalMs: 60_000 },
    silentLogger,
    () => '127.0.0.1',
  );
  const http = createAdaptorServer({ fetch: relay.app.fetch, hostname: '127.0.0.1' });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  await relay.start();
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    relay,
    close: async () => {
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await relay.stop();
    },
  };
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
const round2 = (x: number) => Math.round(x * 100) / 100;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1]!;

export async function benchRelay(
  opts: { envelopes?: number; latencySamples?: number; agents?: number; rounds?: number } = {},
): Promise<Record<string, unknown>> {
  const total = opts.envelopes ?? 3000;
  const rounds = opts.rounds ?? 3;
  const samples = opts.latencySamples ?? 60;
  const agentCount = opts.agents ?? 16;
  const server = await startBenchServer(
    { ingestPolicy: { messageBurst: 1e9, messagesPerSecond: 1e9, byteBurst: 1e15, bytesPerSecond: 1e15 } },
    (app) => mountBaseline(app, 'baseline'),
  );
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-bench-relay-'));
  const relays: { close(): Promise<void> }[] = [];
  const bare = await startBare();
  try {
    await server.database.withSession((run) => run(`INSERT INTO agents (id, name, role) VALUES ('baseline', 'baseline', 'agent')`));
    const r = await startRelay(server, join(dir, 'relay-r'), server.url, 10_000);
    relays.push(r);
    const s = await startRelay(server, join(dir, 'relay-s'), r.url, 10_000);
    relays.push(s);
    const agentToken = await token(server, 'agent', agentCount);
    const agents: AgentState[] = [];
    for (let i = 0; i < agentCount; i++) {
      await enrollAgent(server.ctx, { serverUrl: server.url, token: agentToken, stateDir: join(dir, `agent-${i}`) });
      agents.push(await loadState(server.ctx.crypto, join(dir, `agent-${i}`)));
    }
    const inventory = inventoryOfSize(4096, 'bench-relay');
    const gz = new Uint8Array(gzipSync(inventory));
    let counter = 0;
    const seal = async (i: number): Promise<Envelope> =>
      (
        await sealEnvelope(server.ctx, {
          sender: agents[i % agentCount]!.keys,
          recipient: server.identity.agreement,
          type: 'inventory',
          contentType: 'application/json',
          contentEncoding: 'gzip',
          counter: ++counter,
          plaintext: gz,
          credential: agents[i % agentCount]!.agent.credential,
        })
      ).envelope;
    const post = (url: string, body: unknown) =>
      fetch(`${url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

    // Latency, one envelope at a time: direct, one hop, two hops.
    const latency: Record<string, { p50: number; p90: number }> = {};
    for (const [name, url] of [
      ['direct', server.url],
      ['oneHop', r.url],
      ['twoHops', s.url],
    ] as const) {
      const ms: number[] = [];
      for (let i = 0; i < samples; i++) {
        const envelope = await seal(i);
        const t = performance.now();
        const res = await post(url, envelope);
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`${name}: HTTP ${res.status}`);
        ms.push(performance.now() - t);
      }
      latency[name] = { p50: round2(pct(ms, 0.5)), p90: round2(pct(ms, 0.9)) };
    }

    // Rounds alternate: relay-batched sealed ingest through a relay answering "queued" at once (timed
    // from the first batch posted until its spool is empty: every envelope forwarded in relay batches,
    // stored, its receipt verified), then the bare baseline for 5 s.
    const fast = await startRelay(server, join(dir, 'relay-q'), server.url, 0);
    relays.push(fast);
    // Signatures made with the server's key while forwarding (one per batch receipt, §10.1), told
    // apart from the relays' layer signatures in this shared process by the signing key.
    const crypto = server.ctx.crypto;
    const sign = crypto.ed25519Sign.bind(crypto);
    const serverSeed = server.identity.signing.privateKey;
    let serverSignatures = 0;
    crypto.ed25519Sign = (seed, message) => {
      if (seed.length === serverSeed.length && seed.every((b, k) => b === serverSeed[k])) serverSignatures++;
      return sign(seed, message);
    };
    const baselineFile = join(dir, 'plain.jsonl');
    await writeFile(baselineFile, inventory);
    const perRound: { accepted: number; forwarded: number; bare: number; ratio: number; bareServerCpuMs: number }[] = [];
    for (let round = 0; round < rounds; round++) {
      const envelopes: Envelope[] = [];
      for (let i = 0; i < total; i++) envelopes.push(await seal(i));
      const start = performance.now();
      for (let i = 0; i < total; i += 100) {
        const res = await post(fast.url, { envelopes: envelopes.slice(i, i + 100) });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`relay batch: HTTP ${res.status}`);
      }
      const acceptedSeconds = (performance.now() - start) / 1000;
      while (fast.relay.spool.stats().depth > 0) await new Promise((resolve) => setTimeout(resolve, 20));
      const forwarded = Math.round(total / ((performance.now() - start) / 1000));
      const b = await load(bare.url, '/ingest', baselineFile, 5, bare.child.pid);
      perRound.push({
        accepted: Math.round(total / acceptedSeconds),
        forwarded,
        bare: b.reqPerSec,
        ratio: round2(forwarded / b.reqPerSec),
        bareServerCpuMs: b.cpuPerRequest.serverMs ?? -1,
      });
    }
    crypto.ed25519Sign = sign;
    const ratios = perRound.map((r) => r.ratio);
    const mid = perRound.find((r) => r.ratio === median(ratios))!;
    return {
      ingest: {
        ratioVsBare: median(ratios),
        ratioVsBareRange: [Math.min(...ratios), Math.max(...ratios)],
        targets: { issue12: 2, issue17: 0.8 },
        relayBatchedSealedPerSecond: mid.forwarded,
        bareUnsealedPerRequestPerSecond: mid.bare,
        rounds: perRound,
        note: 'relay-batched sealed ingest (batches of up to 100 envelopes, every check, signed receipts verified by the relay; relay and server share this process) against the bare unsealed per-request baseline (its own process and database, no Latchkey code), alternating rounds, median round',
      },
      database: 'postgresql',
      inventoryBytes: inventory.length,
      agents: agentCount,
      latencyMs: {
        ...latency,
        addedOneHopP50: round2(latency.oneHop!.p50 - latency.direct!.p50),
        addedTwoHopsP50: round2(latency.twoHops!.p50 - latency.direct!.p50),
        note: 'one envelope at a time; the relays wait for the server receipt (fsync on accept included)',
      },
      forwarding: {
        envelopes: total,
        acceptedPerSecond: mid.accepted,
        forwardedPerSecond: mid.forwarded,
        serverSignatures,
        serverSignaturesPerEnvelope: round2(serverSignatures / (total * rounds)),
        note: 'accepted = checked, spooled with fsync and answered queued; forwarded = until the spool is empty (stored by the server, one batch receipt per forwarded batch verified by the relay); serverSignatures = Ed25519 signatures made with the server key over every round',
      },
    };
  } finally {
    for (const relay of relays.reverse()) await relay.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
    await bare.stop();
    await server.close();
  }
}
