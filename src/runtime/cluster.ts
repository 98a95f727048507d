// `latchkey serve --workers N` (node:cluster): N worker processes share the port (the primary hands
// connections round-robin); each builds its own per-process state from the one composition root
// (runtime/node.ts startServer). The primary only supervises: it runs the one-time preparation
// (migrations, identity, bootstrap admin: prepareOnce) before any worker starts, restarts a worker
// that dies with a growing pause, forwards SIGTERM/SIGINT/SIGHUP and exits once every worker has
// drained. /metrics is the sum over workers (prom-client's AggregatorRegistry, asked of the primary).
// Everything that must hold exactly across workers (replay, counters, stored-bytes budgets, one-use
// tokens, revocation) lives in PostgreSQL, which is why more than one worker needs PostgreSQL.
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { LatchkeyError } from '../server/errors.js';
import type { Logger } from '../server/logger.js';
import type { Telemetry } from '../server/telemetry.js';
import type { ServeConfig } from './config.js';
import { startMetricsListener, type MetricsListener } from './metrics-listener.js';
import { handleSignals, prepareOnce, startServer, StartupError } from './node.js';

/** The environment variable a worker learns its slot (1..N) from; slot 1 runs the background loops. */
const WORKER_ID = 'LATCHKEY_WORKER_ID';
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 10_000;
/** A worker that lived this long before dying restarts after the shortest pause again. */
const STABLE_MS = 30_000;
const DRAIN_MS = 20_000;

type FromWorker =
  | { type: 'latchkey:ready'; url: string; fingerprint: string }
  | { type: 'latchkey:failed'; message: string }
  | { type: 'latchkey:metrics-request'; id: number };

type ToWorker =
  { type: 'latchkey:metrics'; id: number; contentType: string; body: string } | { type: 'latchkey:metrics'; id: number; error: string };

export interface RunningCluster {
  url: string;
  fingerprint: string;
  metricsUrl?: string | undefined;
}

export const isWorker = (): boolean => cluster.isWorker;

interface Slot {
  id: number;
  worker?: Worker | undefined;
  startedAt: number;
  /** Deaths in a row without STABLE_MS of life in between: the next pause doubles with each. */
  failures: number;
  timer?: NodeJS.Timeout | undefined;
}

/** The primary: prepares once, starts N workers, resolves once all are listening. */
export async function runPrimary(config: ServeConfig, count: number, logger: Logger): Promise<RunningCluster> {
  const prepared = await prepareOnce(config, logger);
  logger.info({ workers: count, bootstrapAdmin: prepared.admin, fingerprint: prepared.fingerprint }, 'prepared; starting workers');

  const own = new Registry();
  const restarts = new Counter({ name: 'latchkey_worker_restarts_total', help: 'Workers restarted after dying.', registers: [own] });
  const aggregator = new AggregatorRegistry();
  const slots: Slot[] = Array.from({ length: count }, (_, i) => ({ id: i + 1, startedAt: 0, failures: 0 }));
  new Gauge({
    name: 'latchkey_workers',
    help: 'Worker processes running.',
    registers: [own],
    collect() {
      this.set(slots.filter((s) => s.worker && !s.worker.isDead()).length);
    },
  });
  const exposition = async () => ({
    contentType: aggregator.contentType,
    body: `${await aggregator.clusterMetrics()}${await own.metrics()}`,
  });

  let metrics: MetricsListener | undefined;
  if (config.metricsListen) metrics = await startMetricsListener(config.metricsListen, exposition, config.metricsToken);

  let stopping = false;
  let ready: RunningCluster | undefined;
  let startup: { resolve: (r: RunningCluster) => void; reject: (e: Error) => void } | undefined;
  const started = new Promise<RunningCluster>((resolve, reject) => (startup = { resolve, reject }));
  const readyIds = new Set<number>();

  const fork = (slot: Slot) => {
    slot.timer = undefined;
    slot.startedAt = Date.now();
    const worker = cluster.fork({ [WORKER_ID]: String(slot.id) });
    slot.worker = worker;
    worker.on('message', (m: FromWorker) => {
      if (m?.type === 'latchkey:metrics-request') {
        exposition().then(
          (r) => worker.isConnected() && worker.send({ type: 'latchkey:metrics', id: m.id, ...r } satisfies ToWorker),
          (err: unknown) =>
            worker.isConnected() && worker.send({ type: 'latchkey:metrics', id: m.id, error: String(err) } satisfies ToWorker),
        );
      } else if (m?.type === 'latchkey:ready') {
        readyIds.add(slot.id);
        if (!ready && readyIds.size === count) {
          ready = { url: m.url, fingerprint: m.fingerprint, ...(metrics ? { metricsUrl: metrics.url } : {}) };
          startup?.resolve(ready);
        }
      } else if (m?.type === 'latchkey:failed' && !ready) {
        startup?.reject(new StartupError(m.message));
      }
    });
    worker.on('exit', (code, signal) => {
      if (slot.worker === worker) slot.worker = undefined;
      if (stopping) return;
      if (!ready) {
        startup?.reject(new StartupError(`worker ${slot.id} exited during start-up (${signal ?? `code ${code}`})`));
        return;
      }
      const lived = Date.now() - slot.startedAt;
      slot.failures = lived >= STABLE_MS ? 1 : slot.failures + 1;
      const pause = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** (slot.failures - 1));
      logger.warn({ worker: slot.id, workerPid: worker.process.pid, code, signal, restartInMs: pause }, 'worker died; restarting');
      restarts.inc();
      slot.timer = setTimeout(() => fork(slot), pause);
    });
  };

  const stopAll = (signal: NodeJS.Signals) => {
    for (const s of slots) {
      clearTimeout(s.timer);
      s.timer = undefined;
      if (s.worker && !s.worker.isDead()) s.worker.process.kill(signal);
    }
  };

  for (const slot of slots) fork(slot);
  try {
    await started;
  } catch (err) {
    stopping = true;
    stopAll('SIGTERM');
    await allExited(slots, DRAIN_MS);
    await metrics?.close();
    throw err;
  }
  superviseSignals(logger, slots, () => (stopping = true), stopAll, metrics);
  return ready!;
}

