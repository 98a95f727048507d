// The relay as an operator runs it (issue 12), real processes on loopback, the server on its embedded
// database with a fixed port (so it can be stopped and restarted under the relay):
// - revocations: the last verified list is kept on disk; a relay restarted while the server is down
//   still refuses a revoked agent, keeps accepting the others, and says how old its list is;
// - server key rotation while the relay runs: agents keep sending through it (the relay verifies
//   credentials and receipts of the old and the new key set), the relay moves its pin along the
//   endorsement chain and renews its own credential, and forgets the old set once the server drops it;
// - `relay serve --proxy`: upstream through a real tinyproxy; a proxy that rewrites what the relay
//   forwards is caught by the server's signatures: nothing is stored, the relay sets the envelope aside.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialKid } from '../../src/protocol/credential.js';
import { b64u, fromB64u } from '../../src/protocol/bytes.js';
import { ensureTinyproxy, startTamperingProxy, startTinyproxy } from '../helpers/forward-proxy.js';
import { CLI, cleanEnv, enrollWithCli, runCli, startServe, until, type ServeProcess } from '../helpers/process.js';

const inventory = new URL('../fixtures/glpi/format/computer_1_partial_memory.json', import.meta.url).pathname;
const hasTinyproxy = ensureTinyproxy();

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

interface RelayProcess {
  url: string;
  log(): string;
  kill(signal: NodeJS.Signals): Promise<void>;
}

async function startRelay(args: string[]): Promise<RelayProcess> {
  const child: ChildProcess = spawn(process.execPath, [CLI, 'relay', 'serve', '--listen', '127.0.0.1:0', '--log-level', 'info', ...args], {
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', () => {
      const m = /latchkey relay listening on (http:\/\/\S+)/.exec(log);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`relay exited with ${code}: ${log}`)));
  });
  return {
    url,
    log: () => log,
    kill: async (signal) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await once(child, 'exit');
    },
  };
}

/** This file's waits: a probe that throws (a process restarting, a file half written) is "not yet". */
const waitFor = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> =>
  until(what, probe, { timeoutMs, everyMs: 200, ignoreErrors: true });

const json = async (file: string) => JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;

