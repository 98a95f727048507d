// What the GLPI forwarding outbox costs ingest: the storing statement (group commit, store-batcher.ts)
// on PostgreSQL with 0, 1 and 2 active forwarding targets (each stored inventory then also writes one
// outbox row per target, in the same statement). Rounds alternate the three settings so drift on a
// shared machine hits them alike; figures are the median round's messages per second.
import { randomBytes } from 'node:crypto';
import { applyMigrations } from '../src/db/migrate.js';
import { readMigrations } from '../src/db/migrations-fs.js';
import { openPostgres } from '../src/db/postgres.js';
import { syncTargets, targetIdOf } from '../src/server/services/forward-outbox.js';
import { STORE_BATCH_SQL, StoreBatcher, type StoreItem } from '../src/server/services/store-batcher.js';
import { inventoryOfSize, POSTGRES_URL } from './fixtures.js';

const AGENTS = 256;
const CONCURRENCY = 64;

export async function benchForward(opts: { messages?: number; rounds?: number } = {}): Promise<Record<string, unknown>> {
  const messages = opts.messages ?? 4000;
  const rounds = opts.rounds ?? 3;
  const schema = `bench_${randomBytes(5).toString('hex')}`;
  const database = await openPostgres({ url: POSTGRES_URL, schema, maxConnections: 20 });
  try {
    await applyMigrations(database, await readMigrations());
    const values = Array.from({ length: AGENTS }, (_, i) => `('a${i}', 'a${i}', 'agent')`).join(',');
    const keys = Array.from(
      { length: AGENTS },
      (_, i) => `('a${i}', 'k${i}', '\\x00'::bytea, 'x${i}', '\\x00'::bytea, now() + interval '1 day')`,
    ).join(',');
    await database.withSession(async (run) => {
      await run(`INSERT INTO agents (id, name, role) VALUES ${values}`);
      await run(`INSERT INTO agent_keys (agent_id, sig_kid, sig_pub, kx_kid, kx_pub, expires_at) VALUES ${keys}`);
    });
    const batcher = new StoreBatcher(database.prepared(STORE_BATCH_SQL));
    const json = inventoryOfSize(4096, 'bench-forward');
    let counter = 0;
    const storeAll = async (): Promise<number> => {
      const items: StoreItem[] = Array.from({ length: messages }, (_, i) => ({
        kid: `k${i % AGENTS}`,
        mid: new Uint8Array(randomBytes(16)),
        counter: ++counter,
        window: 1e9,
        at: Date.now(),
        agentId: `a${i % AGENTS}`,
        size: json.length,
        byteBurst: 1e15,
        bytesPerSecond: 1e15,
        json,
      }));
      const start = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < items.length) {
            const v = await batcher.store(items[next++]!);
            if (v.refusal) throw new Error(`refused: ${v.refusal}`);
          }
        }),
      );
      return Math.round(messages / ((performance.now() - start) / 1000));
    };
    const targets = [0, 1, 2];
    const perRound: Record<number, number[]> = { 0: [], 1: [], 2: [] };
    for (let round = 0; round < rounds; round++) {
      for (const n of targets) {
        const urls = Array.from({ length: n }, (_, i) => `http://glpi-${i}.bench/`);
        await syncTargets(
          database.db,
          urls.map((u) => ({ id: targetIdOf(new URL(u)), url: u })),
          Date.now(),
        );
        perRound[n]!.push(await storeAll());
        await database.withSession((run) => run('TRUNCATE forward_outbox'));
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    return {
      database: 'postgresql',
      inventoryBytes: json.length,
      messagesPerRound: messages,
      concurrency: CONCURRENCY,
      rounds,
      note: 'messages stored per second through the group-commit storing statement, by active forwarding targets; no delivery running',
      storedPerSecond: { targets0: median(perRound[0]!), targets1: median(perRound[1]!), targets2: median(perRound[2]!) },
      ratio1vs0: Number((median(perRound[1]!) / median(perRound[0]!)).toFixed(2)),
      perRound,
    };
  } finally {
    await database.withSession((run) => run(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)).catch(() => {});
    await database.close();
  }
}
