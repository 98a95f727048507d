// First start, restart and resident memory of a real `latchkey serve` process (the built CLI), on the
// embedded database and on PostgreSQL. First start: an empty data dir (PGlite must be initialised);
// restart: the same dir again. RSS is read from /proc after "listening" and after a spell of light
// load (GET /readyz, a few a second), which is what an idle server with a small fleet looks like.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const MiB = 1024 * 1024;

export interface StartSample {
  /** From spawn to the "listening" line on stdout. */
  listeningMs: number;
  rssAfterStartMiB: number;
  /** After `loadSeconds` of light load. */
  rssAfterLoadMiB: number;
  /** The largest resident set the process ever had (VmHWM). */
  peakRssMiB: number;
}

async function status(pid: number): Promise<{ rss: number; hwm: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}

const mib = (bytes: number) => Math.round(bytes / MiB);

async function sample(args: string[], env: Record<string, string>, loadSeconds: number): Promise<StartSample> {
  const started = performance.now();
  const child: ChildProcess = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--log-level', 'warn', ...args], {
    // One process: this measures a single server's start (serve --workers is bench/workers.ts).
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LATCHKEY_WORKERS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    let out = '';
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /latchkey listening on (\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
    });
    const listeningMs = Math.round(performance.now() - started);
    const afterStart = await status(child.pid!);
    const until = Date.now() + loadSeconds * 1000;
    while (Date.now() < until) {
      await Promise.all([fetch(`${url}/readyz`).then((r) => r.arrayBuffer()), fetch(`${url}/metrics`).then((r) => r.arrayBuffer())]);
      await new Promise((r) => setTimeout(r, 200));
    }
    const afterLoad = await status(child.pid!);
    return { listeningMs, rssAfterStartMiB: mib(afterStart.rss), rssAfterLoadMiB: mib(afterLoad.rss), peakRssMiB: mib(afterLoad.hwm) };
  } finally {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  }
}

export interface StartupOptions {
  /** Seconds of light load before the second RSS reading (LATCHKEY_BENCH_LOAD_SECONDS, default 20). */
  loadSeconds?: number;
  /** PostgreSQL for the `postgres` case (LATCHKEY_BENCH_DATABASE_URL); skipped when absent. */
  databaseUrl?: string | undefined;
}

export async function benchStartup(opts: StartupOptions = {}): Promise<Record<string, unknown>> {
  const loadSeconds = opts.loadSeconds ?? Number(process.env.LATCHKEY_BENCH_LOAD_SECONDS ?? 20);
  const databaseUrl = opts.databaseUrl ?? process.env.LATCHKEY_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-bench-startup-'));
  try {
    const dataDir = join(dir, 'data');
    const pglite = {
      firstStart: await sample(['--data-dir', dataDir], {}, loadSeconds),
      restart: await sample(['--data-dir', dataDir], {}, loadSeconds),
    };
    let onPostgres: Record<string, unknown>;
    try {
      onPostgres = await withScratchDatabase(databaseUrl, async (url) => {
        const pgDir = join(dir, 'pg');
        return {
          firstStart: await sample(['--data-dir', pgDir, '--database-url', url], {}, loadSeconds),
          restart: await sample(['--data-dir', pgDir, '--database-url', url], {}, loadSeconds),
        };
      });
    } catch (err) {
      onPostgres = { skipped: String(err).split('\n')[0] };
    }
    return { loadSeconds, pglite, postgres: onPostgres };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A database of its own on the server `url` names (first start migrates an empty one), dropped after. */
async function withScratchDatabase<T>(url: string, fn: (url: string) => Promise<T>): Promise<T> {
  const name = `latchkey_bench_${process.pid}_${Date.now()}`;
  const maintenance = new URL(url);
  maintenance.pathname = '/postgres';
  const sql = postgres(maintenance.toString(), { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`CREATE DATABASE ${sql(name)}`;
    try {
      const target = new URL(url);
      target.pathname = `/${name}`;
      return await fn(target.toString());
    } finally {
      await sql`DROP DATABASE IF EXISTS ${sql(name)} WITH (FORCE)`;
    }
  } finally {
    await sql.end({ timeout: 1 });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await benchStartup(), null, 2));
}
