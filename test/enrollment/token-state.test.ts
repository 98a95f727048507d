// "Is this token usable" is one rule with two forms: tokenState (TypeScript: the pre-checks, the
// explanation after a lost race, the admin listing) and tokenStateSql (the conditional update that
// consumes a use). They must agree on every combination, at the boundaries, on both databases.
import { asc, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollmentTokens } from '../../src/db/schema.js';
import { tokenState, tokenStateSql } from '../../src/server/services/tokens.js';
import { createTestDatabase, dbKinds, type TestDatabase } from '../helpers/db.js';

describe.each(dbKinds)('token state rule on %s', (kind) => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase(kind);
  });
  afterAll(() => database.dispose());

  it('the SQL and TypeScript forms give the same state for every case, and only active is consumed', async () => {
    const now = Date.UTC(2026, 10, 28, 12, 0, 0, 0);
    const rows = [];
    let i = 0;
    for (const revokedAt of [null, new Date(now - 5000), new Date(now + 5000)]) {
      for (const usesLeft of [-1, 0, 1, 3]) {
        for (const offset of [-86_400_000, -1, 0, 1, 86_400_000]) {
          rows.push({
            id: `t${i++}`,
            secretHash: new Uint8Array(32),
            role: 'agent' as const,
            usesTotal: 3,
            usesLeft,
            expiresAt: new Date(now + offset),
            revokedAt,
          });
        }
      }
    }
    await database.db.insert(enrollmentTokens).values(rows);
    const fromSql = await database.db
      .select({
        id: enrollmentTokens.id,
        state: tokenStateSql(now),
        revokedAt: enrollmentTokens.revokedAt,
        usesLeft: enrollmentTokens.usesLeft,
        expiresAt: enrollmentTokens.expiresAt,
      })
      .from(enrollmentTokens)
      .orderBy(asc(enrollmentTokens.id));
    expect(fromSql).toHaveLength(rows.length);
    for (const r of fromSql) expect(r.state, r.id).toBe(tokenState(r, now));
    expect(new Set(fromSql.map((r) => r.state))).toEqual(new Set(['active', 'expired', 'used', 'revoked']));

    // The consuming update (the enrollment's) takes exactly the rows the TypeScript form calls active.
    const consumed = await database.db
      .update(enrollmentTokens)
      .set({ usesLeft: sql`${enrollmentTokens.usesLeft} - 1` })
      .where(sql`${tokenStateSql(now)} = 'active'`)
      .returning({ id: enrollmentTokens.id });
    const active = rows.filter((r) => tokenState(r, now) === 'active').map((r) => r.id);
    expect(consumed.map((r) => r.id).sort()).toEqual(active.sort());
    const [one] = await database.db.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, active[0]!));
    expect(one!.usesLeft).toBe(rows.find((r) => r.id === active[0])!.usesLeft - 1);
  });
});
