// What every admin command shares: where the server is, which admin credential to use, --json.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { dataDirLayout } from '../runtime/config.js';
import { Option, type Command } from 'commander';
import { ProtocolError } from '../protocol/errors.js';
import { endpoint, HttpError, request } from '../agent/http.js';
import { withProxyOption } from './proxy-option.js';
import { parseServerUrl } from './inputs.js';
import { CliError } from './run.js';
import { durationSeconds } from '../server/lifetimes.js';

export interface AdminOptions {
  server: string;
  adminToken?: string;
  dataDir: string;
  json?: boolean;
}

export function withAdminOptions(cmd: Command): Command {
  return withProxyOption(cmd)
    .addOption(
      new Option('--server <url>', 'Latchkey server URL')
        .env('LATCHKEY_SERVER')
        .default('http://127.0.0.1:8080')
        .argParser(parseServerUrl('--server')),
    )
    .addOption(new Option('--admin-token <credential>', 'admin credential (default: <data-dir>/admin.token)').env('LATCHKEY_ADMIN_TOKEN'))
    .addOption(new Option('--data-dir <dir>', 'where admin.token lives').env('LATCHKEY_DATA_DIR').default('./.latchkey'))
    .option('--json', 'machine-readable output');
}

async function credential(opts: AdminOptions): Promise<string> {
  if (opts.adminToken) return opts.adminToken.trim();
  const file = dataDirLayout(resolve(opts.dataDir)).adminToken;
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    throw new CliError('unauthorized', `no admin credential: pass --admin-token, set LATCHKEY_ADMIN_TOKEN, or run where ${file} exists`);
  }
}

/** One admin API call; server errors surface as their stable code. */
export async function adminCall(opts: AdminOptions, method: string, path: string, body?: unknown): Promise<unknown> {
  warnIfPlainHttp(opts.server);
  const headers: Record<string, string> = { authorization: `Bearer ${await credential(opts)}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  try {
    return await request(endpoint(opts.server, path), { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  } catch (err) {
    if (err instanceof HttpError) throw new CliError(err.code, err.message);
    if (err instanceof ProtocolError) throw err;
    throw err;
  }
}

let warned = false;

/**
 * An admin credential sent over plain http:// to another machine can be read on the way: say so on
 * stderr (once per command). Loopback is exempt: a local server, or a TLS-terminating tunnel to one.
 */
export function warnIfPlainHttp(server: string): void {
  if (warned) return;
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    return; // the request itself reports the bad URL
  }
  if (url.protocol !== 'http:' || isLoopback(url.hostname)) return;
  warned = true;
  process.stderr.write(`warning: sending an admin credential over plain HTTP to ${url.host}; use https:// (see README, TLS)\n`);
}

/** localhost, 127.0.0.0/8, ::1 (URL hostnames keep IPv6 brackets). */
export function isLoopback(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return (
    h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:7f00:1'
  );
}

/** Prints JSON, or a plain table of the given columns. */
export function printRows(rows: Record<string, unknown>[], columns: string[]): void {
  const cell = (v: unknown) => (v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  console.log(line(columns.map((c) => c.toUpperCase())));
  for (const r of rows) console.log(line(columns.map((c) => cell(r[c]))));
}

/** `30s`, `15m`, `1h`, `7d`, or plain seconds. */
export function parseDuration(text: string): number {
  const seconds = durationSeconds(text);
  if (seconds === undefined) throw new CliError('usage', `invalid duration ${JSON.stringify(text)} (use e.g. 30m, 1h, 7d)`, 2);
  return seconds;
}

/** A parser for a duration flag between min and max seconds (a usage error, exit 2, outside). */
export function parseDurationIn(flag: string, min: number, max: number): (text: string) => number {
  const show = showDuration;
  return (text) => {
    const seconds = parseDuration(text);
    if (seconds < min || seconds > max)
      throw new CliError('usage', `${flag} must be between ${show(min)} and ${show(max)}, got ${JSON.stringify(text)}`, 2);
    return seconds;
  };
}

/** Seconds as the largest whole unit: 1m, 30d, 90s. */
export function showDuration(x: number): string {
  return x === 0 ? '0s' : x % 86400 === 0 ? `${x / 86400}d` : x % 3600 === 0 ? `${x / 3600}h` : x % 60 === 0 ? `${x / 60}m` : `${x}s`;
}
