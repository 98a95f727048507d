// `latchkey serve` on Node: bind the port first (so a port in use fails before anything is written),
// then open the database, migrate, load or create the identity and the bootstrap admin credential,
// and serve the one app. SIGTERM/SIGINT: stop accepting, finish in-flight requests, close the database.
import { randomBytes } from 'node:crypto';
import { access, constants, readFile, rm, stat } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createSecureContext } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import { pino } from 'pino';
import { openDatabase, type Database } from '../db/client.js';
import { applyMigrations } from '../db/migrate.js';
import { readMigrations } from '../db/migrations-fs.js';
import type { CryptoBackend, ProtocolContext } from '../protocol/crypto/types.js';
import type { Registry as PromRegistry } from 'prom-client';
import type { KeyRing } from '../server/key-ring.js';
import { DEFAULT_FRESHNESS } from '../protocol/envelope.js';
import { clientAddressFrom, parseTrustedProxies } from '../server/client-address.js';
import { composeServer } from '../server/compose.js';
import { pruneInventories } from '../server/services/inventory-store.js';
import { forwardStatus, type TargetStatus } from '../server/services/forward-outbox.js';
import type { Telemetry } from '../server/telemetry.js';
import { DEFAULT_FORWARD, parseTargets, startForwarder, type ForwardConfig } from './glpi-forwarder.js';
import type { Logger } from '../server/logger.js';
import type { App } from '../server/types.js';
import { ensureBootstrapAdmin, type BootstrapOutcome } from './bootstrap-admin.js';
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
import { createKeySource, socketReachable } from './key-source.js';

export { StartupError };

export interface RunningServer {
  url: string;
  /** Where /metrics is served when --metrics-listen moved it off the main port. */
  metricsUrl?: string;
  app: App;
  database: Database;
  fingerprint: string;
  /** With --tls-cert/--tls-key: reads both files again and serves them to new connections; on a bad
   *  pair the old one stays (false, logged at error). Without TLS: nothing to reload (true). */
  reloadTls(): Promise<boolean>;
  close(): Promise<void>;
}

interface TlsPair {
  cert: Buffer;
  key: Buffer;
}

