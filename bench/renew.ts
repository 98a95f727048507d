// Renewals per second on PostgreSQL over real HTTP on loopback (spec §12): N enrolled agents each
// renew once. Renew envelopes are sealed beforehand (agents do that on their own machines) and sent
// once each by a separate load process (bench/load.ts, autocannon); every answer must be a 200.
// Each renewal is the full server path: lookup, signature, open, both proofs of the new keys, a
// credential (JWT) signed, one transaction (row lock, replay record, new key, superseded key, agent,
// audit) and a signed renew-response.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sealEnvelope } from '../src/protocol/envelope.js';
import { generateKeySet } from '../src/protocol/keys.js';
import { renewContent } from '../src/protocol/renewal.js';
import { startBenchServer } from './fixtures.js';
import { enrollAgents, load } from './ingest.js';

const AGENTS = 1000;

export async function benchRenew(agents = AGENTS): Promise<Record<string, unknown>> {
  const server = await startBenchServer();
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-bench-renew-'));
  try {
    const enrolled = await enrollAgents(server, agents);
    const sealStart = performance.now();
    const lines: string[] = [];
    for (const agent of enrolled) {
      const next = await generateKeySet(server.ctx);
      const { envelope } = await sealEnvelope(server.ctx, {
        sender: agent.keys,
        recipient: server.identity.agreement,
        type: 'renew',
        contentType: 'application/json',
        contentEncoding: 'identity',
        counter: 1,
        plaintext: (h) => renewContent(server.ctx.crypto, h.snd, h.mid, next, server.identity.agreement.publicKey),
      });
      lines.push(JSON.stringify(envelope));
    }
    const agentSealPerSecond = Math.round(lines.length / ((performance.now() - sealStart) / 1000));
    const file = join(dir, 'renew.jsonl');
    await writeFile(file, lines.join('\n'));
    const result = await load(server.url, '/v1/renew', file);
    if (result.non2xx > 0 || result.errors > 0) throw new Error(`renew load had failures: ${JSON.stringify(result)}`);
    if (!result.complete) throw new Error(`renew load did not finish in time: ${JSON.stringify(result)}`);
    const [row] = await server.database.withSession((run) => run(`SELECT count(*)::int AS n FROM agent_keys WHERE status = 'superseded'`));
    if (Number(row?.n) !== agents) throw new Error(`expected ${agents} superseded keys, found ${String(row?.n)}`);
    return {
      database: 'postgresql',
      crypto: server.ctx.crypto.name,
      agents,
      note: 'each enrolled agent renews once (sealed beforehand, sent once each over 16 connections); every answer a 200, every old key superseded',
      agentSealPerSecond,
      renew: result,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
    await server.close();
  }
}
