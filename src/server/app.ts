// The one Hono app factory. The Node entry (src/runtime/node.ts) and the Worker entry
// (src/runtime/worker.ts) are thin adapters that build their dependencies and call createApp.
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { ProtocolError } from '../protocol/errors.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import type { Database } from '../db/database.js';
import { ApiError, errorBody, statusFor } from './errors.js';
import type { ServerIdentity } from './identity.js';
import type { Logger } from './logger.js';
import type { AdminPrincipal } from './middleware/admin-auth.js';
import type { Telemetry } from './telemetry.js';
import type { IngestPolicy } from './services/ingest.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { wellKnownRoutes } from './routes/well-known.js';
import { registerRoutes } from './routes/index.js';
import type { DocsAssets } from './routes/docs.js';

export interface AppLimits {
  /** Default request body limit (bytes) for every route without its own. */
  maxBodyBytes: number;
  /** Body limit for POST /v1/messages (sealed inventories; the largest real sample is 1.4 MB). */
  maxMessageBodyBytes: number;
}

export const DEFAULT_LIMITS: AppLimits = {
  maxBodyBytes: 64 * 1024,
  maxMessageBodyBytes: 8 * 1024 * 1024,
};

export interface AppDeps {
  database: Database;
  identity: ServerIdentity;
  ctx: ProtocolContext;
  logger: Logger;
  telemetry: Telemetry;
  /** The peer address as this runtime sees it (Node socket, Workers cf-connecting-ip). */
  clientAddress: (c: Context) => string | undefined;
  limits?: Partial<AppLimits>;
  /** Ingest policy overrides (freshness, per-agent budgets); defaults in services/ingest.ts. */
  ingestPolicy?: Partial<IngestPolicy>;
  /** Swagger UI's files for /docs (from this package, never a CDN); /docs is 404 without them. */
  docsAssets?: () => Promise<DocsAssets>;
  /** When set, GET /metrics needs `Authorization: Bearer <this>`. */
  metricsToken?: string;
}

export interface AppEnv {
  Variables: { deps: AppDeps; limits: AppLimits; admin: AdminPrincipal };
}

export type App = OpenAPIHono<AppEnv>;

export function createApp(deps: AppDeps): App {
  const limits: AppLimits = { ...DEFAULT_LIMITS, ...deps.limits };
  const app = new OpenAPIHono<AppEnv>({ defaultHook: zodFailure });

  app.use('*', async (c, next) => {
    const started = performance.now();
    c.set('deps', deps);
    c.set('limits', limits);
    await next();
    const seconds = (performance.now() - started) / 1000;
    deps.telemetry.request(c.req.method, c.req.routePath, c.res.status, seconds);
  });

  // Sizes are checked before any parsing: Content-Length first, then the streamed byte count.
  const tooLarge = (c: Context) => c.json(errorBody('payload_too_large', 'request body too large'), 413);
  app.use('/v1/messages', bodyLimit({ maxSize: limits.maxMessageBodyBytes, onError: tooLarge }));
  app.use('*', async (c, next) => {
    if (c.req.path === '/v1/messages') return next();
    return bodyLimit({ maxSize: limits.maxBodyBytes, onError: tooLarge })(c, next);
  });

  app.route('/', healthRoutes());
  app.route('/', wellKnownRoutes());
  app.route('/', metricsRoutes());
  registerRoutes(app, deps);

  app.notFound((c) => c.json(errorBody('not_found', 'no such route'), 404));
  app.onError((err, c) => toErrorResponse(err, c, deps.logger));
  return app;
}

function toErrorResponse(err: unknown, c: Context, logger: Logger): Response {
  if (err instanceof ApiError) {
    return c.json(errorBody(err.code, err.message), err.status as 400);
  }
  if (err instanceof ProtocolError) {
    return c.json(errorBody(err.code, err.message), statusFor(err.code) as 400);
  }
  if (err instanceof HTTPException) {
    // Hono's own 4xx (malformed JSON body and the like).
    const status = err.status;
    if (status === 413) return c.json(errorBody('payload_too_large', 'request body too large'), 413);
    if (status < 500) return c.json(errorBody('request_invalid', 'malformed request'), status as 400);
  }
  logger.error({ err: describe(err), route: c.req.routePath, method: c.req.method }, 'unhandled error');
  return c.json(errorBody('internal_error', 'internal error'), 500);
}

/** Stack and message for the server log only; never sent to a client. */
function describe(err: unknown): object {
  return err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : { value: String(err) };
}

/** zod-openapi's validation hook: a stable code, the failing paths, never the rejected values. */
function zodFailure(
  result: { success: boolean; error?: { issues: readonly { path: readonly PropertyKey[]; message: string }[] } },
  c: Context,
): Response | undefined {
  if (result.success) return undefined;
  const where = (result.error?.issues ?? [])
    .slice(0, 5)
    .map((i) => i.path.map(String).join('.') || '(body)')
    .join(', ');
  return c.json(errorBody('request_invalid', `invalid request: ${where}`), 400);
}
