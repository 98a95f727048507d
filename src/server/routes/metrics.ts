import { Hono } from 'hono';
import type { AppEnv } from '../types.js';

/** GET /metrics: Prometheus text, where the runtime has a registry (Node); 404 elsewhere. */
export function metricsRoutes(): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  r.get('/metrics', async (c) => {
    const exposition = c.get('deps').telemetry.exposition;
    if (!exposition) return c.notFound();
    const { contentType, body } = await exposition();
    return c.body(body, 200, { 'Content-Type': contentType });
  });
  return r;
}
