// A real receiver of GLPI's inventory protocol for tests: GLPI-Agent's proxy server plugin in
// local-store mode (test/vendor/glpi-agent, see its PROVENANCE.md), which answers as GLPI does and
// writes each inventory it is sent to <store>/<deviceid>.json, byte for byte as received.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { until } from './process.js';

export const GLPI_AGENT_DIR = fileURLToPath(new URL('../vendor/glpi-agent/', import.meta.url));
const PERL_MODULES = ['Cpanel::JSON::XS', 'DateTime', 'XML::LibXML', 'Data::UUID', 'HTTP::Daemon', 'Net::IP', 'Compress::Zlib'];
const DEBIAN_PACKAGES = ['fusioninventory-agent', 'libcpanel-json-xs-perl', 'libdatetime-perl', 'libxml-libxml-perl', 'libdata-uuid-perl'];

const perlHasModules = () => spawnSync('perl', [...PERL_MODULES.map((m) => `-M${m}`), '-e1'], { stdio: 'ignore' }).status === 0;

/** The Perl modules GLPI-Agent needs: installed with apt-get when missing and we are root (as .ci/run does). */
export function ensureGlpiAgentDeps(): void {
  if (perlHasModules()) return;
  if (process.getuid?.() === 0) {
    spawnSync('apt-get', ['install', '-y', '-o', 'DPkg::Lock::Timeout=600', ...DEBIAN_PACKAGES], { stdio: 'ignore' });
    if (perlHasModules()) return;
  }
  throw new Error(`GLPI-Agent needs Perl modules ${PERL_MODULES.join(', ')}: apt-get install -y ${DEBIAN_PACKAGES.join(' ')}`);
}

/** A port free right now (the receiver needs a fixed one: it is restarted on it). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export interface GlpiReceiver {
  url: string;
  store: string;
  /** SIGKILL: the receiver vanishes mid-stream, as a crash would. */
  kill(): Promise<void>;
  stop(): Promise<void>;
  /** Waits until an inventory of each deviceid is stored (whole), and returns them parsed, in that order. */
  received(deviceIds: string[], timeoutMs?: number): Promise<unknown[]>;
}

/** Starts the receiver in `dir` (config, var, store) on `port`; resolves once it listens. */
export async function startGlpiReceiver(dir: string, port: number): Promise<GlpiReceiver> {
  const conf = join(dir, 'conf');
  const store = join(dir, 'store');
  const vardir = join(dir, 'var');
  await Promise.all([mkdir(conf, { recursive: true }), mkdir(store, { recursive: true }), mkdir(vardir, { recursive: true })]);
  await writeFile(
    join(conf, 'agent.cfg'),
    `server =\nhttpd-ip = 127.0.0.1\nhttpd-port = ${port}\nhttpd-trust = 127.0.0.1/32\nlogger = stderr\n`,
  );
  await writeFile(
    join(conf, 'proxy-server-plugin.cfg'),
    `disabled = no\nurl_path = /proxy\nport = 0\nonly_local_store = yes\nlocal_store = ${store}\n`,
  );
  const child: ChildProcess = spawn(
    'perl',
    ['-Ilib', 'bin/glpi-agent', `--conf-file=${join(conf, 'agent.cfg')}`, `--vardir=${vardir}`, '--daemon', '--no-fork', '--listen'],
    { cwd: GLPI_AGENT_DIR, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes(`HTTPD service started on port ${port}`)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`GLPI-Agent receiver exited (${code}): ${stderr}`)));
  });
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await once(child, 'exit');
  };
  const received = (deviceIds: string[], timeoutMs = 60_000) =>
    // A file not there yet, or still being written (not whole JSON), is "not yet".
    until(
      `${deviceIds.join(', ')} at the GLPI receiver`,
      async () =>
        (await Promise.all(deviceIds.map((d) => readFile(join(store, `${d}.json`), 'utf8')))).map((t) => JSON.parse(t) as unknown),
      { timeoutMs, ignoreErrors: true },
    );
  return { url: `http://127.0.0.1:${port}/proxy/glpi`, store, kill: () => end('SIGKILL'), stop: () => end('SIGTERM'), received };
}
