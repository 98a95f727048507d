import { Hono } from 'hono';
import type { AppEnv } from '../types.js';
import { LatchkeyError } from '../errors.js';
import { DATABASE_RETRY_AFTER_SECONDS } from '../../db/faults.js';

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
