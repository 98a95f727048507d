// Real `latchkey` processes for tests: the built CLI (dist/, built by global-setup), spawned with
// a clean environment so the developer's own settings never leak in.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  // One serving process unless a test asks for `--workers` (the default on PostgreSQL is one per CPU).
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'warn', LATCHKEY_WORKERS: '1' };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  /** Run the process under this umask (through /bin/sh), e.g. 0o000 to test file modes. */
  umask?: number;
}

function spawnCli(args: string[], env: Record<string, string | undefined>, stdin: 'pipe' | 'ignore', opts: SpawnOptions): ChildProcess {
  const stdio: ['pipe' | 'ignore', 'pipe', 'pipe'] = [stdin, 'pipe', 'pipe'];
  if (opts.umask === undefined) return spawn(process.execPath, [CLI, ...args], { env: cleanEnv(env), stdio });
  const script = `umask ${opts.umask.toString(8).padStart(3, '0')}; exec "$0" "$@"`;
  return spawn('/bin/sh', ['-c', script, process.execPath, CLI, ...args], { env: cleanEnv(env), stdio });
}

/** Runs the CLI to completion. */
export async function runCli(
  args: string[],
  env: Record<string, string | undefined> = {},
  input?: string,
  opts: SpawnOptions = {},
): Promise<CliResult> {
  const child = spawnCli(args, env, 'pipe', opts) as ChildProcess & {
    stdin: NodeJS.WritableStream;
    stdout: NodeJS.ReadableStream;
    stderr: NodeJS.ReadableStream;
  };
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(input ?? '');
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

/**
 * `latchkey agent enroll --json` as a real process, with `--name` when given: the test fails unless it
 * exits 0. Returns the agent's id.
 */
export async function enrollWithCli(serverUrl: string, token: string, stateDir: string, name?: string): Promise<string> {
  const r = await runCli([
    'agent',
    'enroll',
    '--server',
    serverUrl,
    '--token',
    token,
    '--state-dir',
    stateDir,
    ...(name === undefined ? [] : ['--name', name]),
    '--json',
  ]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { agentId: string }).agentId;
}

export interface ServeProcess {
  url: string;
  fingerprint: string;
  child: ChildProcess;
  output(): { stdout: string; stderr: string };
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `latchkey serve --port 0` and waits for its "listening on" line. */
export async function startServe(
  args: string[],
  env: Record<string, string | undefined> = {},
  opts: SpawnOptions = {},
): Promise<ServeProcess> {
  const child = spawnCli(['serve', '--port', '0', ...args], env, 'ignore', opts) as ChildProcess & {
    stdout: NodeJS.ReadableStream;
    stderr: NodeJS.ReadableStream;
  };
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = new Promise<{ url: string; fingerprint: string }>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const url = /latchkey listening on (\S+)/.exec(stdout)?.[1];
      const fingerprint = /server key fingerprint (\S+)/.exec(stdout)?.[1];
      if (url && fingerprint) resolve({ url, fingerprint });
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
  const { url, fingerprint } = await ready;
  return {
    url,
    fingerprint,
    child,
    output: () => ({ stdout, stderr }),
    stop: async () => {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      return code;
    },
  };
}

export interface UntilOptions {
  /** Give up (throw) after this long; 60 s unless told. */
  timeoutMs?: number;
  /** Wait this long between probes; 100 ms unless told. */
  everyMs?: number;
  /** A probe that throws counts as "not yet" (a process still starting, a file half written). */
  ignoreErrors?: boolean;
}

/**
 * Polls `probe` until it returns something other than undefined, and returns that; throws
 * "timed out waiting for <what>" past the deadline. For waiting on real processes, never for timing.
 */
export async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, opts: UntilOptions = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    const v = opts.ignoreErrors
      ? await Promise.resolve()
          .then(probe)
          .catch(() => undefined)
      : await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 100));
  }
}
