// Enrollment under concurrency, across two instances on one database: a token's uses are consumed
// exactly once each, a taken name spends exactly one use per attempt, and the audit chain (appended
// by the enrollment statement itself, and by other writers at the same time) stays one verifiable,
// gap-free chain with exactly one entry per enrollment.
import { createHash } from 'node:crypto';
import { and, asc, desc, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agents, auditHead, auditLog, enrollmentTokens, tokenUses } from '../../src/db/schema.js';
import { sealEnrollRequest } from '../../src/protocol/enrollment.js';
import { generateKeySet } from '../../src/protocol/keys.js';
import { parseToken, type EnrollmentToken } from '../../src/protocol/token.js';
import { canonicalJson, verifyAuditChain } from '../../src/server/services/audit.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';

async function admin(server: TestServer, path: string, body: unknown = {}): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

async function newToken(server: TestServer, body: Record<string, unknown>): Promise<{ token: EnrollmentToken; id: string }> {
  const res = await admin(server, '/v1/admin/tokens', body);
  expect(res.status).toBe(201);
  const made = (await res.json()) as { token: string; id: string };
  return { token: parseToken(made.token), id: made.id };
}

async function sealed(server: TestServer, token: EnrollmentToken, name: string | null): Promise<string> {
  const { request } = await sealEnrollRequest(server.ctx, token, server.identity, await generateKeySet(server.ctx), name);
  return JSON.stringify(request);
}

