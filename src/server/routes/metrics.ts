import { createRoute, z } from '@hono/zod-openapi';
import { sha256 } from '@noble/hashes/sha2.js';
import { Hono, type Context } from 'hono';
import { constantTimeEqual, utf8 } from '../../protocol/bytes.js';
import type { AppEnv } from '../types.js';
import { errorResponse, LatchkeyError } from '../errors.js';
import type { Telemetry } from '../telemetry.js';
import { errorResponses } from './schemas.js';

/** Its OpenAPI entry (registered by app.ts; the handler is plain Hono). */
export const metricsPaths = [
  createRoute({
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    tags: ['operations'],
    summary: 'Prometheus metrics (Node runtime; 404 on Workers or when --metrics-listen moved it)',
    security: [{ metricsBearer: [] }, {}],
    responses: {
      200: { description: 'Prometheus text exposition', content: { 'text/plain': { schema: z.string() } } },
      ...errorResponses('unauthorized', 'not_found'),
    },
  }),
];

/**
 * GET /metrics: Prometheus text, where the runtime has a registry (Node); 404 elsewhere, and where the
 * runtime serves it on another address (the exposition is then absent from the app's telemetry).
 */
export function metricsRoutes(): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  r.get('/metrics', (c) => serveMetrics(c, c.get('deps').telemetry.exposition, c.get('deps').metricsToken));
  return r;
}

/** The one /metrics handler, for the app and for a separate metrics listener. */
export async function serveMetrics(c: Context, exposition: Telemetry['exposition'], token: string | undefined): Promise<Response> {
  if (!exposition) return errorResponse(c, new LatchkeyError('not_found', 'no such route'));
  if (token !== undefined && !bearerMatches(c.req.header('authorization'), token)) {
    const refused = errorResponse(c, new LatchkeyError('unauthorized', 'metrics bearer token missing or wrong'));
    refused.headers.set('WWW-Authenticate', 'Bearer');
    return refused;
  }
  const { contentType, body } = await exposition();
  return c.body(body, 200, { 'Content-Type': contentType });
}

/** Constant time, and the length of the expected token is not leaked either (digests are compared). */
function bearerMatches(header: string | undefined, token: string): boolean {
  const given = /^Bearer +(\S+)\s*$/i.exec(header ?? '')?.[1] ?? '';
  return constantTimeEqual(sha256(utf8(given)), sha256(utf8(token)));
}
