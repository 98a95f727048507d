// The sealed path alone, for working on its CPU: the product's server in its own process (as
// bench/ingest.ts runs it), 4 KiB gzip inventories sealed beforehand and each sent once, and the
// server's CPU per message from /proc over every round (no req/s: meaningful on a loaded machine).
//   node --import tsx bench/sealed-cpu.ts [MESSAGES_PER_ROUND] [ROUNDS] [--profile]
// With --profile the server runs under --cpu-prof and the sealed phases are summarised
// (bench/profile-summary.ts) per message.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProtocolContext } from '../src/protocol/crypto/types.js';
import { selectCrypto } from '../src/runtime/crypto.js';
import { enrollAgents, load, mainThreadProfile, profileDir, sealInventoryLines, startApp } from './ingest.js';
import { inventoryOfSize, random } from './fixtures.js';
import { summarise } from './profile-summary.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const perRound = Number(args[0] ?? 2000);
const rounds = Number(args[1] ?? 3);
const profiling = profileDir();
if (profiling) await mkdir(profiling, { recursive: true });
const dir = await mkdtemp(join(tmpdir(), 'latchkey-sealed-cpu-'));
const server = await startApp(profiling);
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
try {
  const ctx: ProtocolContext = { crypto: await selectCrypto(), random, now: () => Date.now() };
  const agents = await enrollAgents({ url: server.url, adminToken: server.adminToken, ctx });
  const inventory = inventoryOfSize(4096, 'bench-4096');
  let counter = 0;
  const seal = async (count: number) => {
    const lines = await sealInventoryLines(ctx, agents, inventory, count, () => ++counter);
    const file = join(dir, `sealed-${counter}.jsonl`);
    await writeFile(file, lines.join('\n'));
    return file;
  };
  // Warm-up: every agent's first message takes the lookup path; the JIT settles.
  await load(server.url, '/v1/messages', await seal(agents.length * 2));
  const results: { serverMs: number; postgresMs: number | undefined; requests: number; fromUs: number; toUs: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    const file = await seal(perRound);
    const fromUs = nowUs();
    const res = await load(server.url, '/v1/messages', file, undefined, server.child.pid);
    if (res.non2xx > 0 || !res.complete) throw new Error(`sealed load failed: ${JSON.stringify(res)}`);
    results.push({
      serverMs: res.cpuPerRequest.serverMs!,
      postgresMs: res.cpuPerRequest.postgresMs,
      requests: res.requests,
      fromUs,
      toUs: nowUs(),
    });
  }
  await server.stop();
  const out: Record<string, unknown> = {
    messagesPerRound: perRound,
    serverCpuMsPerMessage: results.map((r) => r.serverMs),
    postgresCpuMsPerMessage: results.map((r) => r.postgresMs),
  };
  if (profiling) {
    const file = await mainThreadProfile(server.profileDir!);
    const profile = JSON.parse(await readFile(file, 'utf8')) as Parameters<typeof summarise>[0];
    const requests = results.reduce((a, r) => a + r.requests, 0);
    const s = summarise(profile, { from: results[0]!.fromUs, to: results.at(-1)!.toUs, requests, top: 40 });
    out.profile = file;
    out.window = { from: results[0]!.fromUs, to: results.at(-1)!.toUs, requests };
    out.busyMsPerMessage = Number((s.window.busyMs / requests).toFixed(4));
    out.byCategory = Object.fromEntries(s.byCategory.map((c) => [c.name, c.msPerRequest]));
  }
  console.log(JSON.stringify(out, null, 2));
} finally {
  await server.stop();
  await rm(dir, { recursive: true, force: true });
}
