// The real binary: agent send/seal, inventory show, and the agent daemon against a server that is
// down at first and comes up later; SIGTERM ends the daemon cleanly. One server for the file (port 0,
// its own directory); each test enrolls its own agent.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { CLI, cleanEnv, enrollWithCli, runCli, startServe, type ServeProcess } from '../helpers/process.js';
import { startTcpFrontDoor } from '../helpers/tcp-front-door.js';

const fixture = (name: string) => new URL(`../fixtures/glpi/${name}`, import.meta.url).pathname;

interface Setup {
  dir: string;
  /** The server's data directory: a server started on it again is the same server. */
  data: string;
  server: ServeProcess;
  /** What admin commands need to reach the server. */
  env: Record<string, string>;
  state: string;
  agentId: string;
}

/**
 * The file's server (a PGlite `serve` start costs seconds of CPU), started by the first test that
 * needs it; the daemon test stops it and starts it again on the same data directory.
 */
let served: { dir: string; data: string; server: ServeProcess; restarted?: Promise<ServeProcess> } | undefined;
afterAll(async () => {
  if (!served) return;
  await served.server.stop(); // at once if already stopped
  await (await served.restarted?.catch(() => undefined))?.stop();
  await rm(served.dir, { recursive: true, force: true });
});

/**
 * The file's server and a new agent enrolled with it under `name`. The agent enrolls at
 * `agentUrl(server)` (default: the server's own URL), which its state keeps for sending.
 */
async function enrolledAgent(name: string, agentUrl: (server: ServeProcess) => string = (s) => s.url): Promise<Setup> {
  if (!served) {
    const dir = await mkdtemp(join(tmpdir(), 'latchkey-msgcli-'));
    served = { dir, data: join(dir, 'data'), server: await startServe(['--data-dir', join(dir, 'data')]) };
  }
  const { dir, data, server } = served;
  const setup: Setup = { dir, data, server, env: {}, state: join(dir, name), agentId: '' };
  setup.env = { LATCHKEY_SERVER: setup.server.url, LATCHKEY_DATA_DIR: data };
  const created = await runCli(['token', 'create', '--json'], setup.env);
  expect(created.code, created.stderr).toBe(0);
  const { token } = JSON.parse(created.stdout) as { token: string };
  setup.agentId = await enrollWithCli(agentUrl(setup.server), token, setup.state, name);
  return setup;
}

// `latchkey serve` processes: on a loaded two-core machine a start alone can take tens of seconds.
describe('agent messaging CLI against a real server', { timeout: 120_000 }, () => {
  it('sends, seals for offline transfer, refuses the same envelope twice, shows the inventory', async () => {
    const { dir, env, state, agentId } = await enrolledAgent('sender');
    const sent = await runCli(['agent', 'send', '--state-dir', state, '--file', fixture('format/computer_1.json'), '--json']);
    expect(sent.code).toBe(0);
    expect(JSON.parse(sent.stdout).status).toBe('accepted');

    const out = join(dir, 'envelope.json');
    expect((await runCli(['agent', 'seal', '--state-dir', state, '--file', fixture('format/printer_1.json'), '--out', out])).code).toBe(0);
    expect(await readFile(out, 'utf8')).not.toContain('netinventory');
    expect((await runCli(['agent', 'send', '--state-dir', state, '--envelope', out])).code).toBe(0);
    const again = await runCli(['agent', 'send', '--state-dir', state, '--envelope', out]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/^error: replay_detected:/);

    const shown = await runCli(['inventory', 'show', agentId, '--json'], env);
    expect(JSON.parse(shown.stdout).inventory).toEqual(JSON.parse(await readFile(fixture('format/printer_1.json'), 'utf8')));

    const bad = await runCli(['agent', 'send', '--state-dir', join(dir, 'nowhere'), '--file', fixture('format/printer_1.json')]);
    expect(bad.stderr).toMatch(/^error: state_missing:/);
  });

  it('the daemon retries while the server is down, delivers when it is back, and exits 0 on SIGTERM', async () => {
    // The agent knows the server by an address the test holds throughout; the server behind it is
    // stopped, then started again (same data directory: the same server) on a new port.
    const door = await startTcpFrontDoor(null);
    onTestFinished(() => door.close());
    const setup = await enrolledAgent('daemon', (server) => {
      door.setBackend(Number(new URL(server.url).port));
      return door.url;
    });
    expect(await setup.server.stop()).toBe(0);
    door.setBackend(null);

    const daemon = spawn(
      process.execPath,
      [CLI, 'agent', 'run', '--state-dir', setup.state, '--file', fixture('format/printer_2.json'), '--interval', '1h'],
      {
        env: cleanEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    onTestFinished(() => void daemon.kill('SIGKILL'));
    let log = '';
    daemon.stdout.on('data', (d: Buffer) => (log += d.toString()));
    const waitFor = async (re: RegExp, ms: number) => {
      const until = Date.now() + ms;
      while (!re.test(log) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      return re.test(log);
    };
    // The server starts again meanwhile (slow on a loaded machine) but stays unreachable until the
    // daemon has been refused at least once.
    const restarted = startServe(['--data-dir', setup.data]);
    served!.restarted = restarted; // afterAll stops it
    expect(await waitFor(/"event":"retry".*"code":"unreachable"/, 30_000)).toBe(true);
    expect(log).not.toMatch(/"event":"sent"/);
    setup.server = await restarted;
    door.setBackend(Number(new URL(setup.server.url).port));
    expect(await waitFor(/"event":"sent"/, 40_000)).toBe(true);
    daemon.kill('SIGTERM');
    const [code] = (await once(daemon, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(log).toMatch(/"event":"stopped"/);
    const shown = await runCli(['inventory', 'show', setup.agentId, '--json'], { ...setup.env, LATCHKEY_SERVER: setup.server.url });
    expect(JSON.parse(shown.stdout).inventory).toEqual(JSON.parse(await readFile(fixture('format/printer_2.json'), 'utf8')));
  });
});
