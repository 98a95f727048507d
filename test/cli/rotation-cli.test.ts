// Server key rotation (spec §14) with real processes on the embedded database: `latchkey identity
// rotate` while the server is stopped, then agents that were online, offline across one rotation,
// offline across two (their key set still accepted: the receipt's serverKey directive carries both
// links), and offline past the overlap (their key set dropped: they catch up from the published
// chain, renew and send). A token issued before a rotation still enrolls. A forged endorsement is
// refused (server_key_mismatch) and nothing is re-pinned. Every rotation is in the audit log.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { b64u } from '../../src/protocol/bytes.js';
import { discoveryDocument } from '../../src/protocol/discovery.js';
import { endorseServerKeys } from '../../src/protocol/server-key-endorsement.js';
import { selectCrypto } from '../../src/runtime/crypto.js';
import { deriveIdentity } from '../../src/server/identity.js';
import { random } from '../helpers/app.js';
import { CLI, cleanEnv, enrollWithCli, runCli, startServe, type ServeProcess } from '../helpers/process.js';

const inventory = new URL('../fixtures/glpi/format/computer_1_partial_memory.json', import.meta.url).pathname;

describe('server key rotation across real processes (embedded database)', () => {
  let dir: string;
  let data: string;
  let serve: ServeProcess | undefined;
  const pinned = async (state: string) =>
    (JSON.parse(await readFile(join(state, 'agent.json'), 'utf8')) as { server: { fp: string } }).server.fp;
  const admin = () => ({ LATCHKEY_SERVER: serve!.url, LATCHKEY_DATA_DIR: data });
  const send = (state: string) => runCli(['agent', 'send', '--state-dir', state, '--file', inventory, '--json']);
  const token = async () => (JSON.parse((await runCli(['token', 'create', '--json'], admin())).stdout) as { token: string }).token;
  const enroll = (state: string, t: string) => enrollWithCli(serve!.url, t, state, basename(state));
  const accepted = async (state: string) => {
    const r = await send(state);
    expect(r.code, r.stderr).toBe(0);
    const receipt = JSON.parse(r.stdout) as { status: string; directives: { renewNow?: boolean } | null };
    expect(receipt.status).toBe('accepted');
    return receipt;
  };
  const rotate = async () => {
    const r = await runCli(['identity', 'rotate', '--data-dir', data, '--json']);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as { from: string; to: string; promoted: boolean; endorsement: string };
  };

  // One free port for every restart: agents keep the server URL they enrolled with.
  let port: string;
  const start = () => startServe(['--data-dir', data, '--port', port]);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-rotate-'));
    data = join(dir, 'server');
    port = String(await freePort());
  });
  afterAll(async () => {
    await serve?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('moves online, offline and late agents to the new key sets, and refuses forged endorsements', async () => {
    serve = await start();
    const f0 = serve.fingerprint;
    const [online, offline, away, late, daemon] = ['online', 'offline', 'away', 'late', 'daemon'].map((n) => join(dir, n)) as [
      string,
      string,
      string,
      string,
      string,
    ];
    await enroll(online, await token());
    await enroll(offline, await token());
    await enroll(away, await token());
    await enroll(daemon, await token());
    const lateToken = await token(); // issued before the rotation: names F0
    for (const s of [online, offline, away, daemon]) await accepted(s);

    // The data dir is locked while a server runs on it: no identity file changes under a server.
    const locked = await runCli(['identity', 'rotate', '--data-dir', data]);
    expect(locked.code).not.toBe(0);
    expect(locked.stderr).toMatch(/data_dir_locked/);

    await serve.stop();
    const first = await rotate();
    expect(first).toMatchObject({ from: f0, promoted: true, endorsement: 'stored' });
    for (const f of ['identity.key', 'identity.previous.key']) expect((await stat(join(data, f))).mode & 0o777).toBe(0o600);
    serve = await start();
    const f1 = serve.fingerprint;
    expect(f1).toBe(first.to);

    const doc = (await (await fetch(`${serve.url}/.well-known/latchkey`)).json()) as {
      fingerprint: string;
      previous: { fingerprint: string }[];
      endorsements: unknown[];
    };
    expect(doc.fingerprint).toBe(f1);
    expect(doc.previous.map((p) => p.fingerprint)).toEqual([f0]);
    expect(doc.endorsements).toHaveLength(1);
    const jwks = (await (await fetch(`${serve.url}/.well-known/jwks.json`)).json()) as { keys: unknown[] };
    expect(jwks.keys).toHaveLength(2);

    // Online agent: its receipt (signed with F0, the set it addressed) carries the directive.
    await accepted(online);
    expect(await pinned(online)).toBe(f1);
    // Now sealed to F1; its credential (issued under F0) should be renewed: the receipt says so.
    expect((await accepted(online)).directives?.renewNow).toBe(true);

    // A token issued before the rotation still enrolls (pinning F0), and the agent then moves.
    await enroll(late, lateToken);
    expect(await pinned(late)).toBe(f0);
    await accepted(late);
    expect(await pinned(late)).toBe(f1);

    // A forged endorsement (not signed by the pinned key) is refused and nothing is re-pinned:
    // a fake server claims our key set is gone and publishes a chain from F1 to its own keys.
    const forged = await forgedServer(f1);
    try {
      const copy = join(dir, 'forged');
      await cp(online, copy, { recursive: true });
      const record = JSON.parse(await readFile(join(copy, 'agent.json'), 'utf8')) as Record<string, unknown>;
      await writeFile(join(copy, 'agent.json'), JSON.stringify({ ...record, serverUrl: forged.url }), { mode: 0o600 });
      const before = await readFile(join(copy, 'agent.json'), 'utf8');
      const r = await send(copy);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/server_key_mismatch/);
      expect(await readFile(join(copy, 'agent.json'), 'utf8')).toBe(before);
    } finally {
      await new Promise((resolve) => forged.server.close(resolve));
    }

    // Second rotation; F0 and F1 are both still accepted.
    await serve.stop();
    const second = await rotate();
    expect(second.from).toBe(f1);
    serve = await start();
    const f2 = serve.fingerprint;
    expect(f2).toBe(second.to);
    // Offline across two rotations: one directive carries both links, F0 -> F1 -> F2.
    expect(await pinned(offline)).toBe(f0);
    await accepted(offline);
    expect(await pinned(offline)).toBe(f2);

    // The overlap ends: F0 is dropped. A previous identity without a chain to the current one is
    // refused at startup.
    await serve.stop();
    const previous = (await readFile(join(data, 'identity.previous.key'), 'utf8')).trim().split('\n');
    expect(previous).toHaveLength(2);
    const stranger = (await runCli(['identity', 'generate'])).stdout.trim();
    await writeFile(join(data, 'identity.previous.key'), `${previous[1]}\n${stranger}\n`, { mode: 0o600 });
    await expect(start()).rejects.toThrow(/no endorsement chain/);
    await writeFile(join(data, 'identity.previous.key'), `${previous[1]}\n`, { mode: 0o600 });
    serve = await start();
    expect(serve.fingerprint).toBe(f2);

    // Away past the overlap (F0 no longer accepted): catches up from the published chain, renews
    // (its credential was issued under F0) and sends.
    expect(await pinned(away)).toBe(f0);
    await accepted(away);
    expect(await pinned(away)).toBe(f2);
    // The same for `agent run`: the daemon catches up, renews, seals the cycle's inventory again and
    // delivers it, without waiting for its next interval.
    expect(await pinned(daemon)).toBe(f0);
    const run = spawn(process.execPath, [CLI, 'agent', 'run', '--state-dir', daemon, '--file', inventory, '--interval', '1h'], {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    run.stdout.on('data', (d: Buffer) => (log += d.toString()));
    try {
      const until = Date.now() + 60_000;
      while (!/"event":"sent"[^\n]*"status":"accepted"/.test(log) && Date.now() < until && run.exitCode === null)
        await new Promise((r) => setTimeout(r, 200));
      expect(log).toMatch(/"event":"server_key_moved"/);
      expect(log).toMatch(/"event":"renewed"/);
      expect(log).toMatch(/"event":"sent"[^\n]*"status":"accepted"/);
    } finally {
      run.kill('SIGTERM');
      if (run.exitCode === null) await once(run, 'exit');
    }
    expect(await pinned(daemon)).toBe(f2);

    // The online agent (on F1, still accepted) moves on with the directive; its credential was
    // issued under F0, now dropped: refused (signed), it renews and sends. Everyone keeps sending.
    await accepted(online);
    expect(await pinned(online)).toBe(f2);
    for (const s of [online, offline, away, late]) await accepted(s);

    const audit = JSON.parse((await runCli(['audit', '--json', '--limit', '500'], admin())).stdout) as {
      action: string;
      actor: string;
      details: Record<string, unknown>;
    }[];
    const rotations = audit.filter((e) => e.action === 'server.key.rotate');
    expect(rotations.map((e) => [e.details.from, e.details.to])).toEqual(
      expect.arrayContaining([
        [f0, f1],
        [f1, f2],
      ]),
    );
    expect(rotations.every((e) => e.actor === 'cli:identity-rotate')).toBe(true);
    expect(audit.some((e) => e.action === 'agent.enroll' && e.details.serverKey === f0)).toBe(true);
    expect(audit.some((e) => e.action === 'agent.renew')).toBe(true);
  }, 240_000);
});

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * A server that says our key set is gone (an unsigned recipient_mismatch) and publishes a chain
 * from `pin` to keys of its own, the link signed by a key that is not the pinned one.
 */
async function forgedServer(pin: string): Promise<{ url: string; server: Server }> {
  const crypto = await selectCrypto();
  const attacker = await deriveIdentity(crypto, random(32), random(32));
  const signer = await deriveIdentity(crypto, random(32), random(32));
  const link = await endorseServerKeys(
    crypto,
    { ...signer.signing, fingerprint: pin },
    { signing: attacker.signing.publicKey, agreement: attacker.agreement.publicKey },
    { notBefore: Date.now(), iat: Date.now() },
  );
  const doc = { ...discoveryDocument(attacker), endorsements: [link] };
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/latchkey') return res.end(JSON.stringify(doc));
    res.statusCode = 400;
    res.end(
      JSON.stringify({ error: { code: 'recipient_mismatch', message: 'unknown recipient', attacker: b64u(attacker.signing.publicKey) } }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}
