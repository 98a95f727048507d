// Issue 14, "README and CLI": the real `latchkey` binary's conventions. Exit codes are 0 ok, 1
// refused or failed, 2 usage; with --json the error is JSON on stderr. `token create` prints the
// token alone on stdout and the enroll line on stderr; admin commands take an agent's id or name;
// a refused enrollment leaves no state dir; the default agent name is the host name. One in-process
// server (PGlite) for the file: the API side of these commands runs on both databases in
// test/server/agents-admin.test.ts.
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostAgentName } from '../../src/agent/enroll.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { runCli } from '../helpers/process.js';

const inventory = new URL('../fixtures/glpi/format/printer_2.json', import.meta.url).pathname;
const jsonError = (stderr: string) => (JSON.parse(stderr.trim()) as { error: { code: string; message: string } }).error;

// Timeouts are generous: each test runs a dozen real CLI processes, slow on a busy 2-core machine.
describe('CLI conventions', { timeout: 240_000 }, () => {
  let server: TestServer;
  let dir: string;
  let env: Record<string, string>;
  const tokenFor = async (...args: string[]) => {
    const r = await runCli(['token', 'create', ...args], env);
    expect(r.code, r.stderr).toBe(0);
    return r;
  };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-conventions-'));
    server = await startTestServer('pglite');
    env = { LATCHKEY_SERVER: server.url, LATCHKEY_ADMIN_TOKEN: server.adminToken };
  }, 180_000);
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('token create: the token alone on stdout, the enroll line on stderr; limits in --help and errors', async () => {
    const r = await tokenFor('--uses', '2');
    const token = r.stdout.trim();
    expect(r.stdout).toBe(`${token}\n`);
    expect(token).toMatch(/^lk1_[A-Za-z0-9_-]+$/);
    expect(r.stderr).toContain(`latchkey agent enroll --server ${server.url} --token ${token} --state-dir `);
    expect(r.stderr).toMatch(/2 uses\), expires /);

    const help = await runCli(['token', 'create', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('1m to 30d');
    expect(help.stdout).toContain('1 to 10000');
    for (const [flag, value, text] of [
      ['--ttl', '30s', '--ttl must be between 1m and 30d'],
      ['--ttl', '31d', '--ttl must be between 1m and 30d'],
      ['--uses', '0', '--uses must be between 1 and 10000'],
      ['--uses', '10001', '--uses must be between 1 and 10000'],
    ] as const) {
      const bad = await runCli(['token', 'create', flag, value], env);
      expect([bad.code, bad.stdout]).toEqual([2, '']);
      expect(bad.stderr).toContain(`error: usage: ${text}`);
    }
    const asJson = await runCli(['token', 'create', '--ttl', '31d', '--json'], env);
    expect(asJson.code).toBe(2);
    expect(jsonError(asJson.stderr)).toEqual({ code: 'usage', message: expect.stringContaining('--ttl must be between 1m and 30d') });
  });

  it('usage errors exit 2 (JSON with --json), refusals exit 1, --help and --version 0', async () => {
    const version = await runCli(['--version']);
    expect([version.code, version.stdout.trim()]).toEqual([0, '0.1.0']);
    const unknown = await runCli(['agents', 'list', '--bogus'], env);
    expect(unknown.code).toBe(2);
    const unknownJson = await runCli(['agents', 'list', '--bogus', '--json'], env);
    expect(unknownJson.code).toBe(2);
    expect(jsonError(unknownJson.stderr)).toEqual({ code: 'usage', message: "unknown option '--bogus'" });
    const missing = await runCli(['agent', 'enroll', '--state-dir', join(dir, 'm'), '--json'], { LATCHKEY_TOKEN: 'lk1_x' });
    expect(missing.code).toBe(2);
    expect(jsonError(missing.stderr).code).toBe('usage');

    // A server URL without a scheme: usage, for agent and admin commands alike.
    for (const args of [
      ['agent', 'enroll', '--server', '127.0.0.1:8080', '--token', 'lk1_x', '--state-dir', join(dir, 's')],
      ['agents', 'list', '--server', 'localhost:8080'],
    ]) {
      const r = await runCli([...args, '--json'], env);
      expect(r.code).toBe(2);
      expect(jsonError(r.stderr)).toEqual({
        code: 'usage',
        message: expect.stringContaining('--server must be an http:// or https:// URL'),
      });
    }
    await expect(stat(join(dir, 's'))).rejects.toMatchObject({ code: 'ENOENT' });

    // A refusal by the server: exit 1, its code.
    const refused = await runCli(['agents', 'show', 'nobody', '--json'], env);
    expect(refused.code).toBe(1);
    expect(jsonError(refused.stderr).code).toBe('not_found');
    const plain = await runCli(['agents', 'show', 'nobody'], env);
    expect([plain.code, plain.stderr.trim()]).toEqual([1, 'error: not_found: no such agent']);
    const noCredential = await runCli(['agents', 'list'], { LATCHKEY_SERVER: server.url, LATCHKEY_DATA_DIR: join(dir, 'none') });
    expect(noCredential.code).toBe(1);
    expect(noCredential.stderr).toMatch(/^error: unauthorized: /);
  });

  it('a refused enrollment leaves no state dir; the default name is the host name', async () => {
    const state = join(dir, 'nested', 'agent');
    const used = (await tokenFor()).stdout.trim();
    const first = await runCli(['agent', 'enroll', '--server', server.url, '--token', used, '--state-dir', join(dir, 'first'), '--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ name: hostAgentName() });

    const again = await runCli([
      'agent',
      'enroll',
      '--server',
      server.url,
      '--token',
      used,
      '--state-dir',
      state,
      '--name',
      'x-1',
      '--json',
    ]);
    expect(again.code).toBe(1);
    expect(jsonError(again.stderr).code).toBe('token_used');
    await expect(stat(join(dir, 'nested'))).rejects.toMatchObject({ code: 'ENOENT' });

    const unreachable = await runCli(
      ['agent', 'enroll', '--server', 'http://127.0.0.1:1', '--token', used, '--state-dir', state, '--name', 'x-1'],
      {},
    );
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/^error: unreachable: /);
    await expect(stat(join(dir, 'nested'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('agent send: a missing --file is a usage error, XML is refused with a pointer to the relay', async () => {
    const state = join(dir, 'sender');
    const token = (await tokenFor('--label', 'env=lab')).stdout.trim();
    const enrolled = await runCli(['agent', 'enroll', '--server', server.url, '--token', token, '--state-dir', state, '--name', 'lab-7']);
    expect(enrolled.code, enrolled.stderr).toBe(0);

    const noFlag = await runCli(['agent', 'send', '--state-dir', state]);
    expect([noFlag.code, noFlag.stderr.trim()]).toEqual([2, 'error: usage: give exactly one of --file or --envelope']);
    const noFile = await runCli(['agent', 'send', '--state-dir', state, '--file', join(dir, 'absent.json'), '--json']);
    expect(noFile.code).toBe(2);
    expect(jsonError(noFile.stderr)).toEqual({ code: 'usage', message: `--file: no readable file at ${join(dir, 'absent.json')}` });
    const xml = join(dir, 'inventory.xml');
    await writeFile(xml, '<?xml version="1.0" encoding="UTF-8"?>\n<REQUEST><QUERY>INVENTORY</QUERY></REQUEST>\n');
    const refused = await runCli(['agent', 'send', '--state-dir', state, '--file', xml]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toBe(
      "error: payload_invalid: GLPI native JSON expected (XML agents go through a relay's legacy listener)",
    );
    const runUsage = await runCli(['agent', 'run', '--state-dir', state, '--file', join(dir, 'absent.json')]);
    expect(runUsage.code).toBe(2);

    const sent = await runCli(['agent', 'send', '--state-dir', state, '--file', inventory]);
    expect(sent.code, sent.stderr).toBe(0);
  });

  it('agents show / list filters / delete take an id or a name', async () => {
    const listed = await runCli(['agents', 'list', '--label', 'env=lab', '--status', 'active', '--json'], env);
    expect(listed.code, listed.stderr).toBe(0);
    const rows = JSON.parse(listed.stdout) as { id: string; name: string }[];
    expect(rows.map((a) => a.name)).toEqual(['lab-7']);
    expect(JSON.parse((await runCli(['agents', 'list', '--name', 'lab-?', '--json'], env)).stdout)).toHaveLength(1);
    expect(JSON.parse((await runCli(['agents', 'list', '--status', 'revoked', '--json'], env)).stdout)).toHaveLength(0);
    expect((await runCli(['agents', 'list', '--status', 'gone'], env)).code).toBe(2);

    const shown = await runCli(['agents', 'show', 'lab-7'], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(rows[0]!.id);
    expect(shown.stdout).toMatch(/lastSeenAt\s+\d{4}-/);
    expect(shown.stdout).toMatch(/labels\s+\{"env":"lab"\}/);
    expect(shown.stdout).toMatch(/SIGKID\s+KXKID\s+STATUS/);
    const inv = await runCli(['inventory', 'show', 'lab-7', '--json'], env);
    expect([inv.code, (JSON.parse(inv.stdout) as { agentId: string }).agentId]).toEqual([0, rows[0]!.id]);

    const early = await runCli(['agents', 'delete', 'lab-7'], env);
    expect([early.code, early.stderr.trim()]).toEqual([1, 'error: agent_not_revoked: revoke the agent before deleting it']);
    expect((await runCli(['agents', 'revoke', 'lab-7', '--reason', 'retired'], env)).code).toBe(0);
    const deleted = await runCli(['agents', 'delete', rows[0]!.id], env);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stdout.trim()).toBe(`deleted agent ${rows[0]!.id} (lab-7): 1 keys, 1 inventories`);

    // The name is free again.
    const token = (await tokenFor()).stdout.trim();
    const reused = await runCli([
      'agent',
      'enroll',
      '--server',
      server.url,
      '--token',
      token,
      '--state-dir',
      join(dir, 'lab-7b'),
      '--name',
      'lab-7',
    ]);
    expect(reused.code, reused.stderr).toBe(0);
  });
});
