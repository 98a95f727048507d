// `latchkey serve --workers N`: real processes on a fresh PostgreSQL database. One two-worker server
// is shared by the file (each start costs seconds on a loaded machine); requests go out on a fresh
// TCP connection each, so the primary's round-robin spreads them over both workers, and the logs
// (every line carries its process's pid) show which worker answered.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pinServer } from '../../src/protocol/discovery.js';
import { sealEnrollRequest, verifyEnrollResponse, type ServerPublicKeys } from '../../src/protocol/enrollment.js';
import { sealEnvelope } from '../../src/protocol/envelope.js';
import { generateKeySet } from '../../src/protocol/keys.js';
import { parseToken } from '../../src/protocol/token.js';
import { postgresUrl } from '../helpers/db.js';
import { createTempPostgresDatabase, type TempDatabase } from '../helpers/pg-database.js';
import { runCli, startServe, type ServeProcess } from '../helpers/process.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
const inventory = new URL('../fixtures/glpi/format/printer_2.json', import.meta.url).pathname;

interface Answer {
  status: number;
  body: { error?: { code: string } } & Record<string, unknown>;
}

/** One POST on a connection of its own (no keep-alive), so that concurrent ones reach different workers. */
function postFresh(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', connection: 'close', ...headers },
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Answer['body'] }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

interface LogLine {
  pid: number;
  msg: string;
  [k: string]: unknown;
}

