// Crash safety of renewal with real processes (spec §12): the real `latchkey agent renew` and
// `latchkey agent run` are SIGKILLed at each step of a renewal (LATCHKEY_TEST_FAILPOINT, test only:
// src/agent/failpoint.ts), then restarted against a real `latchkey serve` (PGlite and PostgreSQL):
// the agent still sends, finishes the renewal it started (to the very keys it persisted before
// sending) and sends with the new keys.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RENEW_FAILPOINTS } from '../../src/agent/failpoint.js';
import { loadState } from '../../src/agent/state.js';
import { keyIdOf } from '../../src/protocol/keys.js';
import { describeEachDbSideBySide } from '../helpers/db.js';
import { createTempPostgresDatabase, type TempDatabase } from '../helpers/pg-database.js';
import { CLI, cleanEnv, enrollWithCli, runCli, startServe, type ServeProcess } from '../helpers/process.js';
import { testContext } from '../helpers/protocol.js';

const ctx = testContext();
const inventory = new URL('../fixtures/glpi/format/computer_1_partial_memory.json', import.meta.url).pathname;
/** The signing key id of the next keys a started renewal persisted. */
const pendingKid = async (state: string) => {
  const p = JSON.parse(await readFile(join(state, 'pending.json'), 'utf8')) as { signing: string };
  return keyIdOf('ed25519', await ctx.crypto.ed25519PublicKey(new Uint8Array(Buffer.from(p.signing, 'base64url'))));
};

describeEachDbSideBySide('renewal killed at each step, restarted, on %s', (kind) => {
  let dir: string;
  let db: TempDatabase | undefined;
  let server: ServeProcess;
  let n = 0;
  // The admin side over HTTP with the bootstrap credential (the admin CLI has its own tests): each
  // case here already runs a dozen agent processes.
  let adminToken: string;
  const admin = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    expect(res.status, path).toBeLessThan(300);
    return res.json() as Promise<unknown>;
  };
  const send = async (state: string) => {
    const r = await runCli(['agent', 'send', '--state-dir', state, '--file', inventory, '--json']);
    expect(r.code, r.stderr).toBe(0);
    return (JSON.parse(r.stdout) as { status: string }).status;
  };
  async function enroll(): Promise<string> {
    const { token } = (await admin('POST', '/v1/admin/tokens', {})) as { token: string };
    const state = join(dir, `agent-${n++}`);
    await enrollWithCli(server.url, token, state, `crash-${n}`);
    return state;
  }
  const keyStatus = async (state: string) => {
    const { agent } = await loadState(ctx.crypto, state);
    const shown = (await admin('GET', `/v1/admin/agents/${agent.agentId}`)) as { keys: { sigKid: string; status: string }[] };
    return Object.fromEntries(shown.keys.map((k) => [k.sigKid, k.status]));
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-crash-'));
    db = kind === 'postgres' ? await createTempPostgresDatabase() : undefined;
    server = await startServe(['--data-dir', join(dir, 'server')], db ? { DATABASE_URL: db.url } : {});
    adminToken = (await readFile(join(dir, 'server', 'admin.token'), 'utf8')).trim();
  });
  afterAll(async () => {
    await server?.stop();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  /** A real `latchkey agent run`; its JSON log lines as events. */
  const run = (state: string, env: Record<string, string> = {}) => {
    const child = spawn(process.execPath, [CLI, 'agent', 'run', '--state-dir', state, '--file', inventory, '--interval', '1h'], {
      env: cleanEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const events = () =>
      out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    return {
      child,
      events,
      exited: once(child, 'exit') as Promise<[number | null, string | null]>,
      /** Waits for the first `sent`, then stops the daemon (SIGTERM, exit 0) and returns its events. */
      async untilSent(): Promise<Record<string, unknown>[]> {
        try {
          const until = Date.now() + 20_000;
          while (!events().some((e) => e.event === 'sent') && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
          child.kill('SIGTERM');
          expect((await this.exited)[0]).toBe(0);
          return events();
        } finally {
          child.kill('SIGKILL');
        }
      },
    };
  };

  it.each(RENEW_FAILPOINTS)('agent renew killed at %s: restarted, the agent finishes the renewal and sends', async (point) => {
    const state = await enroll();
    const before = (await loadState(ctx.crypto, state)).keys.signing.kid;
    const killed = await runCli(['agent', 'renew', '--state-dir', state, '--json'], { LATCHKEY_TEST_FAILPOINT: point });
    expect(killed.code).toBeNull(); // died by the signal: no exit code, nothing printed
    expect(killed.stdout).toBe('');
    const next = await pendingKid(state); // the next keys were persisted before anything was sent
    expect((await keyStatus(state))[before]).toBe(point === 'renew:before-send' ? 'active' : 'superseded');

    // Restarted: the state loads (a journaled renewal is finished by the load); a renewal started and
    // not journaled is resumed to the very same keys (the server answers a repeat with the same
    // credential); then the inventory lands, sent with the new keys.
    const journaled = point === 'renew:after-journal' || point === 'renew:between-files';
    const events = await run(state).untilSent();
    expect(events.map((e) => e.event)).toEqual(journaled ? ['sent', 'stopped'] : ['renewed', 'sent', 'stopped']);
    if (!journaled) expect(events[0]).toMatchObject({ reason: 'resume', keyId: next, previousKeyId: before });
    expect((await loadState(ctx.crypto, state)).keys.signing.kid).toBe(next);
    expect(await readdir(state)).not.toContain('pending.json');
    expect(await keyStatus(state)).toEqual({ [before]: 'superseded', [next]: 'active' });

    // And it keeps working: a send, a further renewal, a send with those keys.
    expect(await send(state)).toBe('accepted');
    const renewed = await runCli(['agent', 'renew', '--state-dir', state, '--json']);
    expect(renewed.code, renewed.stderr).toBe(0);
    expect(JSON.parse(renewed.stdout)).toMatchObject({ previousKeyId: next });
    expect(await send(state)).toBe('accepted');
  });

  it('agent run killed mid-renewal (answer lost) resumes it on restart and sends with the new keys', async () => {
    const state = await enroll();
    const before = (await loadState(ctx.crypto, state)).keys.signing.kid;
    // A renewal started and not finished (killed before sending): `agent run` resumes it at once,
    // and is killed itself once the server has renewed, before it reads the answer.
    expect((await runCli(['agent', 'renew', '--state-dir', state], { LATCHKEY_TEST_FAILPOINT: 'renew:before-send' })).code).toBeNull();
    const next = await pendingKid(state);
    expect(await run(state, { LATCHKEY_TEST_FAILPOINT: 'renew:after-send' }).exited).toEqual([null, 'SIGKILL']);
    expect((await keyStatus(state))[before]).toBe('superseded'); // the server did renew

    const events = await run(state).untilSent();
    expect(events.map((e) => e.event)).toEqual(['renewed', 'sent', 'stopped']);
    expect(events[0]).toMatchObject({ reason: 'resume', keyId: next, previousKeyId: before });
    expect((await loadState(ctx.crypto, state)).keys.signing.kid).toBe(next);
  });
});
