// The composition root. Every piece of per-process state is built here, once: the enrollment
// failure budgets, the per-agent ingest budgets, the sender-key cache, the store batcher and the
// prepared sender lookup; then the one Hono app from it. Node (src/runtime/node.ts), the Worker
// (src/runtime/worker.ts, once per isolate), the tests (test/helpers/app.ts) and the bench
// (bench/fixtures.ts) all start here; no route or service builds state of its own.
import type { Context } from 'hono';
import type { Database } from '../db/database.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { createApp, type RequestScope } from './app.js';
import type { ServerIdentity } from './identity.js';
import { createKeyRing, type KeyRing } from './key-ring.js';
import type { Logger } from './logger.js';
import type { Gunzip } from './services/decompress.js';
import { createEnrollmentLimiter, type EnrollmentLimiter, type EnrollmentPolicy } from './services/enrollment.js';
import {
  createIngestState,
  DEFAULT_INGEST_POLICY,
  prepareIngestStatements,
  type IngestPolicy,
  type IngestState,
} from './services/ingest.js';
import {
  createKeyRequestState,
  requestKey,
  type KeyRequestDeps,
  type KeyRequestPolicy,
  type KeyRequestState,
  type KeySourceTransport,
} from './services/key-request.js';
import { DEFAULT_RENEWAL_POLICY, type RenewalPolicy } from './services/renewal.js';
import { serverKeysOf } from './services/server-keys.js';
import type { Telemetry } from './telemetry.js';
import { DEFAULT_LIMITS, type App, type AppDeps, type AppLimits, type ConsoleDeps, type DocsAssets } from './types.js';
import { DEFAULT_CONSOLE_POLICY, type ConsolePolicy } from './services/console-sessions.js';
import { createRateLimiter, createRefusalCoalescer } from './services/rate-limiter.js';

export interface ServerConfig {
  identity: ServerIdentity;
  /** During a key rotation (spec §14): the ring around `identity` (its `current` must be `identity`). */
  keyRing?: KeyRing | undefined;
  /** Crypto backend, randomness and the clock every service reads (never Date.now directly). */
  ctx: ProtocolContext;
  logger: Logger;
  telemetry: Telemetry;
  /** The peer address as this runtime sees it (Node socket, Workers cf-connecting-ip). */
  clientAddress: (c: Context) => string | undefined;
  /** This runtime's bounded gunzip (src/runtime/zlib.ts). */
  gunzip: Gunzip;
  /** One database for the process (Node, tests, bench), or one per request (Workers). */
  database: Database | DatabasePerRequest;
  limits?: Partial<AppLimits> | undefined;
  /** Ingest policy overrides (freshness, per-agent budgets); defaults in services/ingest.ts. */
  ingestPolicy?: Partial<IngestPolicy> | undefined;
  /** Swagger UI's files for /docs (from this package, never a CDN); /docs is 404 without them. */
  docsAssets?: (() => Promise<DocsAssets>) | undefined;
  /** When set, GET /metrics needs `Authorization: Bearer <this>`. */
  metricsToken?: string | undefined;
  /** Enrollment budget overrides; defaults in services/enrollment.ts. */
  enrollmentPolicy?: Partial<EnrollmentPolicy> | undefined;
  /** Renewal policy overrides (overlap, credential lifetime); defaults in services/renewal.ts. */
  renewalPolicy?: Partial<RenewalPolicy> | undefined;
  /** Admin console overrides (session limits, sign-in budget); defaults in services/console-sessions.ts. */
  consolePolicy?: Partial<ConsolePolicy> | undefined;
  /** Behind a TLS-terminating proxy: believe its `X-Forwarded-Proto` (console cookies and Origin check). */
  trustForwardedProto?: boolean | undefined;
  /**
   * Node only (`--key-request`, spec §20.2): the external key source asked about unknown signing
   * keys (src/runtime/key-source.ts), and overrides of its policy (services/key-request.ts).
   */
  keySource?: KeySourceTransport | undefined;
  keyRequestPolicy?: Partial<KeyRequestPolicy> | undefined;
}

/**
 * Workers only: a connection opened while serving one request cannot be used by another (workerd
 * refuses cross-request I/O; Hyperdrive pools the real connections), so the database client is opened
 * for each request and released once its response is made. Everything else is still built once.
 */
export interface DatabasePerRequest {
  open(c: Context): Promise<Database>;
  release(c: Context, database: Database): void;
}

