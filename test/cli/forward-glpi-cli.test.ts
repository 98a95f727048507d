// GLPI forwarding end to end with real processes: `latchkey serve --forward-glpi` in front of the
// real GLPI-Agent proxy receiver (test/helpers/glpi-receiver.ts). The receiver is killed mid-stream
// and started again: every inventory the server stored reaches it, exactly as stored, none lost;
// `forward status`, /metrics, and the history and export commands tell the same story.
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { enrollWithCli, runCli, startServe, until } from '../helpers/process.js';
import { ensureGlpiAgentDeps, freePort, startGlpiReceiver, type GlpiReceiver } from '../helpers/glpi-receiver.js';

const fixture = new URL('../fixtures/glpi/format/computer_1.json', import.meta.url).pathname;

describe('GLPI forwarding to the real GLPI-Agent proxy receiver', { timeout: 600_000 }, () => {
  it('delivers every stored inventory as stored, though the receiver was down for part of the run', async () => {
    ensureGlpiAgentDeps();
    const dir = await mkdtemp(join(tmpdir(), 'latchkey-forward-'));
    const port = await freePort();
    let receiver: GlpiReceiver | undefined = await startGlpiReceiver(join(dir, 'receiver'), port);
    const data = join(dir, 'data');
    // user:password in the URL: sent as basic auth (the receiver ignores it), never shown.
    const target = `http://latchkey:s3cret-pw@127.0.0.1:${port}/proxy/glpi`;
    const server = await startServe(['--data-dir', data, '--forward-glpi', target, '--forward-retry-max', '2s']);
    onTestFinished(async () => {
      await server.stop();
      await receiver?.stop();
      await rm(dir, { recursive: true, force: true });
    });
    const env = { LATCHKEY_SERVER: server.url, LATCHKEY_DATA_DIR: data };
    const created = await runCli(['token', 'create', '--json'], env);
    expect(created.code, created.stderr).toBe(0);
    const state = join(dir, 'agent');
    const agentId = await enrollWithCli(server.url, JSON.parse(created.stdout).token, state);

    const base = JSON.parse(await readFile(fixture, 'utf8')) as Record<string, unknown>;
    const send = async (i: number) => {
      const file = join(dir, `inv-${i}.json`);
      await writeFile(file, JSON.stringify({ ...base, deviceid: `latchkey-forward-${i}` }));
      const sent = await runCli(['agent', 'send', '--state-dir', state, '--file', file]);
      expect(sent.code, sent.stderr).toBe(0);
    };
    const stored = async () => (await readdir(receiver!.store)).filter((f) => f.endsWith('.json')).sort();

    for (const i of [1, 2, 3]) await send(i);
    await receiver.received([1, 2, 3].map((i) => `latchkey-forward-${i}`));

    // The receiver dies; inventories keep being accepted (ingest does not wait for GLPI).
    await receiver.kill();
    receiver = undefined;
    for (const i of [4, 5, 6]) await send(i);
    const down = await until('the failure in forward status', async () => {
      const r = await runCli(['forward', 'status', '--json'], env);
      expect(r.code, r.stderr).toBe(0);
      const [t] = (JSON.parse(r.stdout) as { targets: { backlog: number; lastError: string | null; url: string }[] }).targets;
      return t && t.backlog > 0 && t.lastError ? t : undefined;
    });
    expect(down.lastError).toBe('connection refused');
    expect(down.url).toBe(`http://127.0.0.1:${port}/proxy/glpi`);

    receiver = await startGlpiReceiver(join(dir, 'receiver'), port);
    await receiver.received([1, 2, 3, 4, 5, 6].map((i) => `latchkey-forward-${i}`));
    expect(await stored()).toEqual([1, 2, 3, 4, 5, 6].map((i) => `latchkey-forward-${i}.json`));

    // What the receiver holds is what the server stored: compare with the export.
    const exported = await runCli(['inventory', 'export', '--format', 'ndjson'], env);
    expect(exported.code, exported.stderr).toBe(0);
    const lines = exported.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { agentId: string; messageId: string; inventory: { deviceid: string } });
    expect(lines).toHaveLength(6);
    for (const l of lines) {
      expect(l.agentId).toBe(agentId);
      const received = JSON.parse(await readFile(join(receiver.store, `${l.inventory.deviceid}.json`), 'utf8')) as unknown;
      expect(received).toEqual(l.inventory);
    }

    const status = await until('an empty backlog', async () => {
      const r = JSON.parse((await runCli(['forward', 'status', '--json'], env)).stdout) as {
        targets: { backlog: number; deliveredTotal: number }[];
      };
      return r.targets[0]!.backlog === 0 ? r.targets[0]! : undefined;
    });
    expect(status.deliveredTotal).toBeGreaterThanOrEqual(6);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/latchkey_forward_backlog\{target="glpi-[0-9a-f]{16}"\} 0/);
    expect(metrics).toMatch(/latchkey_forward_last_error_timestamp_seconds\{target="glpi-[0-9a-f]{16}"\} [1-9]/);

    // History: list (with --limit and --since) and show --message.
    const list = await runCli(['inventory', 'list', agentId, '--json', '--limit', '4'], env);
    expect(list.code, list.stderr).toBe(0);
    const listed = (JSON.parse(list.stdout) as { inventories: { messageId: string }[] }).inventories;
    expect(listed.map((e) => e.messageId)).toEqual(lines.slice(0, 4).map((l) => l.messageId));
    expect(JSON.parse((await runCli(['inventory', 'list', agentId, '--json', '--since', '2999-01-01T00:00:00Z'], env)).stdout)).toEqual({
      inventories: [],
    });
    const shown = await runCli(['inventory', 'show', agentId, '--message', lines[4]!.messageId, '--json'], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect((JSON.parse(shown.stdout) as { inventory: { deviceid: string } }).inventory.deviceid).toBe('latchkey-forward-5');

    // The password never shows: not in the server's log, not in status.
    expect(server.output().stderr + server.output().stdout).not.toContain('s3cret-pw');
  });

  it('refuses a bad forwarding configuration at start, in one line naming no secret, and creates nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'latchkey-forward-bad-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const data = join(dir, 'data');
    for (const args of [
      ['--forward-glpi', 'ftp://user:pw-9f2c@glpi.example/'],
      ['--forward-glpi', 'not a url pw-9f2c'],
      ['--forward-glpi', 'https://glpi.example/', '--forward-glpi-cert', join(dir, 'cert.pem')],
    ]) {
      const r = await runCli(['serve', '--port', '0', '--data-dir', data, ...args]);
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain('startup_failed');
      expect(r.stderr).not.toContain('pw-9f2c');
      await expect(stat(data)).rejects.toThrow();
    }
  });
});
