// Renewal by the real agent processes (spec §12) on a real server (PGlite and PostgreSQL), directly
// and behind a lying upstream (a small real HTTP server in the test): `agent run` renews once two
// thirds of the credential's life have passed and on a `renewNow` directive, then sends with the new
// keys; a renewal answered by anything but a signed refusal (unsigned 401/403 from "a proxy", 5xx,
// 429, a captive portal's page, a renew-response forged with another key or signed for other keys)
// never costs the agent its keys, is retried, and warns from 7 days before expiry; a signed
// revocation or expiry refusing the renewal stops `agent run` with a non-zero exit and one line.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { loadState } from '../../src/agent/state.js';
import { agentKeys } from '../../src/db/schema.js';
import { generateKeySet, keyIdOf } from '../../src/protocol/keys.js';
import { parseEnvelope } from '../../src/protocol/envelope.js';
import { signRenewResponse } from '../../src/protocol/renewal.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { CLI, cleanEnv, runCli } from '../helpers/process.js';
import { testContext } from '../helpers/protocol.js';
import { answer, forwardTo, lyingUpstream, type Handler } from '../helpers/upstream.js';

const ctx = testContext();
const fixture = new URL('../fixtures/glpi/format/printer_2.json', import.meta.url).pathname;
const DAY = 86_400_000;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latchkey-runrenew-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function startDaemon(args: string[]) {
  const child = spawn(process.execPath, [CLI, 'agent', 'run', '--interval', '1s', ...args], {
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = once(child, 'exit') as Promise<[number | null]>;
  const events = () =>
    log
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    child,
    events,
    stderr: () => err,
    /** The exit code, or -1 if it is still running after `ms`. */
    exit: (ms: number) => Promise.race([exited.then(([c]) => c), new Promise<number>((r) => setTimeout(() => r(-1), ms))]),
    async waitFor(pred: (events: Record<string, unknown>[]) => boolean, ms: number): Promise<boolean> {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        if (pred(events())) return true;
        await new Promise((r) => setTimeout(r, 100));
      }
      return false;
    },
    async stop(): Promise<number | null> {
      child.kill('SIGTERM');
      const [code] = await exited;
      return code;
    },
  };
}

/** The signing kid of the next keys a renewal persisted (pending.json). */
async function pendingKid(state: string): Promise<string> {
  const p = JSON.parse(await readFile(join(state, 'pending.json'), 'utf8')) as { signing: string };
  return keyIdOf('ed25519', await ctx.crypto.ed25519PublicKey(new Uint8Array(Buffer.from(p.signing, 'base64url'))));
}

