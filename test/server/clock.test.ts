// The server reads one clock, the injected ctx.now: budgets refill, and revocations and audit
// entries are stamped, by it. So time can be moved in a test instead of waited for.
import { desc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditLog, enrollmentTokens } from '../../src/db/schema.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { dbKinds } from '../helpers/db.js';

describe.each(dbKinds)('the injected clock on %s', (kind) => {
  let server: TestServer;
  let now = Date.UTC(2031, 0, 1);
  beforeAll(async () => {
    server = await startTestServer(kind, { now: () => now });
  });
  afterAll(() => server.close());

  const badEnroll = () =>
    fetch(`${server.url}/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"v":1}' });

  it('refills the enrollment failure budget when the clock moves, not when the wall clock does', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await badEnroll()).status);
    expect(statuses.slice(0, 10)).not.toContain(429);
    expect(statuses[10]).toBe(429);
    // However long that took in real time, the budget is still spent at the same injected instant.
    expect((await badEnroll()).status).toBe(429);
    now += 60_000; // one failure back every 6 s
    expect((await badEnroll()).status).not.toBe(429);
  });

  it('stamps a revocation and its audit entry with the injected time', async () => {
    const created = await fetch(`${server.url}/v1/admin/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    const { id } = (await created.json()) as { id: string };
    now += 3_600_000;
    const revoked = await fetch(`${server.url}/v1/admin/tokens/${id}/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(revoked.status).toBe(200);
    const [token] = await server.database.db.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, id));
    expect(token!.revokedAt!.getTime()).toBe(now);
    const [entry] = await server.database.db.select().from(auditLog).orderBy(desc(auditLog.seq)).limit(1);
    expect(entry).toMatchObject({ action: 'token.revoke', tokenId: id });
    expect(entry!.at.getTime()).toBe(now);
  });
});
