// Agents behind a forward proxy (issue 12): real `latchkey` processes through a real tinyproxy, against
// the real app on PGlite and PostgreSQL. Enrollment, send, renewal, the revocation list and an admin
// command all go through it (its own log shows each CONNECT); NO_PROXY goes direct; with the proxy
// gone nothing goes direct instead. A proxy that rewrites bodies is caught by the signatures: the server
// refuses a tampered envelope, the agent a tampered receipt, and nothing is stored.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { count, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inventories } from '../../src/db/schema.js';
import { b64u, fromB64u } from '../../src/protocol/bytes.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { ensureTinyproxy, startTamperingProxy, startTinyproxy, type TamperingProxy, type Tinyproxy } from '../helpers/forward-proxy.js';
import { runCli } from '../helpers/process.js';

const inventory = new URL('../fixtures/glpi/format/computer_1.json', import.meta.url).pathname;
const hasTinyproxy = ensureTinyproxy();

/** Flips one bit inside the base64url field `field` of a JSON body (the JSON stays valid). */
function flipField(body: Buffer, field: string): Buffer {
  const json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  const bytes = fromB64u(json[field] as string);
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
  return Buffer.from(JSON.stringify({ ...json, [field]: b64u(bytes) }));
}

describe.skipIf(!hasTinyproxy).each(dbKinds)('agent and admin commands through forward proxies (%s)', { timeout: 120_000 }, (kind) => {
  let server: TestServer;
  let proxy: Tinyproxy;
  let dir: string;
  let n = 0;
  const origin = () => new URL(server.url).host;
  const admin = () => ({ LATCHKEY_SERVER: server.url, LATCHKEY_ADMIN_TOKEN: server.adminToken });
  const stored = async (agentId: string) =>
    (await server.database.db.select({ n: count() }).from(inventories).where(eq(inventories.agentId, agentId)))[0]!.n;

  async function token(): Promise<string> {
    const created = await runCli(['token', 'create', '--json'], admin());
    expect(created.code, created.stderr).toBe(0);
    return (JSON.parse(created.stdout) as { token: string }).token;
  }

  async function enroll(args: string[], env: Record<string, string> = {}): Promise<{ state: string; agentId: string }> {
    // Each agent its own name: the default (this host's name) would collide from the second enrollment on.
    const name = `fwd-${n}`;
    const state = join(dir, `agent-${n++}`);
    const r = await runCli(
      ['agent', 'enroll', '--server', server.url, '--token', await token(), '--state-dir', state, '--name', name, '--json', ...args],
      env,
    );
    expect(r.code, r.stderr).toBe(0);
    return { state, agentId: (JSON.parse(r.stdout) as { agentId: string }).agentId };
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-fwdproxy-'));
    [server, proxy] = await Promise.all([startTestServer(kind), startTinyproxy()]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([server?.close(), proxy?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('enrolls, sends, renews and fetches revocations through tinyproxy (--proxy and HTTP_PROXY), and NO_PROXY goes direct', async () => {
    const through = async () => (await proxy.connects()).filter((c) => c === origin()).length;
    const before = await through();
    const { state, agentId } = await enroll(['--proxy', proxy.url]);
    const afterEnroll = await through();
    expect(afterEnroll).toBeGreaterThan(before);

    const viaEnv = { HTTP_PROXY: proxy.url };
    const sent = await runCli(['agent', 'send', '--state-dir', state, '--file', inventory, '--json'], viaEnv);
    expect(sent.code, sent.stderr).toBe(0);
    expect(JSON.parse(sent.stdout).status).toBe('accepted');
    const afterSend = await through();
    expect(afterSend).toBeGreaterThan(afterEnroll);

    const renewed = await runCli(['agent', 'renew', '--state-dir', state, '--proxy', proxy.url, '--json']);
    expect(renewed.code, renewed.stderr).toBe(0);
    const afterRenew = await through();
    expect(afterRenew).toBeGreaterThan(afterSend);

    const lowercase = { http_proxy: proxy.url };
    const revocations = await runCli(['agent', 'revocations', '--state-dir', state, '--json'], lowercase);
    expect(revocations.code, revocations.stderr).toBe(0);
    const afterRevocations = await through();
    expect(afterRevocations).toBeGreaterThan(afterRenew);

    const listed = await runCli(['agents', 'list', '--json', '--proxy', proxy.url], admin());
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(agentId);
    const afterAdmin = await through();
    expect(afterAdmin).toBeGreaterThan(afterRevocations);

    // NO_PROXY names the server: straight there, the proxy sees nothing.
    const direct = await runCli(['agent', 'send', '--state-dir', state, '--file', inventory], { ...viaEnv, NO_PROXY: '127.0.0.1' });
    expect(direct.code, direct.stderr).toBe(0);
    expect(await through()).toBe(afterAdmin);
    expect(await stored(agentId)).toBe(2);
  });

  it('never falls back to a direct connection when the proxy is down, and refuses a proxy setting that is not a URL', async () => {
    const { state, agentId } = await enroll([]);
    const gone = await startTamperingProxy();
    await gone.stop();
    const r = await runCli(['agent', 'send', '--state-dir', state, '--file', inventory], { HTTPS_PROXY: gone.url, HTTP_PROXY: gone.url });
    expect(r.stderr).toMatch(/^error: unreachable: .*a proxy is configured/);
    expect(await stored(agentId)).toBe(0);

    const flag = await runCli(['agent', 'send', '--state-dir', state, '--file', inventory, '--proxy', 'socks5://127.0.0.1:1']);
    expect([flag.code, flag.stderr]).toEqual([2, expect.stringMatching(/^error: usage: --proxy is not an http/)]);
    const env = await runCli(['agent', 'send', '--state-dir', state, '--file', inventory], { HTTP_PROXY: 'user:secret@nowhere' });
    expect(env.stderr).toMatch(/^error: usage: HTTP_PROXY is not an http/);
    expect(env.stderr).not.toContain('secret');
  });

  describe('a proxy that rewrites bodies', () => {
    let evil: TamperingProxy;
    beforeAll(async () => {
      evil = await startTamperingProxy();
    });
    afterAll(() => evil.stop());

    it('is caught: the server refuses a tampered envelope, the agent a tampered receipt; nothing is stored', async () => {
      const { state, agentId } = await enroll(['--proxy', evil.url]);
      expect(evil.seen).toContain('POST /v1/enroll');

      evil.tamper = { request: (path, body) => (path === '/v1/messages' ? flipField(body, 'ct') : body) };
      const envelope = await runCli(['agent', 'send', '--state-dir', state, '--file', inventory, '--proxy', evil.url]);
      expect(envelope.code).not.toBe(0);
      // The server refused it (401 signature_invalid) with a receipt bound to the bytes it got, which
      // are not the agent's: the agent believes neither.
      expect(envelope.stderr).toMatch(/^error: receipt_invalid: HTTP 401 \(claims signature_invalid\)/);
      expect(await stored(agentId)).toBe(0);

      // The receipt's signature: the envelope arrives intact and is stored, but the agent cannot
      // believe the answer, so it does not report success.
      evil.tamper = { response: (path, body) => (path === '/v1/messages' ? flipField(body, 'sig') : body) };
      const receipt = await runCli(['agent', 'send', '--state-dir', state, '--file', inventory, '--proxy', evil.url]);
      expect(receipt.code).not.toBe(0);
      expect(receipt.stderr).toMatch(/^error: receipt_invalid:/);

      evil.tamper = {};
      const clean = await runCli(['agent', 'send', '--state-dir', state, '--file', inventory, '--proxy', evil.url]);
      expect(clean.code, clean.stderr).toBe(0);
      expect(evil.seen.filter((s) => s === 'POST /v1/messages')).toHaveLength(3);
      expect(await stored(agentId)).toBe(2); // the intact envelope under the forged receipt, and the clean one
    });
  });
});
