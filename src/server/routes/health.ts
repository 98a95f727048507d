import { createRoute, z } from '@hono/zod-openapi';
import { Hono } from 'hono';
import type { AppEnv } from '../types.js';
import { LatchkeyError } from '../errors.js';
import { DATABASE_RETRY_AFTER_SECONDS } from '../../db/faults.js';
import { errorResponses } from './schemas.js';

const status = (value: string) => ({
  'application/json': { schema: z.object({ status: z.literal(value) }) },
});

/** Their OpenAPI entries (registered by app.ts; the handlers are plain Hono). */
export const healthPaths = [
  createRoute({
    method: 'get',
    path: '/healthz',
    operationId: 'getHealth',
    tags: ['operations'],
    summary: 'Liveness: the process is up',
    responses: { 200: { description: 'Up', content: status('ok') }, ...errorResponses() },
  }),
  createRoute({
    method: 'get',
    path: '/readyz',
    operationId: 'getReadiness',
    tags: ['operations'],
    summary: 'Readiness: the database answers (else 503 unavailable with Retry-After)',
    responses: { 200: { description: 'Ready', content: status('ready') }, ...errorResponses() },
  }),
];

/**
 * GET /healthz: the process is up. GET /readyz: the database answers, within the driver's ping
 * deadline (1 s on PostgreSQL), else 503 `unavailable` with Retry-After.
 */
export function healthRoutes(): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  r.get('/healthz', (c) => c.json({ status: 'ok' }));
  r.get('/readyz', async (c) => {
    try {
      await c.get('deps').database.ping();
      return c.json({ status: 'ready' });
    } catch (cause) {
      throw new LatchkeyError('unavailable', 'database unreachable', { cause, retryAfterSeconds: DATABASE_RETRY_AFTER_SECONDS });
    }
  });
  return r;
}