async function enroll(server: TestServer, body: string): Promise<string> {
  const res = await fetch(`${server.url}/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  if (res.status === 200) return 'ok';
  return `${res.status} ${((await res.json()) as { error: { code: string } }).error.code}`;
}

const tally = (xs: string[]) => xs.reduce<Record<string, number>>((m, x) => ({ ...m, [x]: (m[x] ?? 0) + 1 }), {});

describe.each(dbKinds)('concurrent enrollment on %s', (kind) => {
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    a = await startTestServer(kind);
    // A second instance of the same deployment: same keys, same database.
    b = await startTestServer(kind, { database: a.database, identity: a.identity });
  });
  afterAll(async () => {
    await b.close();
    await a.close();
  });

  /** The whole chain verifies, its seq run 1..n without a gap, and the head row names its last entry. */
  async function chainIsWhole(): Promise<number> {
    const status = await verifyAuditChain(a.database.db);
    expect(status).toMatchObject({ ok: true });
    const seqs = (await a.database.db.select({ seq: auditLog.seq }).from(auditLog).orderBy(asc(auditLog.seq))).map((r) => r.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    const [head] = await a.database.db.select().from(auditHead);
    expect(head!.seq).toBe(status.entries);
    expect(Buffer.from(head!.hash).equals(Buffer.from(status.head!.hash))).toBe(true);
    return status.entries;
  }

  it('more concurrent enrollments than uses, on two instances, among other audited writes: each use consumed once', async () => {
    const uses = 24;
    const attempts = 36;
    const { token, id } = await newToken(a, { uses });
    const bodies = await Promise.all(Array.from({ length: attempts }, (_, i) => sealed(a, token, `race-${kind}-${i}`)));
    const before = await chainIsWhole();
    const [answers, made] = await Promise.all([
      Promise.all(bodies.map((body, i) => enroll(i % 2 ? b : a, body))),
      // Other writers extend the same chain meanwhile.
      Promise.all(Array.from({ length: 6 }, (_, i) => admin(i % 2 ? b : a, '/v1/admin/tokens', { uses: 1 }))),
    ]);
    expect(made.map((r) => r.status)).toEqual(Array(6).fill(201));
    expect(tally(answers)).toEqual({ ok: uses, '409 token_used': attempts - uses });

    const db = a.database.db;
    const [row] = await db.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, id));
    expect(row!.usesLeft).toBe(0);
    const used = await db.select().from(tokenUses).where(eq(tokenUses.tokenId, id));
    const enrolled = await db.select().from(agents).where(eq(agents.tokenId, id));
    expect(used).toHaveLength(uses);
    expect(new Set(used.map((u) => u.agentId))).toEqual(new Set(enrolled.map((x) => x.id)));
    // One success entry per enrolled agent, naming it; one failure entry per refused attempt.
    const entries = await db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.tokenId, id), eq(auditLog.action, 'agent.enroll')));
    const ok = entries.filter((e) => e.outcome === 'success');
    expect(new Set(ok.map((e) => e.agentId))).toEqual(new Set(enrolled.map((x) => x.id)));
    expect(ok).toHaveLength(uses);
    expect(entries.filter((e) => e.code === 'token_used')).toHaveLength(attempts - uses);
    expect(await chainIsWhole()).toBe(before + attempts + 6);
  });

  it('one name raced by concurrent enrollments: one agent, every other attempt spends its use and is audited once', async () => {
    const attempts = 8;
    const { token, id } = await newToken(a, { uses: attempts });
    const name = `contested-${kind}`;
    const bodies = await Promise.all(Array.from({ length: attempts }, () => sealed(a, token, name)));
    const answers = await Promise.all(bodies.map((body, i) => enroll(i % 2 ? b : a, body)));
    expect(tally(answers)).toEqual({ ok: 1, '409 name_taken': attempts - 1 });

    const db = a.database.db;
    const [row] = await db.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, id));
    expect(row!.usesLeft).toBe(0);
    expect(await db.select().from(agents).where(eq(agents.name, name))).toHaveLength(1);
    expect(await db.select().from(tokenUses).where(eq(tokenUses.tokenId, id))).toHaveLength(1);
    const taken = await db
      .select({ n: sql<number>`count(*)::int` })
      .from(auditLog)
      .where(and(eq(auditLog.tokenId, id), eq(auditLog.code, 'name_taken')));
    expect(taken[0]!.n).toBe(attempts - 1);
    await chainIsWhole();
  });

  it('an entry appended the previous way (an old instance during a rolling upgrade) moves the head; later appends chain to it', async () => {
    const before = await chainIsWhole();
    // What the previous version did: advisory lock, last row, insert with the hash it computed itself.
    await a.database.db.transaction(async (tx) => {
      await tx.execute(sql`SELECT pg_advisory_xact_lock(${0x6c6b_6175_6469_7400n})`);
      const [last] = await tx.select({ seq: auditLog.seq, hash: auditLog.hash }).from(auditLog).orderBy(desc(auditLog.seq)).limit(1);
      const at = new Date(Math.floor(Date.now()));
      const row = {
        seq: (last?.seq ?? 0) + 1,
        at,
        actor: 'admin',
        action: 'token.create',
        outcome: 'success' as const,
        code: null,
        sourceAddr: null,
        tokenId: null,
        agentId: null,
        details: { by: 'old-version' },
      };
      const body = canonicalJson([row.seq, at.toISOString(), row.actor, row.action, row.outcome, null, null, null, null, row.details]);
      const prevHash = last?.hash ?? new Uint8Array(32);
      const hash = createHash('sha256').update(prevHash).update(body).digest();
      await tx.insert(auditLog).values({ ...row, prevHash, hash });
    });
    const { token } = await newToken(a, { uses: 1 });
    expect(await enroll(b, await sealed(b, token, `after-old-writer-${kind}`))).toBe('ok');
    expect(await chainIsWhole()).toBe(before + 3); // the old entry, the token's, the enrollment's
  });

  it('without the chain head row, enrollment fails closed (503) and consumes nothing', async () => {
    const { token, id } = await newToken(a, { uses: 1 });
    const body = await sealed(a, token, `headless-${kind}`);
    const [saved] = await a.database.db.select().from(auditHead);
    await a.database.db.delete(auditHead);
    try {
      expect(await enroll(a, body)).toBe('503 unavailable');
    } finally {
      await a.database.db.insert(auditHead).values(saved!);
    }
    const [row] = await a.database.db.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, id));
    expect(row!.usesLeft).toBe(1);
    expect(
      await a.database.db
        .select()
        .from(agents)
        .where(eq(agents.name, `headless-${kind}`)),
    ).toHaveLength(0);
    expect(await enroll(a, body)).toBe('ok');
    await chainIsWhole();
  });
});
