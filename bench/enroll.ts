// Enrollments per second on PostgreSQL over real HTTP on loopback: sequential, and 32 concurrent.
// Each enrollment is the full protocol: client key generation, discovery pinning, sealed request,
// server open + proofs + token transaction + audit, signed response verified by the client.
import { getJson, postJson } from '../src/agent/http.js';
import { pinServer } from '../src/protocol/discovery.js';
import { sealEnrollRequest, verifyEnrollResponse } from '../src/protocol/enrollment.js';
import { generateKeySet } from '../src/protocol/keys.js';
import { parseToken } from '../src/protocol/token.js';
import { createToken, startBenchServer, type BenchServer } from './fixtures.js';

async function enrollOnce(server: BenchServer, token: string, n: number): Promise<void> {
  const ctx = server.ctx;
  const t = parseToken(token);
  const pinned = pinServer(await getJson(`${server.url}/.well-known/latchkey`), t.serverFingerprint);
  const keys = await generateKeySet(ctx);
  const { request, nonce } = await sealEnrollRequest(ctx, t, pinned, keys, `bench-${n}`);
  await verifyEnrollResponse(ctx.crypto, pinned, await postJson(`${server.url}/v1/enroll`, request), nonce);
}

async function run(
  server: BenchServer,
  concurrency: number,
  seconds: number,
  offset: number,
): Promise<{ enrollments: number; perSecond: number }> {
  const token = await createToken(server, 10_000);
  let n = offset;
  let done = 0;
  const until = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        await enrollOnce(server, token, n++);
        done++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  return { enrollments: done, perSecond: Math.round(done / elapsed) };
}

export async function benchEnroll(): Promise<Record<string, unknown>> {
  const server = await startBenchServer();
  try {
    await run(server, 4, 1, 0); // warm-up
    return {
      database: 'postgresql',
      note: 'client and server in one process on loopback (client-side crypto included)',
      sequential: await run(server, 1, 4, 1_000_000),
      concurrent32: await run(server, 32, 4, 2_000_000),
    };
  } finally {
    await server.close();
  }
}
