// `latchkey agent revocations` (spec §13), a real process against a real server (PGlite and
// PostgreSQL), directly and behind a lying upstream: the list verifies with the pinned key, later
// fetches ask for a delta since the version held, and a rollback (a genuine older list replayed), a gap
// (a delta starting above the held version, genuinely signed), a list signed by another key and an
// unsigned error are all refused, leaving the held list byte for byte as it was.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { REVOCATIONS_FILE } from '../../src/agent/revocations.js';
import { loadState } from '../../src/agent/state.js';
import { generateKeySet } from '../../src/protocol/keys.js';
import { signRevocationList } from '../../src/protocol/revocation-list.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { runCli } from '../helpers/process.js';
import { testContext } from '../helpers/protocol.js';
import { answer, forwardTo, lyingUpstream, type Handler } from '../helpers/upstream.js';

const ctx = testContext();

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'latchkey-revlist-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

interface View {
  version: number;
  previousVersion: number;
  added: { kind: string; subject: string }[];
  self: boolean;
}

describe.each(dbKinds)('latchkey agent revocations on %s', (kind) => {
  let server: TestServer;
  let n = 0;
  const admin = (path: string, body: unknown = {}) =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  async function enroll(): Promise<string> {
    const { token } = (await (await admin('/v1/admin/tokens')).json()) as { token: string };
    const state = join(dir, `${kind}-${n++}`);
    await enrollAgent(ctx, { serverUrl: server.url, token, stateDir: state, name: `rl-${kind}-${n}` });
    return state;
  }
  beforeAll(async () => {
    server = await startTestServer(kind);
  });
  afterAll(() => server.close());

  it('fetches, verifies and keeps the list; then deltas; refuses rollback, gap, forgery and unsigned answers', async () => {
    const me = await enroll();
    const victim = await loadState(ctx.crypto, await enroll());
    const gone = await loadState(ctx.crypto, await enroll());
    expect((await admin(`/v1/admin/keys/${victim.keys.signing.kid}/revoke`, { reason: 'leaked' })).status).toBeLessThan(300);

    // Every request goes through a lying upstream that forwards unless scripted otherwise.
    const up = await lyingUpstream(forwardTo(server.url));
    const paths: string[] = [];
    const fetchList = (script?: Handler) => {
      if (script) up.script.push(script);
      return runCli(['agent', 'revocations', '--state-dir', me, '--via', up.url, '--json']);
    };
    const recordingForward: Handler = (req, body, res) => {
      paths.push(req.url!);
      return forwardTo(server.url)(req, body, res);
    };
    try {
      const first = await fetchList(recordingForward);
      expect(first.code, first.stderr).toBe(0);
      const v1 = JSON.parse(first.stdout) as View;
      expect(v1.previousVersion).toBe(0);
      expect(v1.added).toContainEqual(expect.objectContaining({ kind: 'key', subject: victim.keys.signing.kid }));
      expect(v1.self).toBe(false);
      expect(paths).toEqual(['/v1/revocations?since=0']);
      expect((await stat(join(me, REVOCATIONS_FILE))).mode & 0o777).toBe(0o600);
      const fullV1 = await (await fetch(`${server.url}/v1/revocations`)).text(); // genuine, signed, version v1

      expect((await admin(`/v1/admin/agents/${gone.agent.agentId}/revoke`, { reason: 'decommissioned' })).status).toBeLessThan(300);
      const second = await fetchList(recordingForward);
      expect(second.code, second.stderr).toBe(0);
      const v2 = JSON.parse(second.stdout) as View;
      expect(paths[1]).toBe(`/v1/revocations?since=${v1.version}`); // a delta since the version held
      expect(v2.previousVersion).toBe(v1.version);
      expect(v2.version).toBeGreaterThan(v1.version);
      expect(v2.added).toEqual([expect.objectContaining({ kind: 'agent', subject: gone.agent.agentId })]);
      const held = await readFile(join(me, REVOCATIONS_FILE), 'utf8');
      expect(held).toContain(victim.keys.signing.kid);
      expect(held).toContain(gone.agent.agentId);

      // A gap: a genuinely signed delta that starts above the version held.
      const gap = await signRevocationList(ctx.crypto, server.identity.signing, {
        version: v2.version + 2,
        since: v2.version + 1,
        issuedAt: Date.now(),
        entries: [{ seq: v2.version + 2, kind: 'token', subject: 'tok_x', at: Date.now() }],
      });
      // A list signed by another key, claiming the pinned key's kid.
      const attacker = await generateKeySet(ctx);
      const forged = await signRevocationList(
        ctx.crypto,
        { privateKey: attacker.signing.privateKey, kid: server.identity.signing.kid },
        { version: v2.version + 1, since: 0, issuedAt: Date.now(), entries: [] },
      );
      const refusals: [string, Handler, RegExp][] = [
        // With --json, a failure is one JSON line on stderr (README "Exit codes").
        ['rollback to the genuine older list', answer(200, fullV1), /^\{"error":\{"code":"stale_message","message":/],
        ['gap', answer(200, gap), /^\{"error":\{"code":"stale_message","message":/],
        ['forged with another key', answer(200, forged), /^\{"error":\{"code":"[a-z_]+","message":/],
        [
          'unsigned 503',
          answer(503, { error: { code: 'unavailable', message: 'down' } }),
          /^\{"error":\{"code":"unsigned_answer","message":/,
        ],
        ['captive portal', answer(200, '<html>wifi</html>'), /^\{"error":\{"code":"[a-z_]+","message":/],
      ];
      for (const [what, lie, line] of refusals) {
        const r = await fetchList(lie);
        expect(r.code, what).toBe(1);
        expect(r.stderr.trim().split('\n'), what).toHaveLength(1);
        expect(r.stderr, what).toMatch(line);
        expect(await readFile(join(me, REVOCATIONS_FILE), 'utf8'), what).toBe(held);
      }

      // The agent's own revocation shows as such.
      const mine = await loadState(ctx.crypto, me);
      expect((await admin(`/v1/admin/agents/${mine.agent.agentId}/revoke`, { reason: 'test' })).status).toBeLessThan(300);
      const third = await fetchList();
      expect(third.code, third.stderr).toBe(0);
      expect(JSON.parse(third.stdout)).toMatchObject({ previousVersion: v2.version, self: true });
    } finally {
      await up.close();
    }
  });
});
