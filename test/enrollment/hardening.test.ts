// Issue 10: attacks on enrollment, revocation and the agent routes' content type, each reproduced
// over real HTTP on PGlite and PostgreSQL (they failed before the fix, and pass after).
import { request as httpRequest } from 'node:http';
import { and, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminKeys, agentKeys, auditLog, enrollmentTokens, revocations, tokenUses } from '../../src/db/schema.js';
import { b64u } from '../../src/protocol/bytes.js';
import type { ProtocolContext } from '../../src/protocol/crypto/types.js';
import { sealEnrollRequest, type EnrollRequestWire } from '../../src/protocol/enrollment.js';
import { generateKeySet } from '../../src/protocol/keys.js';
import { parseToken, type EnrollmentToken } from '../../src/protocol/token.js';
import { DEFAULT_ENROLLMENT_POLICY, ENROLL_IAT_WINDOW_MS } from '../../src/server/services/enrollment.js';
import { random, startTestServer, type TestServer, type TestServerOptions } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';

interface Answer {
  status: number;
  code: string;
  retryAfter: string | undefined;
  body: unknown;
}

/** POST from a chosen loopback address (127.0.0.0/8 all reach a server on 127.0.0.1). */
function post(url: string, body: string, opts: { from?: string; contentType?: string | null } = {}): Promise<Answer> {
  const contentType = opts.contentType === undefined ? 'application/json' : opts.contentType;
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: 'POST',
        localAddress: opts.from ?? '127.0.0.1',
        agent: false,
        headers: { ...(contentType !== null ? { 'content-type': contentType } : {}), 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const parsed = text ? (JSON.parse(text) as { error?: { code: string } }) : {};
          const retry = res.headers['retry-after'];
          resolve({
            status: res.statusCode ?? 0,
            code: parsed.error?.code ?? 'ok',
            retryAfter: Array.isArray(retry) ? retry[0] : retry,
            body: parsed,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function admin(server: TestServer, path: string, body: unknown = {}): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

async function newToken(server: TestServer, body: Record<string, unknown> = {}): Promise<{ token: EnrollmentToken; id: string }> {
  const res = await admin(server, '/v1/admin/tokens', body);
  expect(res.status).toBe(201);
  const made = (await res.json()) as { token: string; id: string };
  return { token: parseToken(made.token), id: made.id };
}

/** A well-formed sealed request for `token` (possibly with a wrong secret or another iat). */
async function sealed(server: TestServer, token: EnrollmentToken, opts: { name?: string | null; iat?: number } = {}): Promise<string> {
  const ctx: ProtocolContext = opts.iat === undefined ? server.ctx : { ...server.ctx, now: () => opts.iat! };
  const keys = await generateKeySet(server.ctx);
  const { request } = await sealEnrollRequest(ctx, token, server.identity, keys, opts.name ?? null);
  return JSON.stringify(request satisfies EnrollRequestWire);
}

const wrongSecret = (t: EnrollmentToken): EnrollmentToken => ({ ...t, secret: random(32) });
const unknownToken = (t: EnrollmentToken): EnrollmentToken => ({ ...t, tokenId: b64u(random(16)), secret: random(32) });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const count = (answers: Answer[], code: string) => answers.filter((a) => a.code === code).length;

describe.each(dbKinds)('enrollment hardening on %s', (kind) => {
  const servers: TestServer[] = [];
  const start = async (opts: TestServerOptions = {}) => {
    const s = await startTestServer(kind, opts);
    servers.push(s);
    return s;
  };
  let server: TestServer;
  // Budgets refill with time (one unit every 6 s): a burst that must meet exactly the burst size is sent
  // with the server's clock held, so a slow machine cannot refill a unit in the middle of it.
  let heldAt: number | undefined;
  const held = async <T>(burst: () => Promise<T>): Promise<T> => {
    heldAt = Date.now();
    try {
      return await burst();
    } finally {
      heldAt = undefined;
    }
  };
  beforeAll(async () => {
    server = await start({ now: () => heldAt ?? Date.now() });
  });
  afterAll(async () => {
    for (const s of servers.reverse()) await s.close();
  });

  const enrollUrl = () => `${server.url}/v1/enroll`;

  it('item 2: a backtracking name glob cannot stall the server; over-long patterns are refused', async () => {
    const { token } = await newToken(server, { namePattern: '*-*-*-*-*-*.x' });
    // A regex built from this glob backtracks for ~7 s on this name (and ~40 s at 128 characters).
    const name = `${'-'.repeat(96)}.y`;
    const body = await sealed(server, token, { name });
    const started = performance.now();
    const enrolling = post(enrollUrl(), body, { from: '127.0.0.5' });
    await sleep(5);
    const health = await fetch(`${server.url}/healthz`);
    const healthMs = performance.now() - started;
    const answer = await enrolling;
    expect(answer.code).toBe('token_constraint_failed');
    expect(health.status).toBe(200);
    expect(healthMs).toBeLessThan(2500);
    expect(performance.now() - started).toBeLessThan(4000);
    expect(await globAccepts(server, 'web-*')).toBe(201);
    const long = await admin(server, '/v1/admin/tokens', { namePattern: `${'*-'.repeat(64)}x` });
    expect(long.status).toBe(400);
    expect(((await long.json()) as { error: { code: string } }).error.code).toBe('request_invalid');
  });

  it('item 5: a token id alone (sent in clear) cannot lock out the holder who proves the secret', async () => {
    const { token } = await newToken(server);
    // An attacker who saw the id sends wrong secrets for it, until refused.
    const attacker: Answer[] = [];
    for (let i = 0; i < 14; i++) attacker.push(await post(enrollUrl(), await sealed(server, wrongSecret(token)), { from: '127.0.0.6' }));
    expect(count(attacker, 'token_unknown')).toBe(DEFAULT_ENROLLMENT_POLICY.tokenBurst);
    expect(count(attacker, 'rate_limited')).toBe(14 - DEFAULT_ENROLLMENT_POLICY.tokenBurst);
    // Another attacker address: its wrong secret for this id meets the spent per-token budget.
    expect((await post(enrollUrl(), await sealed(server, wrongSecret(token)), { from: '127.0.0.7' })).code).toBe('rate_limited');
    // The holder, from yet another address, is admitted.
    const holder = await post(enrollUrl(), await sealed(server, token, { name: `holder-${kind}` }), { from: '127.0.0.8' });
    expect(holder.status).toBe(200);
  });

  it('item 6: concurrent guesses cannot overspend the failure budget (reserved before any await)', async () => {
    const { token } = await newToken(server);
    const bodies = await Promise.all(Array.from({ length: 100 }, () => sealed(server, unknownToken(token))));
    const answers = await held(() => Promise.all(bodies.map((b) => post(enrollUrl(), b, { from: '127.0.0.9' }))));
    expect(count(answers, 'token_unknown')).toBe(DEFAULT_ENROLLMENT_POLICY.sourceBurst);
    expect(count(answers, 'rate_limited')).toBe(100 - DEFAULT_ENROLLMENT_POLICY.sourceBurst);
  });

  it('item 6: honest concurrent enrollments from one address are queued behind the budget, not refused', async () => {
    const { token } = await newToken(server, { uses: 40 });
    const bodies = await Promise.all(Array.from({ length: 40 }, (_, i) => sealed(server, token, { name: `fleet-${kind}-${i}` })));
    const answers = await Promise.all(bodies.map((b) => post(enrollUrl(), b, { from: '127.0.0.10' })));
    // Every answer's code, so a failure says what the refused ones got.
    expect(answers.filter((a) => a.code !== 'ok').map((a) => `${a.status} ${a.code}`)).toEqual([]);
    expect(count(answers, 'ok')).toBe(40);
  });

  it('item 7: failures after the secret is proven are throttled per token, and audited at most once each', async () => {
    const { token, id } = await newToken(server);
    expect((await post(enrollUrl(), await sealed(server, token, { name: `used-${kind}` }), { from: '127.0.0.11' })).status).toBe(200);
    const attempts = 100;
    const bodies = await Promise.all(Array.from({ length: attempts }, () => sealed(server, token)));
    const answers = await held(() => Promise.all(bodies.map((b) => post(enrollUrl(), b, { from: '127.0.0.11' }))));
    expect(count(answers, 'token_used')).toBe(DEFAULT_ENROLLMENT_POLICY.provenBurst);
    expect(count(answers, 'rate_limited')).toBe(attempts - DEFAULT_ENROLLMENT_POLICY.provenBurst);
    const rows = await server.database.db
      .select({ n: sql<number>`count(*)::int` })
      .from(auditLog)
      .where(and(eq(auditLog.tokenId, id), eq(auditLog.code, 'token_used')));
    expect(rows[0]!.n).toBe(DEFAULT_ENROLLMENT_POLICY.provenBurst);
  });

  it('item 7: probing an existing name through name_taken spends the token use', async () => {
    const first = await newToken(server);
    expect((await post(enrollUrl(), await sealed(server, first.token, { name: `target-${kind}` }), { from: '127.0.0.12' })).status).toBe(
      200,
    );
    const prober = await newToken(server, { uses: 2 });
    expect((await post(enrollUrl(), await sealed(server, prober.token, { name: `target-${kind}` }), { from: '127.0.0.12' })).code).toBe(
      'name_taken',
    );
    const [row] = await server.database.db.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, prober.id));
    expect(row!.usesLeft).toBe(1);
    const audits = await server.database.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.tokenId, prober.id), eq(auditLog.code, 'name_taken')));
    expect(audits).toHaveLength(1);
    expect(audits[0]!.details).toEqual({ useSpent: true });
    expect((await post(enrollUrl(), await sealed(server, prober.token, { name: `target-${kind}` }), { from: '127.0.0.12' })).code).toBe(
      'name_taken',
    );
    expect((await post(enrollUrl(), await sealed(server, prober.token, { name: `other-${kind}` }), { from: '127.0.0.12' })).code).toBe(
      'token_used',
    );
  });

  it('item 7: rate-limited attempts are audited coalesced: one row per source and window, with the count', async () => {
    const windowMs = 1500;
    const windowed = await start({ enrollmentPolicy: { refusalAuditWindowMs: windowMs } });
    const answers: Answer[] = [];
    const started = performance.now();
    for (let i = 0; i < 25; i++) answers.push(await post(`${windowed.url}/v1/enroll`, '{}', { from: '127.0.0.13' }));
    const elapsed = performance.now() - started;
    expect(count(answers, 'envelope_malformed')).toBe(10);
    expect(count(answers, 'rate_limited')).toBe(15);
    await sleep(windowMs + 500);
    const rows = await windowed.database.db.select().from(auditLog).where(eq(auditLog.code, 'rate_limited'));
    // One row per window (one, unless this loaded machine took longer than a window), with the count.
    expect(rows.length).toBeGreaterThanOrEqual(1);
    expect(rows.length).toBeLessThanOrEqual(Math.ceil(elapsed / windowMs));
    for (const row of rows) expect(row).toMatchObject({ sourceAddr: '127.0.0.13', action: 'agent.enroll', outcome: 'failure' });
    expect(rows.reduce((n, r) => n + (r.details as { count: number }).count, 0)).toBe(15);
    const failures = await windowed.database.db.select().from(auditLog).where(eq(auditLog.code, 'envelope_malformed'));
    expect(failures).toHaveLength(10);
  });

  it('item 8: a database fault is 503 unavailable, not charged to the caller and not audited as its fault', async () => {
    const faulty = await start();
    const { token } = await newToken(faulty);
    const url = `${faulty.url}/v1/enroll`;
    await faulty.database.withSession((run) => run('ALTER TABLE enrollment_tokens RENAME TO enrollment_tokens_away'));
    const during: Answer[] = [];
    try {
      for (let i = 0; i < 12; i++) during.push(await post(url, await sealed(faulty, token), { from: '127.0.0.14' }));
    } finally {
      await faulty.database.withSession((run) => run('ALTER TABLE enrollment_tokens_away RENAME TO enrollment_tokens'));
    }
    expect(during.map((a) => a.status)).toEqual(Array(12).fill(503));
    expect(during.every((a) => a.code === 'unavailable' && Number(a.retryAfter) > 0)).toBe(true);
    const blamed = await faulty.database.db.select().from(auditLog).where(eq(auditLog.action, 'agent.enroll'));
    expect(blamed).toEqual([]);
    // After recovery the same address and token enroll at once.
    expect((await post(url, await sealed(faulty, token, { name: `recovered-${kind}` }), { from: '127.0.0.14' })).status).toBe(200);
  });

  it('item 14: the request iat must lie within the enrollment window (1970 and 2100 are stale)', async () => {
    const { token } = await newToken(server, { uses: 5 });
    const now = Date.now();
    for (const iat of [0, Date.UTC(2100, 0, 1), now - ENROLL_IAT_WINDOW_MS - 60_000, now + ENROLL_IAT_WINDOW_MS + 60_000]) {
      const a = await post(enrollUrl(), await sealed(server, token, { iat }), { from: '127.0.0.15' });
      expect(a.status, String(iat)).toBe(400);
      expect(a.code).toBe('stale_message');
    }
    const [row] = await server.database.db.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, token.tokenId));
    expect(row!.usesLeft).toBe(5);
    expect(
      (await post(enrollUrl(), await sealed(server, token, { iat: now - ENROLL_IAT_WINDOW_MS + 60_000 }), { from: '127.0.0.15' })).status,
    ).toBe(200);
  });

  it('item 15: /v1/enroll and /v1/messages take application/json only (415 otherwise)', async () => {
    const { token } = await newToken(server);
    const body = await sealed(server, token, { name: `typed-${kind}` });
    for (const path of ['/v1/enroll', '/v1/messages']) {
      for (const contentType of [
        'text/plain',
        'text/plain;charset=UTF-8',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        null,
      ]) {
        const a = await post(`${server.url}${path}`, body, { from: '127.0.0.16', contentType });
        expect(a.status, `${path} ${contentType}`).toBe(415);
        expect(a.code).toBe('unsupported_media_type');
      }
      expect((await post(`${server.url}${path}`, '{}', { from: '127.0.0.16', contentType: 'application/json; charset=utf-8' })).code).toBe(
        'envelope_malformed',
      );
    }
    // The token was never touched by the refused requests.
    expect((await post(enrollUrl(), body, { from: '127.0.0.16', contentType: 'Application/JSON' })).status).toBe(200);
  });

  it('item 17: revoking twice keeps the first revocation (time and reason) for tokens, keys, agents and admin keys', async () => {
    const { token, id } = await newToken(server, { uses: 2 });
    const enrolled = (await post(enrollUrl(), await sealed(server, token, { name: `revoked-${kind}` }), { from: '127.0.0.17' })).body as {
      body: string;
    };
    const agentId = (JSON.parse(Buffer.from(enrolled.body, 'base64url').toString('utf8')) as { agentId: string }).agentId;
    const [key] = await server.database.db.select().from(agentKeys).where(eq(agentKeys.agentId, agentId));

    const times = async () => ({
      token: (await server.database.db.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, id)))[0]!.revokedAt!.getTime(),
      key: (await server.database.db.select().from(agentKeys).where(eq(agentKeys.id, key!.id)))[0]!.revokedAt!.getTime(),
    });
    expect((await admin(server, `/v1/admin/tokens/${id}/revoke`, { reason: 'first' })).status).toBe(200);
    expect((await admin(server, `/v1/admin/keys/${key!.sigKid}/revoke`, { reason: 'first' })).status).toBe(200);
    const before = await times();
    await sleep(30);
    expect((await admin(server, `/v1/admin/tokens/${id}/revoke`, { reason: 'second' })).status).toBe(200);
    expect((await admin(server, `/v1/admin/keys/${key!.sigKid}/revoke`, { reason: 'second' })).status).toBe(200);
    expect((await admin(server, `/v1/admin/agents/${agentId}/revoke`, { reason: 'agent' })).status).toBe(200);
    expect(await times()).toEqual(before);
    const reasons = await server.database.db
      .select()
      .from(revocations)
      .where(sql`${revocations.subject} in (${id}, ${key!.sigKid})`);
    expect(reasons.map((r) => r.reason)).toEqual(['first', 'first']);
    const revokeAudits = await server.database.db
      .select()
      .from(auditLog)
      .where(
        sql`${auditLog.action} in ('token.revoke', 'key.revoke') and (${auditLog.tokenId} = ${id} or ${auditLog.agentId} = ${agentId})`,
      );
    expect(revokeAudits).toHaveLength(2);

    const made = (await (await admin(server, '/v1/admin/admin-keys', { name: `twice-${kind}`, scopes: ['read'] })).json()) as {
      id: string;
    };
    expect((await admin(server, `/v1/admin/admin-keys/${made.id}/revoke`)).status).toBe(200);
    const [first] = await server.database.db.select().from(adminKeys).where(eq(adminKeys.id, made.id));
    await sleep(30);
    expect((await admin(server, `/v1/admin/admin-keys/${made.id}/revoke`)).status).toBe(200);
    const [second] = await server.database.db.select().from(adminKeys).where(eq(adminKeys.id, made.id));
    expect(second!.revokedAt!.getTime()).toBe(first!.revokedAt!.getTime());
  });

  it('item 17: a token revocation waiting on the row lock is timed after the lock, so no use follows it', async () => {
    const { id } = await newToken(server);
    let revoking: Promise<Response> | undefined;
    // An enrollment-like transaction holds the token row while the revocation arrives.
    await server.database.db.transaction(async (tx) => {
      await tx.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, id)).for('update');
      revoking = admin(server, `/v1/admin/tokens/${id}/revoke`, { reason: 'race' });
      await sleep(300);
      await tx.update(enrollmentTokens).set({ usesLeft: 0 }).where(eq(enrollmentTokens.id, id));
      await tx.insert(tokenUses).values({ tokenId: id, agentId: 'held-lock', sourceAddr: '127.0.0.1', usedAt: sql`clock_timestamp()` });
    });
    expect((await revoking!).status).toBe(200);
    const [use] = await server.database.db.select().from(tokenUses).where(eq(tokenUses.tokenId, id));
    const [row] = await server.database.db.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, id));
    expect(row!.revokedAt!.getTime()).toBeGreaterThanOrEqual(use!.usedAt.getTime());
  });
});

function globAccepts(server: TestServer, namePattern: string): Promise<number> {
  return admin(server, '/v1/admin/tokens', { namePattern }).then((r) => r.status);
}