/** Resolves once no slot has a live worker (or after `ms`); true when all are gone. */
async function allExited(slots: Slot[], ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (slots.some((s) => s.worker && !s.worker.isDead())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

/**
 * SIGTERM/SIGINT: passed to every worker, which drains (stops accepting, finishes its requests,
 * closes its database); the primary exits 0 once all exited 0. A second signal, or DRAIN_MS, kills
 * them. SIGHUP is passed on (each worker re-reads the TLS pair).
 */
function superviseSignals(
  logger: Logger,
  slots: Slot[],
  markStopping: () => void,
  stopAll: (signal: NodeJS.Signals) => void,
  metrics: MetricsListener | undefined,
): void {
  let stopping = false;
  const codes: (number | null)[] = [];
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      stopAll('SIGKILL');
      process.exit(1);
    }
    stopping = true;
    markStopping();
    logger.info({ signal }, 'shutting down workers');
    // No worker is forked once stopping: the live ones are all there is.
    for (const s of slots) s.worker?.on('exit', (code) => codes.push(code));
    stopAll(signal);
    void allExited(slots, DRAIN_MS).then(async (done) => {
      if (!done) stopAll('SIGKILL');
      await metrics?.close();
      process.exit(done && codes.every((c) => c === 0) ? 0 : 1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    for (const s of slots) if (s.worker && !s.worker.isDead()) s.worker.process.kill('SIGHUP');
  });
}

/** A worker: serves, then tells the primary it is ready (or why it could not start, then exits). */
export async function runWorker(config: ServeConfig, logger: Logger): Promise<void> {
  const id = Number(process.env[WORKER_ID]);
  try {
    const running = await startServer(config, logger, {
      kind: 'worker',
      id,
      background: id === 1,
      exposition: askPrimary(),
      onRegistry: (registry) => {
        new AggregatorRegistry(); // answers the primary's prom-client requests from this process
        AggregatorRegistry.setRegistries([registry]);
      },
    });
    handleSignals(running, logger, true);
    process.send!({ type: 'latchkey:ready', url: running.url, fingerprint: running.fingerprint } satisfies FromWorker);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.send!({ type: 'latchkey:failed', message } satisfies FromWorker, () => process.exit(1));
  }
}

/** /metrics on the main port, from a worker: the whole cluster's, as the primary aggregates it. */
function askPrimary(): Telemetry['exposition'] {
  let next = 0;
  const waiting = new Map<number, (m: ToWorker) => void>();
  process.on('message', (m: ToWorker) => {
    if (m?.type === 'latchkey:metrics') waiting.get(m.id)?.(m);
  });
  return () =>
    new Promise((resolve, reject) => {
      const id = ++next;
      const timer = setTimeout(() => answer({ type: 'latchkey:metrics', id, error: 'timeout' }), 10_000);
      const answer = (m: ToWorker) => {
        clearTimeout(timer);
        waiting.delete(id);
        if ('error' in m) reject(new LatchkeyError('unavailable', 'metrics from the other workers are unavailable'));
        else resolve({ contentType: m.contentType, body: m.body });
      };
      waiting.set(id, answer);
      process.send!({ type: 'latchkey:metrics-request', id } satisfies FromWorker);
    });
}
