// The embedded data dir, with real `latchkey` processes (issue 10, items 18 and 19): whatever the
// umask and whether the dir existed, nothing in it is readable or writable by another user; and
// one process at a time opens it (serve, admin bootstrap), the second one naming the holder.
// PGlite only: with PostgreSQL the data dir holds no database and instances share it by design.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, lstat, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli, startServe, type ServeProcess } from '../helpers/process.js';

// Each test starts PGlite servers in real processes: slow on a loaded 2-core machine.
const SLOW = 180_000;

let dir: string;
let running: ServeProcess[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latchkey-datadir-'));
});
afterEach(async () => {
  for (const s of running) await s.stop();
  running = [];
  await rm(dir, { recursive: true, force: true });
});

async function serve(data: string, umask?: number): Promise<ServeProcess> {
  const s = await startServe(['--data-dir', data], {}, umask === undefined ? {} : { umask });
  running.push(s);
  return s;
}

/** Every path under root (root included) whose mode lets group or others in. */
async function exposed(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (path: string): Promise<void> => {
    const info = await lstat(path);
    if (info.isSymbolicLink()) return;
    const want = info.isDirectory() ? 0o700 : 0o600;
    if ((info.mode & 0o777) !== want) found.push(`${(info.mode & 0o777).toString(8)} ${path.slice(root.length) || '/'}`);
    if (info.isDirectory()) for (const name of await readdir(path)) await walk(join(path, name));
  };
  await walk(root);
  return found;
}

describe('embedded data dir modes (issue 10 item 18)', () => {
  it(
    'data dir 0700 and every file 0600 under umask 000 in a pre-existing 0755 dir',
    async () => {
      const data = join(dir, 'data');
      await mkdir(data, { mode: 0o755 });
      const server = await serve(data, 0o000);
      // While serving: the dir is closed to others and what PGlite wrote at start is 0600.
      expect(await exposed(data)).toEqual([]);
      const token = (await readFile(join(data, 'admin.token'), 'utf8')).trim();
      const created = await runCli(['token', 'create', '--json', '--admin-token', token], { LATCHKEY_SERVER: server.url });
      expect(created.code, created.stderr).toBe(0);
      expect(await server.stop()).toBe(0);
      // After a clean stop, files PGlite created while running are 0600 too.
      expect(await exposed(data)).toEqual([]);
    },
    SLOW,
  );

  it(
    'a fresh data dir under umask 000',
    async () => {
      const data = join(dir, 'fresh');
      const server = await serve(data, 0o000);
      expect(await exposed(data)).toEqual([]);
      expect(await server.stop()).toBe(0);
      expect(await exposed(data)).toEqual([]);
    },
    SLOW,
  );
});

describe('embedded data dir lock (issue 10 item 19)', () => {
  it(
    'a second serve on the same data dir names the holder and exits non-zero',
    async () => {
      const data = join(dir, 'data');
      const first = await serve(data);
      const second = await runCli(['serve', '--port', '0', '--data-dir', data]);
      expect(second.code).not.toBe(0);
      expect(second.stdout).not.toContain('listening');
      expect(second.stderr.trim().split('\n')).toHaveLength(1);
      expect(second.stderr).toMatch(/^error: data_dir_locked: /);
      expect(second.stderr).toContain(`process ${first.child.pid}`);
      // The first one is unharmed.
      expect((await fetch(`${first.url}/readyz`)).status).toBe(200);
    },
    SLOW,
  );

  it(
    'admin bootstrap refuses while a server holds the data dir, and runs after it stops',
    async () => {
      const data = join(dir, 'data');
      const server = await serve(data);
      const refused = await runCli(['admin', 'bootstrap', '--data-dir', data, '--json']);
      expect(refused.code).toBe(1);
      // With --json, the failure is one JSON line on stderr (README "Exit codes").
      expect(refused.stderr).toMatch(/^\{"error":\{"code":"data_dir_locked","message":/);
      expect(refused.stderr).toContain(`process ${server.child.pid}`);
      expect(await server.stop()).toBe(0);
      const ok = await runCli(['admin', 'bootstrap', '--data-dir', data, '--json']);
      expect(ok.code, ok.stderr).toBe(0);
    },
    SLOW,
  );

  it(
    'a lock left by a killed process is taken over; a lock file of garbage is not',
    async () => {
      const data = join(dir, 'data');
      const killed = await serve(data);
      killed.child.kill('SIGKILL');
      await once(killed.child, 'exit');
      running = [];
      const lock = JSON.parse(await readFile(join(data, 'latchkey.lock'), 'utf8')) as { pid: number };
      expect(lock.pid).toBe(killed.child.pid);
      const next = await serve(data);
      expect((await fetch(`${next.url}/readyz`)).status).toBe(200);
      expect(await next.stop()).toBe(0);
      await expect(lstat(join(data, 'latchkey.lock'))).rejects.toThrow();

      await writeFile(join(data, 'latchkey.lock'), 'not a lock', { mode: 0o600 });
      const r = await runCli(['serve', '--port', '0', '--data-dir', data]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/^error: data_dir_locked: /);
    },
    SLOW,
  );

  it(
    'of two serves started at once on one data dir, exactly one comes up',
    async () => {
      const data = join(dir, 'race');
      const procs = [0, 1].map(() =>
        spawn(process.execPath, [join(import.meta.dirname, '../../dist/cli/main.js'), 'serve', '--port', '0', '--data-dir', data], {
          env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'warn' },
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
      const outcomes = await Promise.all(
        procs.map(
          (p) =>
            new Promise<'ready' | 'refused'>((resolve) => {
              let out = '';
              p.stdout.on('data', (d: Buffer) => {
                out += d.toString();
                if (out.includes('listening on')) resolve('ready');
              });
              p.once('exit', () => resolve('refused'));
            }),
        ),
      );
      try {
        expect(outcomes.sort()).toEqual(['ready', 'refused']);
        // The loser removed nothing of the winner's (it did not create the dir it failed to lock).
        expect((await lstat(join(data, 'identity.key'))).isFile()).toBe(true);
        expect((await lstat(join(data, 'pglite'))).isDirectory()).toBe(true);
      } finally {
        for (const p of procs)
          if (p.exitCode === null) {
            p.kill('SIGTERM');
            await once(p, 'exit');
          }
      }
    },
    SLOW,
  );
});
