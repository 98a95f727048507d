// What the app factory (app.ts), the composition root (compose.ts), the routes and the middleware
// share: the request's dependencies and the Hono env. In a module of its own so that the app and its
// routes never import each other.
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { Database } from '../db/database.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import type { ServerIdentity } from './identity.js';
import type { Logger } from './logger.js';
import type { ConsolePolicy } from './services/console-sessions.js';
import type { EnrollmentDeps } from './services/enrollment.js';
import type { RateLimiter, RefusalCoalescer } from './services/rate-limiter.js';
import type { IngestDeps } from './services/ingest.js';
import type { RenewalDeps } from './services/renewal.js';
import type { ServerKeys } from './services/server-keys.js';
import type { Telemetry } from './telemetry.js';

/** Swagger UI's two files, as text; loaded once by the runtime (routes/docs.ts serves them). */
export interface DocsAssets {
  bundle: string;
  css: string;
}

export interface AppLimits {
  /** Default request body limit (bytes) for every route without its own. */
  maxBodyBytes: number;
  /** Body limit for POST /v1/messages (sealed inventories; the largest real sample is 1.4 MB). */
  maxMessageBodyBytes: number;
  /** Body limit for POST /v1/admin/agents/import (10,000 agents are ~2 MB of JSON lines). */
  maxImportBodyBytes: number;
}

export const DEFAULT_LIMITS: AppLimits = {
  maxBodyBytes: 64 * 1024,
  maxMessageBodyBytes: 8 * 1024 * 1024,
  maxImportBodyBytes: 32 * 1024 * 1024,
};

/**
 * What a request handler sees (`c.get('deps')`). Built by composeServer: once per process on Node,
 * and on Workers once per request around that request's database connection, from state built once
 * per isolate. Handlers never build state of their own.
 */
export interface AppDeps {
  database: Database;
  /** The current identity (new tokens, discovery, admin signatures): `keys.ring.current`. */
  identity: ServerIdentity;
  /** Every accepted key set and the endorsement chain (spec §14). */
  keys: ServerKeys;
  ctx: ProtocolContext;
  logger: Logger;
  telemetry: Telemetry;
  /** The peer address as this runtime sees it (Node socket, Workers cf-connecting-ip). */
  clientAddress: (c: Context) => string | undefined;
  /** POST /v1/enroll: the service's dependencies, failure budgets included. */
  enrollment: EnrollmentDeps;
  /** POST /v1/messages: the service's dependencies, per-agent budgets, caches and statements included. */
  ingest: IngestDeps;
  /** POST /v1/renew: the service's dependencies and policy (overlap, credential lifetime). */
  renewal: RenewalDeps;
  /** The admin console (/console): session limits and the failed sign-in budget per source address. */
  console: ConsoleDeps;
  /** Swagger UI's files for /docs (from this package, never a CDN); /docs is 404 without them. */
  docsAssets?: (() => Promise<DocsAssets>) | undefined;
  /** When set, GET /metrics needs `Authorization: Bearer <this>`. */
  metricsToken?: string | undefined;
}

export interface ConsoleDeps {
  policy: ConsolePolicy;
  /** Failed sign-ins per source address (per process, like every budget). */
  signInLimiter: RateLimiter;
  refusals: RefusalCoalescer;
  /** Behind a TLS-terminating proxy: believe its `X-Forwarded-Proto` (Secure cookies, the expected Origin). */
  trustForwardedProto: boolean;
}

/** The admin credential a request was authenticated with (middleware/admin-auth.ts). */
export interface AdminPrincipal {
  id: string;
  name: string;
  scopes: string[];
}

export interface AppEnv {
  Variables: { deps: AppDeps; admin: AdminPrincipal };
}

export type App = OpenAPIHono<AppEnv>;