describe('the relay across restarts, server key rotation and forward proxies (real processes)', { timeout: 180_000 }, () => {
  let dir: string;
  let data: string;
  let port: string;
  let server: ServeProcess;
  let relay: RelayProcess;
  const relayDir = () => join(dir, 'relay');
  const admin = () => ({ LATCHKEY_SERVER: server.url, LATCHKEY_DATA_DIR: data });
  const startServer = () => startServe(['--data-dir', data, '--port', port]);
  const token = async (role: 'agent' | 'relay') => {
    const r = await runCli(['token', 'create', '--role', role, '--json'], admin());
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { token: string }).token;
  };
  const enroll = async (name: string) => {
    const state = join(dir, name);
    return { state, agentId: await enrollWithCli(server.url, await token('agent'), state, name) };
  };
  const send = (state: string, via: string) => runCli(['agent', 'send', '--state-dir', state, '--via', via, '--file', inventory, '--json']);
  const sent = async (state: string, via: string, log: () => string) => {
    const r = await send(state, via);
    expect(r.code, `${r.stderr}\n${log().slice(-3000)}`).toBe(0);
    return (JSON.parse(r.stdout) as { status: string }).status;
  };
  /**
   * Sent through the main relay and stored: the server's receipt at once, or queued while the relay
   * waits out a server restart; then the relay's spool empties with nothing set aside (every receipt
   * verified by the relay) and the server holds one more inventory.
   */
  const delivered = async (state: string) => {
    const before = await stored(kept.agentId);
    expect(['accepted', 'queued']).toContain(await sent(state, relay.url, relay.log));
    await waitFor('the message to be stored', async () => ((await stored(kept.agentId)) === before + 1 ? true : undefined));
    await waitFor('the spool to drain', async () => {
      const s = JSON.parse((await runCli(['relay', 'status', '--state-dir', relayDir(), '--json'])).stdout) as {
        spool: { depth: number; refused: number };
      };
      return s.spool.depth === 0 ? s : undefined;
    }).then((s) => expect(s.spool.refused).toBe(0));
  };
  /** How many inventories the server stored for this agent. */
  const stored = async (agentId: string) => {
    const r = await runCli(['inventory', 'list', agentId, '--json'], admin());
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { inventories: unknown[] }).inventories.length;
  };
  const metric = async (name: string) => {
    const text = await (await fetch(`${relay.url}/metrics`)).text();
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  let kept: { state: string; agentId: string };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-relay-rest-'));
    data = join(dir, 'server');
    port = String(await freePort());
    server = await startServer();
    relay = await startRelay([
      '--upstream',
      server.url,
      '--state-dir',
      relayDir(),
      '--token',
      await token('relay'),
      '--name',
      'relay-main',
      '--revocation-interval',
      '1s',
      '--receipt-wait',
      '20s',
    ]);
    kept = await enroll('kept');
  }, 120_000);
  afterAll(async () => {
    await relay?.kill('SIGKILL');
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('keeps the verified revocation list on disk: restarted with the server down, it refuses the revoked agent and queues the others', async () => {
    const revoked = await enroll('revoked');
    expect(await sent(kept.state, relay.url, relay.log)).toBe('accepted');
    expect(await sent(revoked.state, relay.url, relay.log)).toBe('accepted');
    const r = await runCli(['agents', 'revoke', revoked.agentId], admin());
    expect(r.code, r.stderr).toBe(0);
    await waitFor('the relay to hold the revocation', async () => {
      const held = await json(join(relayDir(), 'revocations.json'));
      return (held.subjects as { agent: string[] }).agent.includes(revoked.agentId) ? true : undefined;
    });

    await relay.kill('SIGKILL');
    await server.stop();
    relay = await startRelay(['--upstream', server.url, '--state-dir', relayDir(), '--revocation-interval', '1s', '--receipt-wait', '1s']);
    try {
      const refused = await send(revoked.state, relay.url);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/agent_revoked/);
      expect(await sent(kept.state, relay.url, relay.log)).toBe('queued');

      // Upstream away: not ready; the list it applies is the one on disk, and it says how old it is.
      expect((await fetch(`${relay.url}/readyz`)).status).toBe(503);
      expect(await metric('latchkey_relay_revocation_list_version')).toBeGreaterThanOrEqual(1);
      expect(await metric('latchkey_relay_revocation_list_age_seconds')).toBeGreaterThanOrEqual(0);
      await waitFor('the list to be marked stale', async () =>
        (await metric('latchkey_relay_revocation_list_stale')) === 1 ? true : undefined,
      );
      const status = await runCli(['relay', 'status', '--state-dir', relayDir(), '--json']);
      expect(JSON.parse(status.stdout).revocations.version).toBeGreaterThanOrEqual(1);
    } finally {
      server = await startServer();
    }
    // Back: the queued envelope is forwarded, the list is fresh again.
    const ready = await waitFor('the relay to be ready with a fresh list', async () => {
      const res = await fetch(`${relay.url}/readyz`);
      const body = (await res.json()) as { revocations?: { stale: boolean; ageSeconds: number } };
      return res.status === 200 && body.revocations?.stale === false ? body : undefined;
    });
    expect(ready.revocations!.ageSeconds).toBeLessThan(60);
    await waitFor('the spool to drain', async () => {
      const s = await runCli(['relay', 'status', '--state-dir', relayDir(), '--json']);
      return JSON.parse(s.stdout).spool.depth === 0 ? true : undefined;
    });
    expect(relay.log()).not.toMatch(/"level":(50|60)/);
  });

  it('follows a server key rotation while it runs: agents keep sending through it, it re-pins, renews and later forgets the old key set', async () => {
    const pinned = async (state: string) => ((await json(join(state, 'agent.json'))).server as { fp: string }).fp;
    const f0 = server.fingerprint;
    await server.stop();
    const rotated = await runCli(['identity', 'rotate', '--data-dir', data, '--json']);
    expect(rotated.code, rotated.stderr).toBe(0);
    server = await startServer();
    const f1 = server.fingerprint;
    expect(f1).not.toBe(f0);
    const doc = (await (await fetch(`${server.url}/.well-known/latchkey`)).json()) as { keys: { signing: { kid: string } } };

    // The relay moves its own pin along the chain, keeps F0 (still accepted) and renews under F1.
    await waitFor('the relay to re-pin and renew', async () => {
      const record = await json(join(relayDir(), 'agent.json'));
      return (record.server as { fp: string }).fp === f1 && credentialKid(record.credential as string) === doc.keys.signing.kid
        ? true
        : undefined;
    });
    expect(((await json(join(relayDir(), 'server-keys.json'))).previous as { fp: string }[]).map((p) => p.fp)).toEqual([f0]);

    // Sealed to F0 with an F0 credential (verified by the relay with F0): the server's receipt (signed
    // by F0) moves the agent to F1, or, when the relay answers queued, its F1 credential makes the agent
    // catch up along the chain. Either way the relay verifies the receipt and empties its spool.
    await delivered(kept.state);
    expect(await pinned(kept.state)).toBe(f1);
    // Sealed to F1: the receipt is signed by F1.
    await delivered(kept.state);
    // Renewed through the relay: an F1 credential, which the relay verifies before spooling.
    const renewed = await runCli(['agent', 'renew', '--state-dir', kept.state, '--via', relay.url, '--json']);
    expect(renewed.code, renewed.stderr).toBe(0);
    expect(credentialKid((await json(join(kept.state, 'agent.json'))).credential as string)).toBe(doc.keys.signing.kid);
    await delivered(kept.state);

    // The overlap ends: the server drops F0; the relay forgets it and its F1 credential carries on.
    await server.stop();
    await rm(join(data, 'identity.previous.key'));
    server = await startServer();
    await waitFor('the relay to forget F0', async () =>
      ((await json(join(relayDir(), 'server-keys.json'))).previous as unknown[]).length === 0 ? true : undefined,
    );
    await delivered(kept.state);
    expect(relay.log()).not.toMatch(/does not verify/);
  });

  it.skipIf(!hasTinyproxy)(
    'relay serve --proxy: upstream through tinyproxy; a proxy rewriting what the relay forwards is caught',
    async () => {
      const proxy = await startTinyproxy();
      const evil = await startTamperingProxy();
      const relays: RelayProcess[] = [];
      try {
        const viaProxy = await startRelay([
          '--upstream',
          server.url,
          '--state-dir',
          join(dir, 'relay-proxied'),
          '--token',
          await token('relay'),
          '--name',
          'relay-proxied',
          '--proxy',
          proxy.url,
          '--receipt-wait',
          '20s',
        ]);
        relays.push(viaProxy);
        expect(await sent(kept.state, viaProxy.url, viaProxy.log)).toBe('accepted');
        expect(await proxy.connects()).toContain(new URL(server.url).host);

        const tampered = await startRelay([
          '--upstream',
          server.url,
          '--state-dir',
          join(dir, 'relay-tampered'),
          '--token',
          await token('relay'),
          '--name',
          'relay-tampered',
          '--proxy',
          evil.url,
          '--receipt-wait',
          '3s',
        ]);
        relays.push(tampered);
        const before = await stored(kept.agentId);
        // One bit of the agent's ciphertext flipped inside the relay's batch: the server refuses it
        // (signature_invalid) and nothing is stored; its batch receipt answers bytes the relay never
        // sent (§10.1), so the relay believes none of it and keeps the genuine envelope spooled.
        let tampered_ = 0;
        evil.tamper = {
          request: (path, body) => {
            if (path !== '/v1/messages') return body;
            tampered_++;
            const batch = JSON.parse(body.toString('utf8')) as { envelopes: { inner: { ct: string } }[] };
            const ct = fromB64u(batch.envelopes[0]!.inner.ct);
            ct[ct.length >> 1]! ^= 1;
            batch.envelopes[0]!.inner.ct = b64u(ct);
            return Buffer.from(JSON.stringify(batch));
          },
        };
        expect(await sent(kept.state, tampered.url, tampered.log)).toBe('queued');
        expect(tampered_).toBeGreaterThan(0);
        await waitFor('the relay to distrust the answer', async () =>
          /a batch answer from upstream does not verify/.test(tampered.log()) ? true : undefined,
        );
        expect(await stored(kept.agentId)).toBe(before);
        const spool = async () =>
          (
            JSON.parse((await runCli(['relay', 'status', '--state-dir', join(dir, 'relay-tampered'), '--json'])).stdout) as {
              spool: { depth: number; refused: number };
            }
          ).spool;
        expect(await spool()).toMatchObject({ depth: 1, refused: 0 });
        // The proxy stops tampering: the kept envelope is delivered on a retry, exactly once, and the
        // agent's next message goes through the same relay and proxy.
        evil.tamper = {};
        await waitFor('the kept envelope to be stored', async () => ((await stored(kept.agentId)) === before + 1 ? true : undefined));
        expect(['accepted', 'queued']).toContain(await sent(kept.state, tampered.url, tampered.log));
        await waitFor('both stored, the spool empty', async () => {
          const s = await spool();
          return (await stored(kept.agentId)) === before + 2 && s.depth === 0 ? s : undefined;
        }).then((s) => expect(s.refused).toBe(0));
      } finally {
        for (const r of relays) await r.kill('SIGTERM');
        await proxy.stop();
        await evil.stop();
      }
    },
  );
});
