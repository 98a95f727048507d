// The real `latchkey serve` process over real HTTP, on PGlite and on PostgreSQL.
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dbKinds } from '../helpers/db.js';
import { createTempPostgresDatabase, type TempDatabase } from '../helpers/pg-database.js';
import { runCli, startServe, type ServeProcess } from '../helpers/process.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latchkey-serve-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

// One server per database for the file's first three tests (each start of a PGlite server costs
// seconds of CPU): they only read from it; the third stops it (exit 0) and restarts on its data dir.
describe.each(dbKinds)('latchkey serve on %s', (kind) => {
  let data: string;
  let server: ServeProcess | undefined;
  let pg: TempDatabase | undefined;
  beforeAll(async () => {
    data = await mkdtemp(join(tmpdir(), 'latchkey-serve-data-'));
  });
  afterAll(async () => {
    await server?.stop();
    await pg?.drop();
    await rm(data, { recursive: true, force: true });
  });

  async function start(extra: string[] = [], env: Record<string, string> = {}): Promise<ServeProcess> {
    if (kind === 'postgres' && !pg) pg = await createTempPostgresDatabase();
    const dbEnv = kind === 'postgres' ? { DATABASE_URL: pg!.url } : {};
    return startServe(['--data-dir', join(data, 'data'), ...extra], { ...dbEnv, ...env });
  }
  /** The file's running server, started by whichever test needs it first. */
  const running = async () => (server ??= await start());

  it('answers health, readiness, discovery and metrics, and keeps its secrets 0600', async () => {
    const server = await running();
    expect(await (await fetch(`${server.url}/healthz`)).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(`${server.url}/readyz`)).json()).toEqual({ status: 'ready' });

    const wk = (await (await fetch(`${server.url}/.well-known/latchkey`)).json()) as Record<string, unknown>;
    expect(wk.fingerprint).toBe(server.fingerprint);
    expect(wk.versions).toEqual([1]);

    const jwks = (await (await fetch(`${server.url}/.well-known/jwks.json`)).json()) as { keys: { crv: string }[] };
    expect(jwks.keys[0]?.crv).toBe('Ed25519');

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/latchkey_http_requests_total\{method="GET",route="\/healthz",status="200"\} 1/);

    for (const f of ['identity.key', 'admin.token']) {
      expect((await stat(join(data, 'data', f))).mode & 0o777).toBe(0o600);
    }
    const admin = (await readFile(join(data, 'data', 'admin.token'), 'utf8')).trim();
    const { stdout, stderr } = server.output();
    expect(stdout + stderr).not.toContain(admin);
  });

  it('gives JSON errors: unknown route 404, oversize body 413, never a stack', async () => {
    const server = await running();
    const nf = await fetch(`${server.url}/nope`);
    expect(nf.status).toBe(404);
    expect(await nf.json()).toEqual({ error: { code: 'not_found', message: 'no such route' } });

    const big = await fetch(`${server.url}/v1/enroll`, {
      method: 'POST',
      body: 'x'.repeat(200 * 1024),
      headers: { 'content-type': 'application/json' },
    });
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');
  });

  it('stops on SIGTERM with exit 0, keeps its identity across restarts and shares one given as a secret', async () => {
    const first = (await running()).fingerprint;
    expect(await server!.stop()).toBe(0);
    server = await start(['--crypto', 'native']); // the old name of node, still accepted
    expect(server.fingerprint).toBe(first);
    await server.stop();

    const gen = await runCli(['identity', 'generate']);
    expect(gen.code).toBe(0);
    const secret = gen.stdout.trim();
    server = await start([], { LATCHKEY_IDENTITY: secret });
    const shared = server.fingerprint;
    expect(shared).not.toBe(first);
    if (kind === 'postgres') {
      // A second instance on the same database and identity is the same server.
      const other = await startServe(['--data-dir', join(dir, 'data2')], { DATABASE_URL: pg!.url, LATCHKEY_IDENTITY: secret });
      try {
        expect(other.fingerprint).toBe(shared);
        expect(await (await fetch(`${other.url}/.well-known/latchkey`)).json()).toEqual(
          await (await fetch(`${server.url}/.well-known/latchkey`)).json(),
        );
      } finally {
        await other.stop();
      }
    }
  });
});

describe('latchkey serve refuses bad input with one line and creates nothing', () => {
  it('malformed DATABASE_URL', async () => {
    const data = join(dir, 'data');
    const r = await runCli(['serve', '--port', '0', '--data-dir', data], { DATABASE_URL: 'not a url' });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('startup_failed');
    await expect(stat(data)).rejects.toThrow();
  });

  it('unreachable database', async () => {
    const data = join(dir, 'data');
    const r = await runCli(['serve', '--port', '0', '--data-dir', data], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nope' });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/cannot connect to the database/);
    await expect(stat(data)).rejects.toThrow();
  });

  it('a data dir that is not a usable directory', async () => {
    const file = join(dir, 'file');
    await writeFile(file, 'x');
    const r = await runCli(['serve', '--port', '0', '--data-dir', file]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/not a directory/);
  });

  it('a port in use', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const data = join(dir, 'data');
      const r = await runCli(['serve', '--port', String(port), '--data-dir', data]);
      expect(r.code).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/already in use/);
      await expect(stat(data)).rejects.toThrow();
    } finally {
      blocker.close();
    }
  });
});
