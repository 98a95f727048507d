// Externally provisioned agents (spec §20): import rate over HTTP into PostgreSQL (one transaction),
// and the first-message latency of agents known only to a key source, through a program
// (a shell script reading a file per kid) and through a Unix socket, against a registered agent's.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { b64u } from '../src/protocol/bytes.js';
import { sealEnvelope } from '../src/protocol/envelope.js';
import { generateKeySet, type KeySet } from '../src/protocol/keys.js';
import { createKeySource } from '../src/runtime/key-source.js';
import { silentLogger } from '../src/server/logger.js';
import { inventoryOfSize, startBenchServer, type BenchServer } from './fixtures.js';

const IMPORT = 2000;
const FIRST = 20;

const describe = (k: KeySet, name: string) => ({ name, signingKey: b64u(k.signing.publicKey), agreementKey: b64u(k.agreement.publicKey) });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function send(server: BenchServer, keys: KeySet): Promise<number> {
  const { envelope } = await sealEnvelope(server.ctx, {
    sender: keys,
    recipient: server.identity.agreement,
    type: 'inventory',
    contentType: 'application/json',
    contentEncoding: 'gzip',
    counter: Date.now(),
    plaintext: new Uint8Array(gzipSync(inventoryOfSize(4096, `bench-${keys.signing.kid}`))),
  });
  const started = performance.now();
  const res = await fetch(`${server.url}/v1/messages`, {
    method: 'POST',
    body: JSON.stringify(envelope),
    headers: { 'content-type': 'application/json' },
  });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`first message answered ${res.status}`);
  return performance.now() - started;
}

export async function benchProvisioning(): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-bench-prov-'));
  const answers = new Map<string, string>();
  const socketPath = join(dir, 'keys.sock');
  const sock = createServer((c) => {
    c.once('data', (d) => {
      const kid = String(d).trim().replace(/^kid:/, '');
      c.end(`${answers.get(kid) ?? '{"error":1,"message":"unknown"}'}\n`);
    });
  });
  await new Promise<void>((r) => sock.listen(socketPath, r));
  const program = join(dir, 'keys.sh');
  await writeFile(
    program,
    `#!/bin/sh\n[ "$1" = kid ] && cat "${dir}/$2.json" 2>/dev/null && exit 0\necho '{"error":1,"message":"unknown"}'\n`,
  );
  await chmod(program, 0o755);
  try {
    // Import rate.
    const server = await startBenchServer();
    let importResult: Record<string, unknown>;
    try {
      const keys = await Promise.all(Array.from({ length: IMPORT }, () => generateKeySet(server.ctx)));
      const ndjson = keys.map((k, i) => JSON.stringify(describe(k, `imp-${i}`))).join('\n');
      const started = performance.now();
      const res = await fetch(`${server.url}/v1/admin/agents/import`, {
        method: 'POST',
        headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ndjson }),
      });
      await res.arrayBuffer();
      const ms = performance.now() - started;
      if (res.status !== 200) throw new Error(`import answered ${res.status}`);
      importResult = { agents: IMPORT, ms: Math.round(ms), agentsPerSecond: Math.round(IMPORT / (ms / 1000)) };
    } finally {
      await server.close();
    }
    // First-message latency through each transport.
    const firstMessage: Record<string, unknown> = {};
    for (const via of ['exec', 'socket'] as const) {
      const transport = createKeySource(
        via === 'exec' ? { exec: program, timeoutMs: 5000 } : { socket: socketPath, timeoutMs: 5000 },
        silentLogger,
      );
      const s = await startBenchServer({ keySource: transport });
      try {
        const first: number[] = [];
        const second: number[] = [];
        for (let i = 0; i < FIRST; i++) {
          const k = await generateKeySet(s.ctx);
          const answer = JSON.stringify({ error: 0, data: describe(k, `${via}-${i}`) });
          answers.set(k.signing.kid, answer);
          await writeFile(join(dir, `${k.signing.kid}.json`), answer);
          first.push(await send(s, k));
          second.push(await send(s, k));
        }
        firstMessage[via] = { agents: FIRST, firstMedianMs: +median(first).toFixed(1), registeredMedianMs: +median(second).toFixed(1) };
      } finally {
        await s.close();
      }
    }
    return { database: 'postgresql', import: importResult, firstMessage };
  } finally {
    sock.close();
    await rm(dir, { recursive: true, force: true });
  }
}
