// The one Hono app factory: middleware, routes and error mapping. It builds no state: the composition
// root (compose.ts) builds every per-process piece once and hands each request its deps through
// `scope`. Runtimes (src/runtime/node.ts, src/runtime/worker.ts), tests and bench call composeServer.
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { errorResponse, LatchkeyError, payloadTooLarge, toLatchkeyError } from './errors.js';
import type { Logger } from './logger.js';
import type { Telemetry } from './telemetry.js';
import type { App, AppDeps, AppEnv, AppLimits } from './types.js';
import { healthPaths, healthRoutes } from './routes/health.js';
import { metricsPaths, metricsRoutes } from './routes/metrics.js';
import { wellKnownPaths, wellKnownRoutes } from './routes/well-known.js';
import { registerRoutes } from './routes/index.js';

/** How a request gets its deps, and what happens once its response is made. */
export interface RequestScope {
  enter(c: Context): AppDeps | Promise<AppDeps>;
  leave(c: Context, deps: AppDeps): void;
}

export interface AppParts {
  limits: AppLimits;
  logger: Logger;
  telemetry: Telemetry;
  scope: RequestScope;
}

/** Routes with a body limit of their own (the rest: limits.maxBodyBytes). */
const IMPORT_PATH = '/v1/admin/agents/import';

export function createApp({ limits, logger, telemetry, scope }: AppParts): App {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: zodFailure });

  app.use('*', async (c, next) => {
    const started = performance.now();
    const deps = await scope.enter(c);
    c.set('deps', deps);
    try {
      await next();
    } finally {
      scope.leave(c, deps);
    }
    const seconds = (performance.now() - started) / 1000;
    telemetry.request(c.req.method, c.req.routePath, c.res.status, seconds);
  });

  // Sizes are checked before any parsing, by one middleware with the limit of the route. A declared
  // Content-Length is checked as is (the HTTP parser never delivers more than it declares), and the
  // body stream is left untouched: @hono/node-server then reads the socket straight into one buffer
  // for c.req.json()/text(), where touching `raw.body` (as hono's bodyLimit does) would build a web
  // Request and stream for every request. A body without a length (chunked) is counted as it streams.
  const limited = (maxSize: number) => ({ maxSize, streamed: bodyLimit({ maxSize, onError: payloadTooLarge }) });
  const messageLimit = limited(limits.maxMessageBodyBytes);
  const importLimit = limited(limits.maxImportBodyBytes);
  const defaultLimit = limited(limits.maxBodyBytes);
  app.use('*', async (c, next) => {
    // GET and HEAD bodies are never read.
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next();
    const path = c.req.path;
    const limit = path === '/v1/messages' ? messageLimit : path === IMPORT_PATH ? importLimit : defaultLimit;
    const declared = c.req.header('content-length');
    if (declared !== undefined && /^\d{1,15}$/.test(declared) && c.req.header('transfer-encoding') === undefined) {
      return Number(declared) > limit.maxSize ? payloadTooLarge(c) : next();
    }
    return limit.streamed(c, next);
  });

  app.route('/', healthRoutes());
  app.route('/', wellKnownRoutes());
  app.route('/', metricsRoutes());
  app.openAPIRegistry.registerComponent('securitySchemes', 'metricsBearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'the --metrics-token value, when the server was started with one',
  });
  for (const path of [...healthPaths, ...wellKnownPaths, ...metricsPaths]) app.openAPIRegistry.registerPath(path);
  registerRoutes(app);

  app.notFound((c) => errorResponse(c, new LatchkeyError('not_found', 'no such route')));
  app.onError((err, c) => toErrorResponse(err, c, logger));
  return app;
}

function toErrorResponse(err: unknown, c: Context, logger: Logger): Response {
  const { error, internal } = toLatchkeyError(err);
  if (internal) logger.error({ err: describe(err), route: c.req.routePath, method: c.req.method }, 'unhandled error');
  return errorResponse(c, error);
}

/**
 * Stack and message for the server log only; never sent to a client. Bounded, and without a failed
 * statement's parameters (drizzle puts them in the message): a log line never carries a list of ids.
 */
function describe(err: unknown): object {
  const bound = (text: string | undefined) => text?.split('\nparams:')[0]!.slice(0, 2000);
  return err instanceof Error
    ? { name: err.name, message: bound(err.message), stack: bound(err.stack) }
    : { value: String(err).slice(0, 2000) };
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
  return errorResponse(c, new LatchkeyError('request_invalid', `invalid request: ${where}`));
}