describe.each(dbKinds)('agent renewal by real processes, on %s', (kind) => {
  let server: TestServer;
  /** The server's clock runs this far from real time (ms): enrolling in the past ages a credential. */
  let offset = 0;
  let n = 0;
  const aged: Record<string, string> = {};
  const admin = (path: string, init: RequestInit = {}) =>
    fetch(`${server.url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    });

  /** Enrolls an agent whose credential was issued `ageDays` ago (30-day lifetime). */
  async function enroll(ageDays = 0): Promise<string> {
    const { token } = (await (await admin('/v1/admin/tokens', { method: 'POST', body: '{}' })).json()) as { token: string };
    const state = join(dir, `${kind}-${n++}`);
    offset = -ageDays * DAY;
    try {
      await enrollAgent(
        { ...ctx, now: () => Date.now() + offset },
        { serverUrl: server.url, token, stateDir: state, name: `renewer-${kind}-${n}` },
      );
    } finally {
      offset = 0;
    }
    return state;
  }
  const kid = async (state: string) => (await loadState(ctx.crypto, state)).keys.signing.kid;
  const keyStatus = async (sigKid: string) =>
    (await server.database.db.select().from(agentKeys).where(eq(agentKeys.sigKid, sigKid)))[0]?.status;

  beforeAll(async () => {
    server = await startTestServer(kind, { now: () => Date.now() + offset });
    // Aged agents are enrolled first, oldest first: the server's clock only moves forward (its
    // budgets are token buckets on that clock).
    for (const [name, age] of [
      ['due', 25],
      ['transient', 25],
      ['expired', 25],
      ['revoked', 25],
      ['young', 10],
    ] as const)
      aged[name] = await enroll(age);
  });
  afterAll(() => server.close());

  it('agent run renews once two thirds of the lifetime have passed, then sends with the new keys', async () => {
    const state = aged.due!;
    const before = await kid(state);
    const daemon = startDaemon(['--state-dir', state, '--file', fixture]);
    try {
      expect(await daemon.waitFor((e) => e.some((x) => x.event === 'sent'), 20_000)).toBe(true);
      expect(await daemon.stop()).toBe(0);
      const events = daemon.events();
      expect(events.map((e) => e.event).slice(0, 2)).toEqual(['renewed', 'sent']);
      expect(events[0]).toMatchObject({ reason: 'due', previousKeyId: before });
      const after = await kid(state);
      expect(events[0]!.keyId).toBe(after);
      expect(await keyStatus(before)).toBe('superseded');
      expect(await keyStatus(after)).toBe('active');
      expect(events[1]!.renewNow).toBeUndefined(); // the new credential is young
    } finally {
      daemon.child.kill('SIGKILL');
    }
  });

  it('agent run leaves a young credential alone', async () => {
    const state = aged.young!;
    const before = await kid(state);
    const daemon = startDaemon(['--state-dir', state, '--file', fixture]);
    try {
      expect(await daemon.waitFor((e) => e.filter((x) => x.event === 'sent').length >= 2, 20_000)).toBe(true);
      expect(await daemon.stop()).toBe(0);
      expect(daemon.events().some((e) => e.event === 'renewed')).toBe(false);
      expect(await kid(state)).toBe(before);
    } finally {
      daemon.child.kill('SIGKILL');
    }
  });

  it('agent renew keeps its keys against every lie in the path, then renews to the keys it persisted first', async () => {
    // A genuine renew-response, signed by the real server, for ANOTHER agent's renewal.
    let borrowed = '';
    const capture: Handler = async (req, body, res) => {
      const r = await fetch(`${server.url}${req.url}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      borrowed = await r.text();
      res.writeHead(r.status, { 'content-type': 'application/json' });
      res.end(borrowed);
    };
    const other = await enroll();
    const up = await lyingUpstream(capture);
    const state = await enroll();
    const before = await kid(state);
    const keysBefore = await readFile(join(state, 'keys.json'), 'utf8');
    try {
      expect((await runCli(['agent', 'renew', '--state-dir', other, '--via', up.url])).code).toBe(0);
      expect(borrowed).toContain('renew-response');
      // A renew-response forged with another key, answering this very request (mid and snd copied).
      const attacker = await generateKeySet(ctx);
      const forged: Handler = async (_req, body, res) => {
        const { header } = parseEnvelope(JSON.parse(body) as unknown);
        const signed = await signRenewResponse(
          ctx.crypto,
          { privateKey: attacker.signing.privateKey, kid: (await loadState(ctx.crypto, state)).server.signing.kid },
          {
            agentId: (await loadState(ctx.crypto, state)).agent.agentId,
            mid: header.mid,
            snd: header.snd,
            sigKid: attacker.signing.kid,
            kxKid: attacker.agreement.kid,
            credential: (await loadState(ctx.crypto, state)).agent.credential,
            expiresAt: Date.now() + 30 * DAY,
            supersededUntil: Date.now() + 600_000,
            iat: Date.now(),
          },
        );
        answer(200, signed)(_req, body, res);
      };
      const lies: [string, Handler][] = [
        ['unsigned 401', answer(401, { error: { code: 'key_revoked', message: 'proxy' } })],
        ['unsigned 403', answer(403, { error: { code: 'agent_revoked', message: 'captive portal' } })],
        ['503', answer(503, { error: { code: 'unavailable', message: 'down' } })],
        ['429', answer(429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'retry-after': '1' })],
        ['a captive portal page', answer(200, '<html>log in to the hotel wifi</html>')],
        ['forged with another key', forged],
        ['signed for other keys', answer(200, borrowed)],
      ];
      let next: string | undefined;
      for (const [what, lie] of lies) {
        up.script.push(lie);
        const r = await runCli(['agent', 'renew', '--state-dir', state, '--via', up.url]);
        expect(r.code, what).toBe(1);
        expect(r.stderr.trim().split('\n'), what).toHaveLength(1);
        expect(await readFile(join(state, 'keys.json'), 'utf8'), what).toBe(keysBefore);
        next ??= await pendingKid(state);
        expect(await pendingKid(state), what).toBe(next); // every retry renews to the same keys
      }
      expect(await keyStatus(before)).toBe('active'); // nothing reached the server
      const done = await runCli(['agent', 'renew', '--state-dir', state, '--via', up.url, '--json']);
      expect(done.code, done.stderr).toBe(0);
      expect(JSON.parse(done.stdout)).toMatchObject({ previousKeyId: before, keyId: next });
      expect(await kid(state)).toBe(next);
    } finally {
      await up.close();
    }
  });

  it('agent run: transient renewal failures keep the keys, warn from 7 days before expiry, back off, then renew and send with the new keys', async () => {
    const state = aged.transient!; // 5 days left
    const before = await kid(state);
    const keysBefore = await readFile(join(state, 'keys.json'), 'utf8');
    const renewLies: Handler[] = [
      answer(503, 'Service Unavailable'),
      answer(401, { error: { code: 'key_expired', message: 'proxy' } }),
      answer(502, 'Bad Gateway'),
    ];
    const forward = forwardTo(server.url);
    const up = await lyingUpstream((req, body, res) =>
      req.url === '/v1/renew' && renewLies.length ? renewLies.shift()!(req, body, res) : forward(req, body, res),
    );
    const daemon = startDaemon(['--state-dir', state, '--file', fixture, '--via', up.url]);
    try {
      expect(await daemon.waitFor((e) => e.some((x) => x.event === 'renewed'), 40_000)).toBe(true);
      const renewedAt = daemon.events().findIndex((e) => e.event === 'renewed');
      expect(await daemon.waitFor((e) => e.slice(renewedAt).some((x) => x.event === 'sent'), 20_000)).toBe(true);
      expect(await daemon.stop()).toBe(0);
      const events = daemon.events();
      const failing = events.slice(0, renewedAt);
      const retries = failing.filter((e) => e.event === 'renew_retry');
      expect(retries.map((e) => e.status)).toEqual([503, 401, 502]);
      for (const r of retries) expect(r).toMatchObject({ signed: false });
      expect(retries.map((e) => e.reason)).toEqual(['due', 'resume', 'resume']); // the same next keys each time
      expect(retries[2]!.inMs as number).toBeGreaterThan(retries[0]!.inMs as number); // backing off: 0.5-1 s, then 2-4 s
      // Every cycle before the renewal warned, and still sent (with the old keys).
      const cycles = failing.filter((e) => e.event === 'sent').length;
      expect(cycles).toBeGreaterThanOrEqual(3);
      expect(failing.filter((e) => e.event === 'renew_failing').length).toBe(cycles);
      expect(failing.find((e) => e.event === 'renew_failing')).toMatchObject({ level: 'warn' });
      expect(events[renewedAt]).toMatchObject({ previousKeyId: before });
      const after = await kid(state);
      expect(after).not.toBe(before);
      expect(events[renewedAt]!.keyId).toBe(after);
      expect(await keyStatus(after)).toBe('active');
      expect(keysBefore).not.toBe(await readFile(join(state, 'keys.json'), 'utf8'));
    } finally {
      daemon.child.kill('SIGKILL');
      await up.close();
    }
  });

  it('a signed key_expired refusing the renewal stops agent run: it needs a new token', async () => {
    const state = aged.expired!;
    await server.database.db
      .update(agentKeys)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(agentKeys.sigKid, await kid(state)));
    const daemon = startDaemon(['--state-dir', state, '--file', fixture]);
    try {
      expect(await daemon.exit(20_000)).toBe(1);
      expect(daemon.events()).toContainEqual(expect.objectContaining({ event: 'expired', code: 'key_expired', during: 'renew' }));
      expect(daemon.stderr().trim().split('\n')).toHaveLength(1);
      expect(daemon.stderr()).toMatch(/^error: key_expired: .*new token/);
    } finally {
      daemon.child.kill('SIGKILL');
    }
  });

  it('a signed revocation refusing the renewal stops agent run with one line', async () => {
    const state = aged.revoked!;
    const { agent } = await loadState(ctx.crypto, state);
    expect(
      (await admin(`/v1/admin/agents/${agent.agentId}/revoke`, { method: 'POST', body: JSON.stringify({ reason: 'test' }) })).status,
    ).toBeLessThan(300);
    const daemon = startDaemon(['--state-dir', state, '--file', fixture]);
    try {
      expect(await daemon.exit(20_000)).toBe(1);
      expect(daemon.events()).toEqual([expect.objectContaining({ event: 'revoked', code: 'agent_revoked', during: 'renew' })]);
      expect(daemon.stderr().trim().split('\n')).toHaveLength(1);
      expect(daemon.stderr()).toMatch(/^error: agent_revoked:/);
    } finally {
      daemon.child.kill('SIGKILL');
    }
  });

  it('agent run renews at once when a verified receipt says renewNow', async () => {
    // A server that asks for renewal in every receipt (renewNow while less than 100 % of the life is
    // left): a second instance on the same database (a second PGlite would cost seconds of CPU).
    const eager = await startTestServer(kind, { ingestPolicy: { renewWhenRemaining: 1 }, database: server.database });
    try {
      const { token } = (await (
        await fetch(`${eager.url}/v1/admin/tokens`, {
          method: 'POST',
          headers: { authorization: `Bearer ${eager.adminToken}`, 'content-type': 'application/json' },
          body: '{}',
        })
      ).json()) as { token: string };
      const state = join(dir, `${kind}-eager`);
      await enrollAgent(ctx, { serverUrl: eager.url, token, stateDir: state, name: `eager-${kind}` });
      const before = await kid(state);
      const daemon = startDaemon(['--state-dir', state, '--file', fixture]);
      try {
        expect(await daemon.waitFor((e) => e.some((x) => x.event === 'renewed'), 20_000)).toBe(true);
        expect(await daemon.stop()).toBe(0);
        const events = daemon.events();
        expect(events.slice(0, 2)).toEqual([
          expect.objectContaining({ event: 'sent', renewNow: true }),
          expect.objectContaining({ event: 'renewed', reason: 'renewNow', previousKeyId: before }),
        ]);
        expect(await kid(state)).toBe(events[1]!.keyId);
      } finally {
        daemon.child.kill('SIGKILL');
      }
    } finally {
      await eager.close();
    }
  });
});
