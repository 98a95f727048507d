// Forward proxies for tests: a real tinyproxy (Debian's package, installed by global-setup and .ci/run)
// on a free port with its own config, log and pid file in a temp dir, run in the foreground so the test
// owns the process; and a small tampering proxy written here, which ends CONNECT tunnels itself and
// lets a test rewrite request or response bodies on the way.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Installs tinyproxy when missing (root only: CI and the dev container); true when it is there after. */
export function ensureTinyproxy(): boolean {
  const present = () => {
    try {
      execFileSync('tinyproxy', ['-v'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (present()) return true;
  if (process.getuid?.() !== 0) return false;
  const apt = (args: string[]) =>
    execFileSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', ...args], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  apt(['update', '-qq']);
  apt(['install', '-y', '-qq', 'tinyproxy']);
  return present();
}

async function freePort(): Promise<number> {
  const server = createTcpServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitForPort(port: number, child: ChildProcess, log: () => Promise<string>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`tinyproxy exited with ${child.exitCode}: ${await log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket: Socket = connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('tinyproxy did not start listening');
}

export interface Tinyproxy {
  url: string;
  /** Every CONNECT tinyproxy has logged, as "host:port". */
  connects(): Promise<string[]>;
  stop(): Promise<void>;
}

/** A tinyproxy on a free 127.0.0.1 port, allowing 127.0.0.1 only, in the foreground. */
export async function startTinyproxy(): Promise<Tinyproxy> {
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-tinyproxy-'));
  const logFile = join(dir, 'tinyproxy.log');
  const log = () => readFile(logFile, 'utf8').catch(() => '');
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    await writeFile(
      join(dir, 'tinyproxy.conf'),
      [
        `Port ${port}`,
        'Listen 127.0.0.1',
        'Timeout 60',
        `LogFile "${logFile}"`,
        'LogLevel Connect',
        `PidFile "${join(dir, 'tinyproxy.pid')}"`,
        'MaxClients 50',
        'Allow 127.0.0.1',
        // No ConnectPort line: CONNECT to any port (the server listens on a random one).
        'DisableViaHeader Yes',
        '',
      ].join('\n'),
    );
    const child = spawn('tinyproxy', ['-d', '-c', join(dir, 'tinyproxy.conf')], { stdio: 'ignore' });
    try {
      await waitForPort(port, child, log);
    } catch (err) {
      child.kill('SIGKILL');
      if (attempt < 3) continue; // the port was taken between our probe and tinyproxy's bind
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    return {
      url: `http://127.0.0.1:${port}`,
      connects: async () => [...(await log()).matchAll(/CONNECT (\S+) HTTP/g)].map((m) => m[1]!),
      stop: async () => {
        if (child.exitCode === null) {
          child.kill('SIGTERM');
          await once(child, 'exit');
        }
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}

/** What a tampering proxy may do to one exchange: return the bytes to pass on instead. */
export interface Tamper {
  request?(path: string, body: Buffer): Buffer;
  response?(path: string, body: Buffer): Buffer;
}

export interface TamperingProxy {
  url: string;
  /** Requests seen, as "METHOD path". */
  seen: string[];
  tamper: Tamper;
  stop(): Promise<void>;
}

async function readAll(stream: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * A forward proxy for http:// origins that reads whole bodies and passes them through `tamper`. CONNECT
 * tunnels (what undici opens) end here: the tunnel's socket is served by an inner HTTP server, which
 * forwards each request to the origin named in the CONNECT line.
 */
export async function startTamperingProxy(): Promise<TamperingProxy> {
  const state: TamperingProxy = { url: '', seen: [], tamper: {}, stop: async () => {} };
  const forward = async (origin: string, req: IncomingMessage, res: ServerResponse) => {
    const path = req.url!.startsWith('http') ? new URL(req.url!).pathname + new URL(req.url!).search : req.url!;
    state.seen.push(`${req.method} ${path}`);
    let body = await readAll(req);
    if (body.length && state.tamper.request) body = state.tamper.request(path, body);
    const [host, port] = [new URL(origin).hostname, Number(new URL(origin).port)];
    const headers = { ...req.headers, 'content-length': String(body.length) };
    const upstream = await new Promise<IncomingMessage>((resolve, reject) => {
      const r = httpRequest({ host, port, method: req.method, path, headers }, resolve);
      r.once('error', reject);
      r.end(body);
    });
    let answer = await readAll(upstream);
    if (answer.length && state.tamper.response) answer = state.tamper.response(path, answer);
    const out = { ...upstream.headers, 'content-length': String(answer.length) };
    delete out['transfer-encoding'];
    res.writeHead(upstream.statusCode ?? 502, out).end(answer);
  };
  const fail = (res: ServerResponse) => (err: unknown) => res.writeHead(502).end(String(err));

  const tunnels = new Map<Socket, string>();
  const inner: Server = createServer((req, res) => forward(tunnels.get(req.socket)!, req, res).catch(fail(res)));
  const outer: Server = createServer((req, res) => forward(new URL(req.url!).origin, req, res).catch(fail(res)));
  outer.on('connect', (req: IncomingMessage, socket: Socket) => {
    tunnels.set(socket, `http://${req.url!}`);
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n', () => inner.emit('connection', socket));
  });
  outer.listen(0, '127.0.0.1');
  await once(outer, 'listening');
  state.url = `http://127.0.0.1:${(outer.address() as AddressInfo).port}`;
  state.stop = async () => {
    outer.closeAllConnections();
    inner.closeAllConnections();
    for (const socket of tunnels.keys()) socket.destroy();
    await new Promise<void>((resolve) => outer.close(() => resolve()));
  };
  return state;
}