/** Per-process state (per isolate on Workers), shared by every request. */
export interface ServerState {
  limits: AppLimits;
  enrollmentLimiter: EnrollmentLimiter;
  ingest: IngestState;
  console: ConsoleDeps;
  /** With a key source only: its turns, flights and negative cache. */
  keyRequest?: KeyRequestState | undefined;
}

export interface Server {
  app: App;
  state: ServerState;
}

/** The ingest hook for unknown keys, bound to a database handle; none without a key source. */
function keyRequestOf(
  state: KeyRequestState | undefined,
  deps: Omit<KeyRequestDeps, 'state'>,
): ((kid: string, source: string) => Promise<boolean>) | undefined {
  if (!state) return undefined;
  const bound: KeyRequestDeps = { state, ...deps };
  return (kid, source) => requestKey(bound, kid, source);
}

export function composeServer(config: ServerConfig): Server {
  const { identity, ctx, logger, telemetry, clientAddress, gunzip } = config;
  const ring = config.keyRing ?? createKeyRing(identity);
  if (ring.current !== identity) throw new Error('keyRing.current must be the identity');
  const serverKeys = serverKeysOf(ring);
  const renewalPolicy: RenewalPolicy = { ...DEFAULT_RENEWAL_POLICY, ...config.renewalPolicy };
  const state: ServerState = {
    limits: { ...DEFAULT_LIMITS, ...config.limits },
    enrollmentLimiter: createEnrollmentLimiter(ctx.now, config.enrollmentPolicy),
    ingest: createIngestState({ ...DEFAULT_INGEST_POLICY, ...config.ingestPolicy }, ctx.now),
    console: createConsoleState(ctx.now, config),
    keyRequest: config.keySource ? createKeyRequestState(config.keySource, config.keyRequestPolicy) : undefined,
  };

  // What depends on a database handle: the services' deps and the statements prepared on it.
  const bind = (database: Database): AppDeps => {
    const keys = serverKeys.bind(database.db);
    const statements = prepareIngestStatements(database, telemetry);
    // Read at scrape time only: nothing on the hot path. (Per process; Workers keep no metrics.)
    const load = database.load?.bind(database);
    if (load) {
      telemetry.gauge?.('database_connections_max', 'Most database connections the client opens (1 for PGlite).', [], () => [
        { labels: {}, value: load().connections },
      ]);
      telemetry.gauge?.('database_statements_in_flight', 'Database statements sent and not yet answered.', [], () => [
        { labels: {}, value: load().statements },
      ]);
    }
    telemetry.gauge?.('store_statements_in_flight', 'Store batcher statements running.', [], () => [
      { labels: {}, value: statements.batcher.load.statements },
    ]);
    telemetry.gauge?.('store_queued_messages', 'Accepted messages waiting for a store statement.', [], () => [
      { labels: {}, value: statements.batcher.load.queued },
    ]);
    return {
      database,
      keys,
      identity,
      ctx,
      logger,
      telemetry,
      clientAddress,
      console: state.console,
      docsAssets: config.docsAssets,
      metricsToken: config.metricsToken,
      enrollment: {
        database,
        identity,
        keys,
        ctx,
        logger,
        telemetry,
        limiter: state.enrollmentLimiter,
        credentialTtlSeconds: renewalPolicy.credentialTtlSeconds,
      },
      ingest: {
        database,
        identity,
        keys,
        ctx,
        telemetry,
        gunzip,
        ...state.ingest,
        ...statements,
        keyRequest: keyRequestOf(state.keyRequest, {
          database,
          ctx,
          logger,
          telemetry,
          credentialTtlSeconds: renewalPolicy.credentialTtlSeconds,
        }),
      },
      renewal: { database, identity, keys, ctx, telemetry, policy: renewalPolicy },
    };
  };

  const source = config.database;
  let scope: RequestScope;
  if ('open' in source) {
    scope = { enter: async (c) => bind(await source.open(c)), leave: (c, deps) => source.release(c, deps.database) };
  } else {
    const deps = bind(source);
    scope = { enter: () => deps, leave: () => {} };
  }
  return { app: createApp({ limits: state.limits, logger, telemetry, scope }), state };
}

function createConsoleState(now: () => number, config: ServerConfig): ConsoleDeps {
  const policy: ConsolePolicy = { ...DEFAULT_CONSOLE_POLICY, ...config.consolePolicy };
  return {
    policy,
    signInLimiter: createRateLimiter({ capacity: policy.signInBurst, refillPerSecond: policy.signInPerSecond, now }),
    refusals: createRefusalCoalescer({ windowMs: policy.refusalAuditWindowMs, now }),
    trustForwardedProto: config.trustForwardedProto ?? false,
  };
}
