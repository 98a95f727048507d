// `--metrics-listen HOST:PORT`: /metrics on its own address (e.g. a private interface), with the
// same optional bearer token; the main port then no longer serves it.
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { Hono } from 'hono';
import { errorBody } from '../server/errors.js';
import { serveMetrics } from '../server/routes/metrics.js';
import type { Telemetry } from '../server/telemetry.js';
import { StartupError } from './startup-error.js';

export interface MetricsListener {
  url: string;
  close(): Promise<void>;
}

/** `HOST:PORT`, `[v6]:PORT`; port 0 picks a free one. */
export function parseListenAddress(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

export async function startMetricsListener(
  address: { host: string; port: number },
  exposition: Telemetry['exposition'],
  token: string | undefined,
): Promise<MetricsListener> {
  const app = new Hono();
  app.get('/metrics', (c) => serveMetrics(c, exposition, token));
  app.notFound((c) => c.json(errorBody('not_found', 'no such route'), 404));
  const server = createAdaptorServer({ fetch: app.fetch, hostname: address.host });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new StartupError(
          err.code === 'EADDRINUSE'
            ? `metrics port ${address.port} on ${address.host} is already in use`
            : `cannot listen for metrics on ${address.host}:${address.port}: ${err.code ?? err.message}`,
        ),
      ),
    );
    server.listen(address.port, address.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    close: () =>
      new Promise((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        if ('closeIdleConnections' in server) (server as { closeIdleConnections(): void }).closeIdleConnections();
      }),
  };
}
