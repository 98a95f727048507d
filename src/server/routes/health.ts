import { Hono } from 'hono';
import type { AppEnv } from '../types.js';
import { LatchkeyError } from '../errors.js';

/** GET /healthz: the process is up. GET /readyz: the database answers. */
export function healthRoutes(): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  r.get('/healthz', (c) => c.json({ status: 'ok' }));
  r.get('/readyz', async (c) => {
    try {
      await c.get('deps').database.ping();
      return c.json({ status: 'ready' });
    } catch (cause) {
      throw new LatchkeyError('unavailable', 'database unreachable', { cause });
    }
  });
  return r;
}
