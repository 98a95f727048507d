// `latchkey serve` on Node: bind the port first (so a port in use fails before anything is written),
// then open the database, migrate, load or create the identity and the bootstrap admin credential,
// and serve the one app. SIGTERM/SIGINT: stop accepting, finish in-flight requests, close the database.
import { randomBytes } from 'node:crypto';
import { access, constants, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import { pino } from 'pino';
import { openDatabase, type Database } from '../db/client.js';
import { applyMigrations } from '../db/migrate.js';
import { readMigrations } from '../db/migrations-fs.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { DEFAULT_FRESHNESS } from '../protocol/envelope.js';
import { composeServer } from '../server/compose.js';
import { pruneInventories } from '../server/services/inventory-store.js';
import type { Logger } from '../server/logger.js';
import type { App } from '../server/types.js';
import { ensureBootstrapAdmin } from './bootstrap-admin.js';
import type { ServeConfig } from './config.js';
import { DataDirLockedError } from './data-dir-lock.js';
import { ensurePrivateDir } from './data-dir-modes.js';
import { openEmbeddedDatabase } from './embedded-database.js';
import { selectCrypto } from './crypto.js';
import { StartupError } from './startup-error.js';
import { loadKeyRing } from './identity-store.js';
import { checkKeyRing, loadEndorsementChain } from '../server/services/server-keys.js';
import { createPromTelemetry } from './metrics.js';
import { gunzipBounded } from './zlib.js';
import { startMetricsListener, type MetricsListener } from './metrics-listener.js';
import { loadDocsAssets } from './docs-assets-node.js';

export { StartupError };

export interface RunningServer {
  url: string;
  /** Where /metrics is served when --metrics-listen moved it off the main port. */
  metricsUrl?: string;
  app: App;
  database: Database;
  fingerprint: string;
  close(): Promise<void>;
}

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'latchkey' },
    // Defence in depth: these keys never carry secrets in our code, but redact them if they ever do.
    redact: { paths: ['token', 'secret', 'authorization', '*.token', '*.secret', '*.authorization'], censor: '[redacted]' },
  });
}

export async function startServer(config: ServeConfig, logger: Logger = createLogger(config.logLevel)): Promise<RunningServer> {
  // Everything that only reads comes first; nothing is created until the port is ours.
  if (config.databaseUrl !== undefined) validateDatabaseUrl(config.databaseUrl);
  await checkDataDir(config.dataDir);

  let app: App | undefined;
  const server = createAdaptorServer({
    fetch: (req, env) =>
      app ? app.fetch(req, env) : new Response('{"error":{"code":"unavailable","message":"starting"}}', { status: 503 }),
    hostname: config.host,
  });
  await listen(server, config.port, config.host);
  const telemetry = createPromTelemetry();
  let metrics: MetricsListener | undefined;
  try {
    metrics = config.metricsListen
      ? await startMetricsListener(config.metricsListen, telemetry.exposition, config.metricsToken)
      : undefined;
  } catch (err) {
    await closeServer(server);
    throw err;
  }

  const createdDataDir = !(await exists(config.dataDir));
  let database: Database | undefined;
  try {
    await ensurePrivateDir(config.dataDir);
    database = await openAndMigrate(config, logger);
    const crypto = await selectCrypto(config.crypto);
    const ctx: ProtocolContext = { crypto, random: (n) => new Uint8Array(randomBytes(n)), now: () => Date.now() };
    const keyRing = await loadKeyRing(crypto, config);
    const identity = keyRing.current;
    // Agents on a previous key set must be able to move on: refuse to start without its chain.
    const ringProblem = await checkKeyRing(crypto, keyRing, await loadEndorsementChain(database.db, identity.fingerprint));
    if (ringProblem) throw new StartupError(ringProblem);
    const admin = await ensureBootstrapAdmin(database, config.dataDir);
    app = composeServer({
      database,
      identity,
      keyRing,
      ctx,
      logger,
      // With --metrics-listen, /metrics lives on its own address only.
      telemetry: metrics ? { ...telemetry, exposition: undefined } : telemetry,
      metricsToken: config.metricsToken,
      docsAssets: loadDocsAssets,
      clientAddress: (c) => getConnInfo(c).remote.address,
      gunzip: gunzipBounded,
      renewalPolicy: {
        ...(config.credentialTtlSeconds !== undefined ? { credentialTtlSeconds: config.credentialTtlSeconds } : {}),
        ...(config.renewOverlapSeconds !== undefined ? { overlapMs: config.renewOverlapSeconds * 1000 } : {}),
      },
    }).app;
    const addr = server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    const url = `http://${host}:${addr.port}`;
    logger.info(
      {
        url,
        fingerprint: identity.fingerprint,
        accepted: keyRing.accepted.map((id) => id.fingerprint),
        database: database.kind,
        bootstrapAdmin: admin,
      },
      'latchkey listening',
    );
    const db = database;
    const stopRetention = startRetention(db, config, ctx.now, logger);
    return {
      url,
      ...(metrics ? { metricsUrl: metrics.url } : {}),
      app,
      database: db,
      fingerprint: identity.fingerprint,
      close: async () => {
        stopRetention();
        await closeServer(server);
        await metrics?.close();
        await db.close();
      },
    };
  } catch (err) {
    await closeServer(server);
    await metrics?.close();
    await database?.close().catch(() => {});
    // A dir another process holds is theirs, even if it did not exist when we looked.
    if (createdDataDir && !(err instanceof DataDirLockedError)) await rm(config.dataDir, { recursive: true, force: true });
    throw err instanceof StartupError ? err : new StartupError(startupMessage(err));
  }
}

