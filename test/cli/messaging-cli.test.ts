// The real binary: agent send/seal, inventory show, and the agent daemon against a server that is
// down at first and comes up later; SIGTERM ends the daemon cleanly.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cleanEnv, runCli, startServe, type ServeProcess } from '../helpers/process.js';

const fixture = (name: string) => new URL(`../fixtures/glpi/${name}`, import.meta.url).pathname;

describe('agent messaging CLI against a real server', () => {
  let dir: string;
  let server: ServeProcess;
  let env: Record<string, string>;
  let state: string;
  let agentId: string;
  let port: number;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-msgcli-'));
    server = await startServe(['--data-dir', join(dir, 'data')]);
    port = Number(new URL(server.url).port);
    env = { LATCHKEY_SERVER: server.url, LATCHKEY_DATA_DIR: join(dir, 'data') };
    const { token } = JSON.parse((await runCli(['token', 'create', '--json'], env)).stdout) as { token: string };
    state = join(dir, 'agent');
    agentId = JSON.parse((await runCli(['agent', 'enroll', '--server', server.url, '--token', token, '--state-dir', state, '--json'])).stdout).agentId;
  });
  afterAll(async () => {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('sends, seals for offline transfer, refuses the same envelope twice, shows the inventory', async () => {
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
    await server.stop();
    const daemon = spawn(process.execPath, [CLI, 'agent', 'run', '--state-dir', state, '--file', fixture('format/printer_2.json'), '--interval', '1h'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    daemon.stdout.on('data', (d: Buffer) => (log += d.toString()));
    const waitFor = async (re: RegExp, ms: number) => {
      const until = Date.now() + ms;
      while (!re.test(log) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      return re.test(log);
    };
    expect(await waitFor(/"event":"retry".*"code":"unreachable"/, 10_000)).toBe(true);
    server = await startServe(['--data-dir', join(dir, 'data'), '--port', String(port)]);
    expect(await waitFor(/"event":"sent"/, 20_000)).toBe(true);
    daemon.kill('SIGTERM');
    const [code] = (await once(daemon, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(log).toMatch(/"event":"stopped"/);
  });
});
