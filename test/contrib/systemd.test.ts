// Issue 14: the systemd units in contrib/systemd/ (server, agent, relay) pass `systemd-analyze verify`
// (Debian's systemd package; .ci/run installs it when missing) without a single warning, and keep the
// deployment rules: a dedicated user, state under /var/lib/latchkey, a read-only system, no new
// privileges, restart on failure. verify needs ExecStart's binary to exist, so each unit is checked
// as a copy whose /usr/local/bin/latchkey points at an executable this test creates.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const UNITS = fileURLToPath(new URL('../../contrib/systemd/', import.meta.url));
const BIN = '/usr/local/bin/latchkey';
const available = await run('systemd-analyze', ['--version']).then(
  () => true,
  () => false,
);
if (!available && process.env.CI === 'true') throw new Error('systemd-analyze is missing (apt-get install systemd)');
if (!available) console.warn('systemd-analyze not found: the systemd unit checks are skipped (apt-get install systemd)');

describe.skipIf(!available)('systemd units', () => {
  let dir: string;
  let names: string[];
  const verify = async (unit: string) =>
    run('systemd-analyze', ['verify', '--man=no', unit], { cwd: dir }).then(
      (r) => ({ code: 0, stderr: r.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
  const copy = async (name: string, edit: (text: string) => string = (t) => t) => {
    const text = await readFile(join(UNITS, name), 'utf8');
    const path = join(dir, name);
    await writeFile(path, edit(text.replaceAll(BIN, join(dir, 'latchkey'))));
    return path;
  };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-systemd-'));
    await writeFile(join(dir, 'latchkey'), '#!/bin/sh\nexit 0\n');
    await chmod(join(dir, 'latchkey'), 0o755);
    names = (await readdir(UNITS)).filter((n) => n.endsWith('.service')).sort();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('has a unit for the server, an agent and a relay, each with the deployment rules', async () => {
    expect(names).toEqual(['latchkey-agent.service', 'latchkey-relay.service', 'latchkey-server.service']);
    for (const name of names) {
      const text = await readFile(join(UNITS, name), 'utf8');
      const role = /^latchkey-(\w+)\.service$/.exec(name)![1]!;
      for (const line of [
        'User=latchkey',
        `StateDirectory=latchkey/${role}`,
        'ProtectSystem=strict',
        'NoNewPrivileges=yes',
        'Restart=on-failure',
        'ProtectHome=yes',
        'PrivateTmp=yes',
      ])
        expect(text.split('\n'), `${name}: ${line}`).toContain(line);
      expect(text).toMatch(new RegExp(`^ExecStart=${BIN} `, 'm'));
    }
    const relay = await readFile(join(UNITS, 'latchkey-relay.service'), 'utf8');
    expect(relay).toMatch(/^ExecStart=\S+ relay serve --listen \S+ --upstream \S+ --state-dir \/var\/lib\/latchkey\/relay$/m);
    const server = await readFile(join(UNITS, 'latchkey-server.service'), 'utf8');
    expect(server).toContain('Environment=LATCHKEY_DATA_DIR=/var/lib/latchkey/server');
  });

  it('passes systemd-analyze verify without a warning', async () => {
    for (const name of names) {
      const r = await verify(await copy(name));
      expect([name, r.code, r.stderr.trim()]).toEqual([name, 0, '']);
    }
  });

  it('would notice a broken unit (the check can fail)', async () => {
    const r = await verify(await copy('latchkey-server.service', (t) => t.replace('NoNewPrivileges=yes', 'NoNewPrivileges=perhaps')));
    expect(r.stderr).toContain('Failed to parse boolean value, ignoring: perhaps');
  });
});