/** Reads and checks a certificate/key pair (createSecureContext refuses a key that is not the cert's). */
async function readTlsPair(certFile: string, keyFile: string): Promise<TlsPair> {
  let pair: TlsPair;
  try {
    pair = { cert: await readFile(certFile), key: await readFile(keyFile) };
  } catch (err) {
    throw new StartupError(`cannot read the TLS certificate or key: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    createSecureContext(pair);
  } catch (err) {
    // OpenSSL's reason (bad PEM, key mismatch), never the key bytes.
    throw new StartupError(`the TLS certificate and key are not a usable pair: ${String((err as Error).message).split('\n')[0]}`);
  }
  return pair;
}

export function createLogger(level: string): Logger {
  return pino({
    level,
    // The pid says which process wrote a line (one of several with `serve --workers`).
    base: { service: 'latchkey', pid: process.pid },
    // Defence in depth: these keys never carry secrets in our code, but redact them if they ever do.
    redact: { paths: ['token', 'secret', 'authorization', '*.token', '*.secret', '*.authorization'], censor: '[redacted]' },
  });
}

/**
 * How this process serves: alone (`--workers 1`: it also prepares the database and runs the
 * background loops), or as one worker of `--workers N` (runtime/cluster.ts), after the primary ran
 * `prepareOnce`: then it only opens the database and loads its keys, and only the worker given
 * `background` runs retention, GLPI forwarding and the database-read gauges.
 */
export type ServeRole =
  | { kind: 'single' }
  | {
      kind: 'worker';
      id: number;
      background: boolean;
      /** The cluster-wide /metrics (asked of the primary); absent when the primary serves --metrics-listen. */
      exposition: Telemetry['exposition'];
      /** This worker's registry, handed to the primary's aggregator. */
      onRegistry: (registry: PromRegistry) => void;
    };

/** What every start checks before anything is bound or written; returns the TLS pair when configured. */
async function checkServeConfig(config: ServeConfig) {
  if (config.databaseUrl !== undefined) validateDatabaseUrl(config.databaseUrl);
  const trusted = parseTrustedProxies(config.trustProxy ?? []);
  if ('invalid' in trusted) throw new StartupError(`--trust-proxy: not an address or CIDR: ${JSON.stringify(trusted.invalid)}`);
  validateForward(config);
  await checkDataDir(config.dataDir);
  const tlsFiles = config.tlsCert !== undefined && config.tlsKey !== undefined ? { cert: config.tlsCert, key: config.tlsKey } : undefined;
  const tls = tlsFiles ? await readTlsPair(tlsFiles.cert, tlsFiles.key) : undefined;
  return { trusted: trusted.cidrs, tlsFiles, tls };
}

/**
 * The start-up work that must happen once, whatever the number of processes: migrations, the server
 * identity (created on a first start), the key ring's endorsement chain check and the bootstrap admin
 * credential. Returns the open database with what it found.
 */
async function prepareDatabase(config: ServeConfig, logger: Logger) {
  await ensurePrivateDir(config.dataDir);
  const database = await openAndMigrate(config, logger);
  try {
    const crypto = await selectCrypto(config.crypto);
    const keyRing = await loadKeyRing(crypto, config);
    // Agents on a previous key set must be able to move on: refuse to start without its chain.
    const ringProblem = await checkKeyRing(crypto, keyRing, await loadEndorsementChain(database.db, keyRing.current.fingerprint));
    if (ringProblem) throw new StartupError(ringProblem);
    const admin = await ensureBootstrapAdmin(database, config.dataDir);
    return { database, crypto, keyRing, admin };
  } catch (err) {
    await database.close().catch(() => {});
    throw err;
  }
}

/**
 * `--workers N`, in the primary, before any worker starts: every check and the one-time preparation
 * (prepareDatabase), so that N workers never race on a fresh database; the port is tried first, so a
 * port in use still fails before anything is written.
 */
export async function prepareOnce(config: ServeConfig, logger: Logger): Promise<{ fingerprint: string; admin: BootstrapOutcome }> {
  await checkServeConfig(config);
  if (config.port !== 0) {
    const probe = createAdaptorServer({ fetch: () => new Response(null), hostname: config.host });
    await listen(probe, config.port, config.host);
    await closeServer(probe);
  }
  const createdDataDir = !(await exists(config.dataDir));
  try {
    const { database, keyRing, admin } = await prepareDatabase(config, logger);
    await database.close();
    return { fingerprint: keyRing.current.fingerprint, admin };
  } catch (err) {
    if (createdDataDir && !(err instanceof DataDirLockedError)) await rm(config.dataDir, { recursive: true, force: true });
    throw err instanceof StartupError ? err : new StartupError(startupMessage(err));
  }
}

export async function startServer(
  config: ServeConfig,
  logger: Logger = createLogger(config.logLevel),
  role: ServeRole = { kind: 'single' },
): Promise<RunningServer> {
  // Everything that only reads comes first; nothing is created until the port is ours.
  const { trusted, tlsFiles, tls } = await checkServeConfig(config);

  let app: App | undefined;
  const server = createAdaptorServer({
    fetch: (req, env) =>
      app ? app.fetch(req, env) : new Response('{"error":{"code":"unavailable","message":"starting"}}', { status: 503 }),
    hostname: config.host,
    ...(tls ? { createServer: createHttpsServer, serverOptions: { ...tls } } : {}),
  });
  await listen(server, config.port, config.host);
  const telemetry = createPromTelemetry();
  let metrics: MetricsListener | undefined;
  try {
    // A worker never listens for metrics itself: the primary serves --metrics-listen for all of them.
    metrics =
      config.metricsListen && role.kind === 'single'
        ? await startMetricsListener(config.metricsListen, telemetry.exposition, config.metricsToken)
        : undefined;
  } catch (err) {
    await closeServer(server);
    throw err;
  }
  // /metrics on the main port: this process's registry alone, the whole cluster's, or none (moved).
  let exposition = metrics ? undefined : telemetry.exposition;
  if (role.kind === 'worker') {
    role.onRegistry(telemetry.registry);
    exposition = config.metricsListen ? undefined : role.exposition;
  }
  const background = role.kind === 'single' || role.background;

  const createdDataDir = role.kind === 'single' && !(await exists(config.dataDir));
  let database: Database | undefined;
  try {
    let keyRing: KeyRing;
    let crypto: CryptoBackend;
    let admin: BootstrapOutcome | undefined;
    if (role.kind === 'single') {
      ({ database, keyRing, crypto, admin } = await prepareDatabase(config, logger));
    } else {
      // The primary migrated, made the identity and checked the ring: open and read only.
      database = await openDatabaseOnly(config, logger);
      crypto = await selectCrypto(config.crypto);
      keyRing = await loadKeyRing(crypto, config);
    }
    const ctx: ProtocolContext = { crypto, random: (n) => new Uint8Array(randomBytes(n)), now: () => Date.now() };
    const identity = keyRing.current;
    const keySource = config.keyRequest ? createKeySource(config.keyRequest, logger) : undefined;
    if (config.keyRequest?.socket && background) {
      // The health check at start: a socket that is down is reported (the program, if given, answers meanwhile).
      const up = await socketReachable(config.keyRequest.socket, config.keyRequest.timeoutMs);
      if (!up)
        logger.warn({ socket: config.keyRequest.socket, fallback: config.keyRequest.exec ? 'exec' : 'none' }, 'key source socket is down');
    }
    app = composeServer({
      keySource,
      database,
      identity,
      keyRing,
      ctx,
      logger,
      telemetry: { ...telemetry, exposition },
      metricsToken: config.metricsToken,
      trustForwardedProto: config.trustForwardedProto,
      docsAssets: loadDocsAssets,
      clientAddress: clientAddressFrom((c) => getConnInfo(c).remote.address, trusted),
      gunzip: gunzipBounded,
      renewalPolicy: {
        ...(config.credentialTtlSeconds !== undefined ? { credentialTtlSeconds: config.credentialTtlSeconds } : {}),
        ...(config.renewOverlapSeconds !== undefined ? { overlapMs: config.renewOverlapSeconds * 1000 } : {}),
      },
    }).app;
    const addr = server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    const url = `${tls ? 'https' : 'http'}://${host}:${addr.port}`;
    logger.info(
      {
        url,
        fingerprint: identity.fingerprint,
        accepted: keyRing.accepted.map((id) => id.fingerprint),
        database: database.kind,
        ...(admin ? { bootstrapAdmin: admin } : {}),
        ...(role.kind === 'worker' ? { worker: role.id, background } : {}),
      },
      'latchkey listening',
    );
    const db = database;
    // Retention and GLPI delivery are safe from several processes (single statements; leases under
    // FOR UPDATE SKIP LOCKED), but one loop per cluster is enough and keeps one attempt per pause.
    const forwarder = background ? await startForwarder(db, await forwardConfig(config), logger, ctx.now) : undefined;
    if (background) exportForwardMetrics(telemetry, db);
    const stopRetention = background ? startRetention(db, config, ctx.now, logger) : () => {};
    return {
      url,
      ...(metrics ? { metricsUrl: metrics.url } : {}),
      app,
      database: db,
      fingerprint: identity.fingerprint,
      reloadTls: async () => {
        if (!tlsFiles) return true;
        try {
          // New connections get the new pair; open ones keep theirs; the listener never closes.
          (server as HttpsServer).setSecureContext({ ...(await readTlsPair(tlsFiles.cert, tlsFiles.key)) });
          logger.info({ cert: tlsFiles.cert }, 'TLS certificate reloaded');
          return true;
        } catch (err) {
          logger.error({ cert: tlsFiles.cert, err: startupMessage(err) }, 'TLS reload failed; still serving the previous certificate');
          return false;
        }
      },
      close: async () => {
        stopRetention();
        await closeServer(server);
        await forwarder?.stop();
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

/** Forwarding URLs and flags checked before anything is bound or written (messages name no secret). */
function validateForward(config: ServeConfig): void {
  const f = config.forward;
  if ((f?.cert === undefined) !== (f?.key === undefined)) throw new StartupError('--forward-glpi-cert and --forward-glpi-key go together');
  try {
    parseTargets(f?.urls ?? []);
  } catch (err) {
    throw new StartupError((err as Error).message);
  }
}

/** The forwarding settings, with the certificate files read (a missing one stops the start). */
async function forwardConfig(config: ServeConfig): Promise<ForwardConfig> {
  const f = config.forward;
  const read = async (path: string | undefined, what: string) => {
    if (path === undefined) return undefined;
    try {
      return await readFile(path, 'utf8');
    } catch {
      throw new StartupError(`cannot read the ${what} file ${path}`);
    }
  };
  return {
    ...DEFAULT_FORWARD,
    urls: f?.urls ?? [],
    cert: await read(f?.cert, 'client certificate'),
    key: await read(f?.key, 'client key'),
    ca: await read(f?.ca, 'CA'),
    compression: f?.compression ?? DEFAULT_FORWARD.compression,
    retryMaxMs: (f?.retryMaxSeconds ?? DEFAULT_FORWARD.retryMaxMs / 1000) * 1000,
  };
}

/** The forwarding backlog on /metrics, read from the database at each scrape (so every instance reports the same). */
function exportForwardMetrics(telemetry: Telemetry, database: Database): void {
  const status = async () => forwardStatus(database.db, Date.now());
  const per = (pick: (t: TargetStatus) => number | null) => async () =>
    (await status()).filter((t) => t.active).map((t) => ({ labels: { target: t.id }, value: pick(t) ?? 0 }));
  telemetry.gauge?.(
    'forward_backlog',
    'Stored inventories a GLPI target has not accepted yet.',
    ['target'],
    per((t) => t.backlog),
  );
  telemetry.gauge?.(
    'forward_oldest_undelivered_seconds',
    'Age of the oldest inventory a GLPI target has not accepted yet (0 when none).',
    ['target'],
    per((t) => t.oldestUndeliveredSeconds),
  );
  telemetry.gauge?.(
    'forward_last_error_timestamp_seconds',
    'When the last delivery to a GLPI target failed (0: never).',
    ['target'],
    per((t) => (t.lastErrorAt ? Date.parse(t.lastErrorAt) / 1000 : 0)),
  );
  telemetry.gauge?.(
    'forward_delivered',
    'Inventories a GLPI target has accepted.',
    ['target'],
    per((t) => t.deliveredTotal),
  );
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

async function openDatabaseOnly(config: ServeConfig, logger: Logger): Promise<Database> {
  try {
    const database = config.databaseUrl
      ? await openDatabase({ url: config.databaseUrl })
      : await openEmbeddedDatabase(config.dataDir, 'latchkey serve', (outcome) =>
          typeof outcome === 'string'
            ? logger.debug({ embeddedDatabase: outcome }, 'embedded database')
            : logger.info({ embeddedDatabase: 'initdb', reason: outcome.fallback }, 'embedded database initialised without the snapshot'),
        );
    await database.ping().catch(async (err: unknown) => {
      await database.close().catch(() => {});
      throw err;
    });
    return database;
  } catch (err) {
    if (err instanceof DataDirLockedError) throw err;
    throw new StartupError(`cannot connect to the database: ${startupMessage(err)}`);
  }
}

async function openAndMigrate(config: ServeConfig, logger: Logger): Promise<Database> {
  const database = await openDatabaseOnly(config, logger);
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

/**
 * Graceful shutdown on SIGTERM/SIGINT; a second signal or 15 s forces the exit. A `--workers` worker
 * (`worker`) ignores repeated signals (a service manager signals the whole group, and the primary
 * forwards the same signal: the primary alone decides to force). A worker whose primary is gone exits
 * at once (node:cluster's own rule), so none is ever left behind.
 */
export function handleSignals(running: RunningServer, logger: Logger, worker = false): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      if (worker) return;
      process.exit(1);
    }
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
  // SIGHUP: reload the TLS certificate (certbot's deploy hook, `systemctl reload`); never exits.
  process.on('SIGHUP', () => void running.reloadTls());
}
