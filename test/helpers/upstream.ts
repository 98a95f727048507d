// A small real HTTP server standing in the agent's path that answers as the test scripts: the way a
// proxy, a captive portal or an attacker in the path would lie (unsigned codes, forged or borrowed
// receipts, 401/403, 429 with Retry-After, 5xx), or forwards to the real server.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => Promise<void> | void;

/** A real HTTP server whose answers the test scripts, one handler per request, then `fallback`. */
export async function lyingUpstream(
  fallback: Handler,
): Promise<{ url: string; script: Handler[]; seen: string[]; close(): Promise<void> }> {
  const script: Handler[] = [];
  const seen: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      seen.push(body);
      void Promise.resolve((script.shift() ?? fallback)(req, body, res)).catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    script,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export const answer =
  (status: number, body: unknown, headers: Record<string, string> = {}): Handler =>
  (_req, _body, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };

/** Forwards the request to `target` and relays its answer (status, Retry-After, body). */
export const forwardTo =
  (target: string): Handler =>
  async (req, body, res) => {
    const r = await fetch(`${target}${req.url}`, {
      method: req.method!,
      body: req.method === 'GET' ? undefined : body,
      headers: { 'content-type': 'application/json' },
    });
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    const retry = r.headers.get('retry-after');
    if (retry) headers['retry-after'] = retry;
    res.writeHead(r.status, headers);
    res.end(await r.text());
  };