function logLines(server: ServeProcess): LogLine[] {
  return server
    .output()
    .stdout.split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe.skipIf(!postgresUrl)('serve --workers on postgres', { timeout: 180_000 }, () => {
  let dir: string;
  let db: TempDatabase;
  let server: ServeProcess;
  let adminToken: string;
  let pinned: ServerPublicKeys;

  const token = async (uses: number): Promise<string> => {
    const r = await postFresh(`${server.url}/v1/admin/tokens`, { uses, ttlSeconds: 600 }, { authorization: `Bearer ${adminToken}` });
    expect(r.status).toBe(201);
    return r.body.token as string;
  };
  const enrollRequest = async (t: string, name: string) => {
    const keys = await generateKeySet(ctx);
    return { keys, ...(await sealEnrollRequest(ctx, parseToken(t), pinned, keys, name)) };
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-workers-'));
    db = await createTempPostgresDatabase();
    server = await startServe(['--data-dir', join(dir, 'data'), '--workers', '2', '--log-level', 'info'], { DATABASE_URL: db.url });
    adminToken = (await readFile(join(dir, 'data', 'admin.token'), 'utf8')).trim();
    const doc: unknown = await (await fetch(`${server.url}/.well-known/latchkey`)).json();
    pinned = pinServer(doc, server.fingerprint);
  });

  afterAll(async () => {
    await server?.stop();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('prepares once in the primary, then two workers listen; one of them runs the background loops', () => {
    expect(server.output().stdout).toContain('workers 2\n');
    const lines = logLines(server);
    const prepared = lines.filter((l) => l.msg === 'prepared; starting workers');
    expect(prepared).toHaveLength(1);
    expect(prepared[0]!.bootstrapAdmin).toBe('created');
    const listening = lines.filter((l) => l.msg === 'latchkey listening');
    expect(new Set(listening.map((l) => l.pid)).size).toBe(2);
    expect(listening.map((l) => l.pid)).not.toContain(server.child.pid);
    expect(listening.filter((l) => l.background === true)).toHaveLength(1);
    // Only the primary prepared: no worker created or registered an admin credential.
    expect(listening.some((l) => 'bootstrapAdmin' in l)).toBe(false);
  });

  it('the same envelope sent 16 times at once over both workers is stored once, every other copy is a replay', async () => {
    const { keys, request: enroll, nonce } = await enrollRequest(await token(1), 'replayed');
    const enrolled = await postFresh(`${server.url}/v1/enroll`, enroll);
    expect(enrolled.status).toBe(200);
    await verifyEnrollResponse(ctx.crypto, pinned, enrolled.body, nonce);
    const { envelope } = await sealEnvelope(ctx, {
      sender: keys,
      recipient: pinned.agreement,
      type: 'inventory',
      contentType: 'application/json',
      contentEncoding: 'identity',
      counter: 1,
      plaintext: new Uint8Array(await readFile(inventory)),
    });
    const answers = await Promise.all(Array.from({ length: 16 }, () => postFresh(`${server.url}/v1/messages`, envelope)));
    expect(answers.map((a) => a.body.error?.code ?? a.status).sort(), JSON.stringify(answers[0])).toContain(200);
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    expect(answers.filter((a) => a.body.error?.code === 'replay_detected')).toHaveLength(15);
    // Both workers refused copies: the replay was caught across processes, not inside one.
    const refusals = await until('refusals logged', () => {
      const r = logLines(server).filter((l) => l.msg === 'message refused' && l.code === 'replay_detected');
      return r.length === 15 ? r : undefined;
    });
    expect(new Set(refusals.map((l) => l.pid)).size).toBe(2);
  });

  it('a one-use token raced by 12 enrollments over both workers enrolls exactly one agent', async () => {
    const t = await token(1);
    const requests = await Promise.all(Array.from({ length: 12 }, (_, i) => enrollRequest(t, `racer-${i}`)));
    const answers = await Promise.all(requests.map((r) => postFresh(`${server.url}/v1/enroll`, r.request)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    expect(answers.filter((a) => a.body.error?.code === 'token_used')).toHaveLength(11);
  });

  it('/metrics on the main port adds up every worker', async () => {
    const before = await scrape(server.url);
    const count = (text: string) =>
      Number(/^latchkey_http_requests_total\{method="GET",route="\/healthz",status="200"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    await Promise.all(
      Array.from(
        { length: 10 },
        () =>
          new Promise<void>((resolve, reject) =>
            request(`${server.url}/healthz`, { agent: false }, (res) => res.resume().on('end', resolve))
              .on('error', reject)
              .end(),
          ),
      ),
    );
    const after = await scrape(server.url);
    expect(count(after) - count(before)).toBe(10);
    expect(after).toMatch(/^latchkey_workers 2$/m);
  });

  it('a killed worker is restarted, and SIGTERM drains every worker and exits 0', async () => {
    const worker = logLines(server).find((l) => l.msg === 'latchkey listening' && l.background === false)!;
    process.kill(worker.pid, 'SIGKILL');
    const replacement = await until('a replacement worker', () =>
      logLines(server).find((l) => l.msg === 'latchkey listening' && l.worker === worker.worker && l.pid !== worker.pid),
    );
    expect(logLines(server).some((l) => l.msg === 'worker died; restarting' && l.workerPid === worker.pid)).toBe(true);
    expect(alive(replacement.pid)).toBe(true);
    expect((await scrape(server.url)).match(/^latchkey_worker_restarts_total 1$/m)).not.toBeNull();

    const workers = logLines(server)
      .filter((l) => l.msg === 'latchkey listening')
      .map((l) => l.pid)
      .filter(alive);
    expect(workers).toHaveLength(2);
    expect(await server.stop()).toBe(0);
    expect(workers.filter(alive)).toEqual([]);
    expect(logLines(server).filter((l) => l.msg === 'shutting down' && workers.includes(l.pid))).toHaveLength(2);
  });
});

async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

describe('serve --workers with the embedded PGlite database', { timeout: 120_000 }, () => {
  it('more than one worker is refused (usage, exit 2) before anything is made', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'latchkey-workers-'));
    try {
      const data = join(dir, 'data');
      const flag = await runCli(['serve', '--port', '0', '--data-dir', data, '--workers', '2']);
      expect(flag.code).toBe(2);
      expect(flag.stderr).toMatch(/^error: usage: --workers 2 needs PostgreSQL/);
      const env = await runCli(['serve', '--port', '0', '--data-dir', data], { LATCHKEY_WORKERS: '3' });
      expect(env.code).toBe(2);
      expect(env.stderr).toMatch(/^error: usage: --workers 3 needs PostgreSQL/);
      await expect(readFile(join(data, 'admin.token'))).rejects.toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('by default it serves from one process', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'latchkey-workers-'));
    // LATCHKEY_WORKERS empty: unset, the default applies.
    const server = await startServe(['--data-dir', join(dir, 'data'), '--log-level', 'info'], { LATCHKEY_WORKERS: '' });
    try {
      expect(server.output().stdout).not.toContain('workers');
      const listening = logLines(server).filter((l) => l.msg === 'latchkey listening');
      expect(listening.map((l) => l.pid)).toEqual([server.child.pid]);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      expect(await server.stop()).toBe(0);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
