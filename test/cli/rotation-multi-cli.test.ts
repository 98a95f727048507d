// The multi-instance rotation procedure (spec §14, README) with two real `latchkey serve` processes
// on one PostgreSQL, identities given as files (secrets), never in the database:
//   1. `identity rotate --identity-file CUR --out NEXT`, then every instance restarted with
//      --next-identity-file NEXT (accepted, not announced);
//   2. instances restarted one by one with NEXT current and CUR previous: during the roll, an agent
//      moved by an instance already on NEXT is still answered (with NEXT) by one where NEXT is next;
//   3. CUR dropped after the overlap: an agent whose credential CUR issued renews and keeps sending.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresUrl } from '../helpers/db.js';
import { createTempPostgresDatabase, type TempDatabase } from '../helpers/pg-database.js';
import { enrollWithCli, runCli, startServe, type ServeProcess } from '../helpers/process.js';

const inventory = new URL('../fixtures/glpi/format/computer_1_partial_memory.json', import.meta.url).pathname;

async function freePort(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return String(port);
}

describe.skipIf(!postgresUrl)('server key rotation across two instances on one PostgreSQL', () => {
  let dir: string;
  let db: TempDatabase;
  const running: Record<'x' | 'y', ServeProcess | undefined> = { x: undefined, y: undefined };
  const ports: Record<'x' | 'y', string> = { x: '', y: '' };
  const restart = async (name: 'x' | 'y', args: string[]) => {
    await running[name]?.stop();
    running[name] = await startServe(['--data-dir', join(dir, name), '--port', ports[name], ...args], { DATABASE_URL: db.url });
    return running[name];
  };
  const state = () => join(dir, 'agent');
  const send = async (via: 'x' | 'y') => {
    const r = await runCli(['agent', 'send', '--state-dir', state(), '--file', inventory, '--via', running[via]!.url, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { status: string }).status).toBe('accepted');
  };
  const pinned = async () => (JSON.parse(await readFile(join(state(), 'agent.json'), 'utf8')) as { server: { fp: string } }).server.fp;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-rotate-multi-'));
    db = await createTempPostgresDatabase();
    ports.x = await freePort();
    ports.y = await freePort();
  });
  afterAll(async () => {
    await running.x?.stop();
    await running.y?.stop();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('rolls a new key set through both instances without downtime', async () => {
    const cur = join(dir, 'current.key');
    const next = join(dir, 'next.key');
    await writeFile(cur, (await runCli(['identity', 'generate'])).stdout, { mode: 0o600 });
    const x = await restart('x', ['--identity-file', cur]);
    await restart('y', ['--identity-file', cur]);
    const f0 = x.fingerprint;
    const { token } = JSON.parse(
      (await runCli(['token', 'create', '--json'], { LATCHKEY_SERVER: x.url, LATCHKEY_DATA_DIR: join(dir, 'x') })).stdout,
    ) as { token: string };
    await enrollWithCli(x.url, token, state(), `multi-${Math.random().toString(36).slice(2)}`);
    await send('x');
    await send('y');

    // Step 1: the next identity, endorsed in the database; both instances accept it, neither announces it.
    const rotated = await runCli([
      'identity',
      'rotate',
      '--identity-file',
      cur,
      '--out',
      next,
      '--database-url',
      db.url,
      '--data-dir',
      join(dir, 'rotate'),
      '--json',
    ]);
    expect(rotated.code, rotated.stderr).toBe(0);
    const { to: f1, promoted } = JSON.parse(rotated.stdout) as { to: string; promoted: boolean };
    expect(promoted).toBe(false);
    expect((await stat(next)).mode & 0o777).toBe(0o600);
    expect(await readFile(cur, 'utf8')).not.toContain((await readFile(next, 'utf8')).trim());
    await restart('x', ['--identity-file', cur, '--next-identity-file', next]);
    await restart('y', ['--identity-file', cur, '--next-identity-file', next]);
    const announced = (await (await fetch(`${running.x!.url}/.well-known/latchkey`)).json()) as { fingerprint: string };
    expect(announced.fingerprint).toBe(f0);
    await send('y');
    expect(await pinned()).toBe(f0);

    // Step 2, one instance at a time. x announces F1 and moves the agent; y (F1 still "next") answers it.
    expect((await restart('x', ['--identity-file', next, '--previous-identity-file', cur])).fingerprint).toBe(f1);
    await send('x');
    expect(await pinned()).toBe(f1);
    await send('y');
    expect((await restart('y', ['--identity-file', next, '--previous-identity-file', cur])).fingerprint).toBe(f1);
    await send('y');

    // Step 3: the old identity is dropped everywhere. The agent's credential was issued under it:
    // refused with a signed credential_invalid, the agent renews and sends.
    await restart('x', ['--identity-file', next]);
    await restart('y', ['--identity-file', next]);
    await send('y');
    await send('x');
    expect(await pinned()).toBe(f1);

    const audit = JSON.parse(
      (await runCli(['audit', '--json'], { LATCHKEY_SERVER: running.x!.url, LATCHKEY_DATA_DIR: join(dir, 'x') })).stdout,
    ) as { action: string; outcome: string; details: Record<string, unknown> }[];
    expect(audit.filter((e) => e.action === 'server.key.rotate').map((e) => [e.details.from, e.details.to])).toEqual([[f0, f1]]);
    expect(audit.some((e) => e.action === 'agent.renew' && e.outcome === 'success')).toBe(true);
  }, 240_000);
});
