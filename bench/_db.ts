import { randomBytes } from 'node:crypto';
import { startBenchServer } from './fixtures.js';
import { sql } from 'drizzle-orm';
const server = await startBenchServer();
const db = server.database;
await db.withSession((run) => run(`INSERT INTO agents (id, name, role) VALUES ('b', 'b', 'agent')`));
const inv = JSON.stringify({ a: 'x'.repeat(4000) });
const N = 4000;
async function measure(name: string, fn: (i: number) => Promise<unknown>, conc = 16) {
  let next = 0;
  const c0 = process.cpuUsage(); const t0 = performance.now();
  await Promise.all(Array.from({ length: conc }, async () => { while (next < N) await fn(next++); }));
  const c = process.cpuUsage(c0); const el = performance.now() - t0;
  console.log(name.padEnd(28), { perSec: Math.round(N / el * 1000), cpuUs: Math.round((c.user + c.system) / N) });
}
const sel = db.prepared('SELECT 1 AS one');
await measure('prepared select 1', () => sel([]));
await measure('prepared select 1 (again)', () => sel([]));
const sel2 = db.prepared('SELECT $1::text AS x, $2::bytea AS y');
await measure('prepared select params', () => sel2(['abc', new Uint8Array(16)]));
const ins = db.prepared(`INSERT INTO inventories (agent_id, message_id, received_at, size, content) VALUES ($1::text, $2::bytea, now(), $3::int, $4::text::jsonb)`);
await measure('prepared insert 4k', () => ins(['b', new Uint8Array(randomBytes(16)), 4000, inv]));
await measure('unprepared execute select', () => db.db.execute(sql`SELECT ${'abc'}::text AS x`));
await server.close();