/** Prunes stored inventories and old replay records at start and every 10 minutes. */
function startRetention(database: Database, config: ServeConfig, now: () => number, logger: Logger): () => void {
  const policy = {
    maxAgeDays: config.retentionDays,
    maxPerAgent: config.retentionPerAgent,
    // Replay records older than the freshness window can go: such messages are refused as stale.
    replayRecordMs: DEFAULT_FRESHNESS.maxAgeMs + 3600_000,
  };
  const run = () =>
    pruneInventories(database.db, policy, now()).then(
      (pruned) => (pruned.inventories || pruned.replayRecords ? logger.info({ pruned }, 'retention') : undefined),
      (err: unknown) => logger.warn({ err: String(err) }, 'retention failed'),
    );
  void run();
  const timer = setInterval(run, 10 * 60_000);
  timer.unref();
  return () => clearInterval(timer);
}

async function openAndMigrate(config: ServeConfig, logger: Logger): Promise<Database> {
  let database: Database;
  try {
    database = config.databaseUrl
      ? await openDatabase({ url: config.databaseUrl })
      : await openEmbeddedDatabase(config.dataDir, 'latchkey serve', (outcome) =>
          typeof outcome === 'string'
            ? logger.debug({ embeddedDatabase: outcome }, 'embedded database')
            : logger.info({ embeddedDatabase: 'initdb', reason: outcome.fallback }, 'embedded database initialised without the snapshot'),
        );
    await database.ping();
  } catch (err) {
    if (err instanceof DataDirLockedError) throw err;
    throw new StartupError(`cannot connect to the database: ${startupMessage(err)}`);
  }
  try {
    await applyMigrations(database, await readMigrations());
  } catch (err) {
    await database.close().catch(() => {});
    throw new StartupError(`database migration failed: ${startupMessage(err)}`);
  }
  return database;
}

function validateDatabaseUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new StartupError('DATABASE_URL is not a valid URL (expected postgres://user@host:port/database)');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new StartupError('DATABASE_URL must start with postgres:// or postgresql://');
  }
}

async function checkDataDir(dir: string): Promise<void> {
  let info;
  try {
    info = await stat(dir);
  } catch {
    return; // absent: created later
  }
  if (!info.isDirectory()) throw new StartupError(`data dir ${dir} is not a directory`);
  try {
    await access(dir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch {
    throw new StartupError(`data dir ${dir} is not readable and writable`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function listen(server: ReturnType<typeof createAdaptorServer>, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (err.code === 'EADDRINUSE') reject(new StartupError(`port ${port} on ${host} is already in use`));
      else if (err.code === 'EACCES') reject(new StartupError(`no permission to listen on ${host}:${port}`));
      else reject(new StartupError(`cannot listen on ${host}:${port}: ${err.code ?? err.message}`));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

function closeServer(server: ReturnType<typeof createAdaptorServer>): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    // Idle keep-alive sockets would hold close() open; in-flight requests still finish.
    if ('closeIdleConnections' in server) (server as { closeIdleConnections(): void }).closeIdleConnections();
  });
}

/** One line, no stack, no secrets (connection strings are never echoed). */
function startupMessage(err: unknown): string {
  if (err instanceof StartupError) return err.message;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ECONNREFUSED') return 'connection refused';
  if (e?.code === 'ENOTFOUND') return 'host not found';
  if (e?.code === 'CONNECT_TIMEOUT' || e?.code === 'ETIMEDOUT') return 'connection timed out';
  if (e?.code === 'EACCES') return 'permission denied';
  if (typeof e?.message === 'string') return e.message.split('\n')[0]!.replace(/postgres(ql)?:\/\/\S+/g, '<database-url>');
  return 'unknown error';
}

/** Graceful shutdown on SIGTERM/SIGINT; a second signal or 15 s forces the exit. */
export function handleSignals(running: RunningServer, logger: Logger): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
