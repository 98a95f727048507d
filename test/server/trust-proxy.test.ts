// serve --trust-proxy: the client address comes from Forwarded / X-Forwarded-For only when the TCP
// peer is a trusted proxy, walking the chain from the right past trusted hops; malformed headers mean
// the peer. The rule alone, then the real app over HTTP behind a reverse proxy (PGlite and PostgreSQL):
// a token's CIDR constraint and its recorded use see the agent, not the proxy.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollAgent } from '../../src/agent/enroll.js';
import { tokenUses } from '../../src/db/schema.js';
import { parseTrustedProxies, resolveClientAddress } from '../../src/server/client-address.js';
import type { Cidr } from '../../src/server/services/cidr.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';
import { codeOf, testContext } from '../helpers/protocol.js';
import { startReverseProxy, type ReverseProxy } from '../helpers/reverse-proxy.js';

const cidrs = (...v: string[]): Cidr[] => (parseTrustedProxies(v) as { cidrs: Cidr[] }).cidrs;

describe('the client address rule', () => {
  const trusted = cidrs('127.0.0.1', '10.0.0.0/8', 'fd00::/8');
  const xff = (peer: string, value: string) => resolveClientAddress(peer, { xForwardedFor: value }, trusted);
  const fwd = (peer: string, value: string, x?: string) => resolveClientAddress(peer, { forwarded: value, xForwardedFor: x }, trusted);

  it('ignores the headers unless the peer is trusted', () => {
    expect(xff('198.51.100.7', '203.0.113.9')).toBe('198.51.100.7');
    expect(resolveClientAddress('127.0.0.1', { xForwardedFor: '203.0.113.9' }, [])).toBe('127.0.0.1');
    expect(resolveClientAddress('127.0.0.1', {}, trusted)).toBe('127.0.0.1');
  });

  it('walks X-Forwarded-For from the right past trusted hops; what the client wrote itself is not believed', () => {
    expect(xff('127.0.0.1', '203.0.113.9')).toBe('203.0.113.9');
    expect(xff('127.0.0.1', '1.1.1.1, 203.0.113.9, 10.1.2.3')).toBe('203.0.113.9');
    expect(xff('::ffff:127.0.0.1', '203.0.113.9:5555,10.0.0.1')).toBe('203.0.113.9');
    expect(xff('127.0.0.1', '2001:db8::1, fd00::2')).toBe('2001:db8::1');
    expect(xff('127.0.0.1', '[2001:db8::1]:443')).toBe('2001:db8::1');
    // Every hop trusted: the farthest one.
    expect(xff('127.0.0.1', '10.0.0.9, 10.0.0.1')).toBe('10.0.0.9');
  });

  it('prefers Forwarded (RFC 7239), with quoted IPv6, ports and other parameters', () => {
    expect(fwd('127.0.0.1', 'for=192.0.2.60;proto=http;by=203.0.113.43', '198.51.100.1')).toBe('192.0.2.60');
    expect(fwd('127.0.0.1', 'for="[2001:db8:cafe::17]:4711", for=10.0.0.1')).toBe('2001:db8:cafe::17');
    expect(fwd('127.0.0.1', 'For="192.0.2.43:80";proto=https, for=198.51.100.17;by="[fd00::1]"')).toBe('198.51.100.17');
  });

  it('falls back to the peer on anything malformed, unknown or too long', () => {
    for (const bad of ['', 'garbage', '203.0.113.9,', '203.0.113.9;x', '999.1.1.1', 'fe80::1%eth0', `${'10.0.0.1,'.repeat(40)}1.2.3.4`]) {
      expect(xff('127.0.0.1', bad), bad).toBe('127.0.0.1');
    }
    for (const bad of [
      'for=unknown',
      'for=_hidden',
      'proto=http',
      'for="203.0.113.9',
      'for=1.2.3.4;for=5.6.7.8',
      'for',
      'x'.repeat(5000),
    ]) {
      expect(fwd('127.0.0.1', bad, '203.0.113.9'), bad).toBe('127.0.0.1');
    }
  });

  it('refuses a trusted proxy list that is not addresses or CIDRs', () => {
    expect(parseTrustedProxies(['10.0.0.0/8', 'nope'])).toEqual({ invalid: 'nope' });
    expect(parseTrustedProxies(['10.0.0.0/33'])).toEqual({ invalid: '10.0.0.0/33' });
  });
});

describe.each(dbKinds)('behind a reverse proxy, over HTTP (%s)', { timeout: 60_000 }, (kind) => {
  const ctx = testContext();
  let trusting: TestServer;
  let ignoring: TestServer;
  let front: ReverseProxy;
  let ignoringFront: ReverseProxy;
  let dir: string;
  let n = 0;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latchkey-trustproxy-'));
    [trusting, ignoring] = await Promise.all([
      startTestServer(kind, { trustProxy: ['127.0.0.1/32'] }),
      startTestServer(kind, { trustProxy: ['10.0.0.0/8'] }),
    ]);
    [front, ignoringFront] = await Promise.all([startReverseProxy(trusting.url), startReverseProxy(ignoring.url)]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([front?.close(), ignoringFront?.close()]);
    await Promise.all([trusting?.close(), ignoring?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  async function token(server: TestServer, cidr: string): Promise<{ token: string; id: string }> {
    const res = await fetch(`${server.url}/v1/admin/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ cidr }),
    });
    expect(res.status).toBe(201);
    return (await res.json()) as { token: string; id: string };
  }
  const enroll = (url: string, t: string) => enrollAgent(ctx, { serverUrl: url, token: t, stateDir: join(dir, `a${n++}`) });

  it('a token CIDR constraint and the recorded use see the agent behind a trusted proxy', async () => {
    front.headers = { 'x-forwarded-for': '198.51.100.1, 203.0.113.9' };
    const t = await token(trusting, '203.0.113.0/24');
    expect(await codeOf(enroll(front.url, t.token))).toBe('ok');
    const uses = await trusting.database.db.select().from(tokenUses).where(eq(tokenUses.tokenId, t.id));
    expect(uses.map((u) => u.sourceAddr)).toEqual(['203.0.113.9']);

    front.headers = { forwarded: 'for="[2001:db8::7]:4711"', 'x-forwarded-for': '203.0.113.9' };
    expect(await codeOf(enroll(front.url, (await token(trusting, '2001:db8::/32')).token))).toBe('ok');

    // The client's own claim (leftmost) is not believed: the proxy appended the real peer.
    front.headers = { 'x-forwarded-for': '203.0.113.9, 198.51.100.1' };
    expect(await codeOf(enroll(front.url, (await token(trusting, '203.0.113.0/24')).token))).toBe('token_constraint_failed');
    front.headers = { 'x-forwarded-for': 'not an address' };
    expect(await codeOf(enroll(front.url, (await token(trusting, '203.0.113.0/24')).token))).toBe('token_constraint_failed');
  });

  it('ignores the headers when the peer is not a trusted proxy', async () => {
    ignoringFront.headers = { 'x-forwarded-for': '203.0.113.9', forwarded: 'for=203.0.113.9' };
    expect(await codeOf(enroll(ignoringFront.url, (await token(ignoring, '203.0.113.0/24')).token))).toBe('token_constraint_failed');
    const t = await token(ignoring, '127.0.0.1');
    expect(await codeOf(enroll(ignoringFront.url, t.token))).toBe('ok');
    const uses = await ignoring.database.db.select().from(tokenUses).where(eq(tokenUses.tokenId, t.id));
    expect(uses.map((u) => u.sourceAddr)).toEqual(['127.0.0.1']);
  });
});
