// The product's server for bench/ingest.ts, in a process of its own (like the bare baseline), so
// that its CPU (from /proc) and its CPU profile (`node --cpu-prof`) hold the server and nothing
// else: no sealing, no load generation. It is composed as `latchkey serve` composes it: pino at
// info (to stdout, which the bench discards) and prom-client metrics, on PostgreSQL; the in-app
// baselines (bench/baseline-route.ts) are mounted beside the product's routes.
//   node [--cpu-prof --cpu-prof-dir DIR] --import tsx bench/app-server.ts   (spawned with an IPC channel)
// Sends {url, adminToken} over IPC once it listens; on SIGTERM closes and exits (which writes the
// profile).
import { createLogger } from '../src/runtime/node.js';
import { createPromTelemetry } from '../src/runtime/metrics.js';
import { mountBaseline } from './baseline-route.js';
import { startBenchServer } from './fixtures.js';

export interface AppServerReady {
  url: string;
  adminToken: string;
}

const server = await startBenchServer(
  {
    logger: createLogger('info'),
    telemetry: createPromTelemetry(),
    ingestPolicy: { messageBurst: 1e9, messagesPerSecond: 1e9, byteBurst: 1e15, bytesPerSecond: 1e15 },
  },
  (app) => mountBaseline(app, 'baseline'),
);
// The baseline stores under an agent row too (inventories.agent_id is a foreign key).
await server.database.withSession((run) => run(`INSERT INTO agents (id, name, role) VALUES ('baseline', 'baseline', 'agent')`));
process.send!({ url: server.url, adminToken: server.adminToken } satisfies AppServerReady);
// Preloaded with bench/count-crypto.ts (bench/relay.ts): {counts} answers its Ed25519 counts so far.
process.on('message', (m: { counts?: true }) => {
  const counts = (globalThis as { __latchkeyBenchCrypto?: object }).__latchkeyBenchCrypto;
  if (m.counts && counts) process.send!({ ...counts });
});
process.once('SIGTERM', () => {
  void server.close().finally(() => process.exit(0));
});
