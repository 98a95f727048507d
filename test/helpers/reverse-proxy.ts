// A reverse proxy for tests: forwards every request to `target` and sets the forwarding headers a
// test chooses (X-Forwarded-For, Forwarded), as nginx or HAProxy would in front of a server.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReverseProxy {
  url: string;
  /** Headers added to each forwarded request (replaced by the test at will). */
  headers: Record<string, string>;
  close(): Promise<void>;
}

export async function startReverseProxy(target: string, send: typeof fetch = fetch): Promise<ReverseProxy> {
  const state: ReverseProxy = { url: '', headers: {}, close: async () => {} };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const headers: Record<string, string> = { ...state.headers };
      for (const name of ['content-type', 'authorization', 'accept']) {
        const v = req.headers[name];
        if (typeof v === 'string') headers[name] = v;
      }
      const body = chunks.length ? Buffer.concat(chunks) : undefined;
      send(`${target}${req.url}`, { method: req.method, headers, ...(body ? { body } : {}) })
        .then(async (answer) => {
          const out = Buffer.from(await answer.arrayBuffer());
          res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' }).end(out);
        })
        .catch(() => res.writeHead(502).end());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}
