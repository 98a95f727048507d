// Retention: inventories older than the limit go, and each agent keeps only its newest N; old
// replay records go; the latest inventory is never the one dropped by the per-agent rule.
import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { agents, inventories, seenMessages } from '../../src/db/schema.js';
import { latestInventory, pruneInventories } from '../../src/server/services/inventory-store.js';
import { createTestDatabase, dbKinds, type TestDatabase } from '../helpers/db.js';

describe.each(dbKinds)('retention on %s', (kind) => {
  let database: TestDatabase | undefined;
  afterEach(async () => {
    await database?.dispose();
    database = undefined;
  });

  it('prunes by age and per agent, and old replay records', async () => {
    database = await createTestDatabase(kind);
    const { db } = database;
    const now = Date.now();
    const day = 86400_000;
    await db.insert(agents).values([
      { id: 'a', name: 'a', role: 'agent' },
      { id: 'b', name: 'b', role: 'agent' },
    ]);
    const row = (agentId: string, ageMs: number, n: number) => ({
      agentId,
      messageId: new Uint8Array([n]),
      receivedAt: new Date(now - ageMs),
      size: 2,
      content: { n },
    });
    await db
      .insert(inventories)
      .values([...Array.from({ length: 5 }, (_, i) => row('a', i * 1000, i)), row('b', 100 * day, 50), row('b', 1000, 51)]);
    await db.insert(seenMessages).values([
      { sigKid: 'k', messageId: new Uint8Array([1]), counter: 1, receivedAt: new Date(now - 30 * day) },
      { sigKid: 'k', messageId: new Uint8Array([2]), counter: 2, receivedAt: new Date(now) },
    ]);
    const pruned = await pruneInventories(db, { maxAgeDays: 90, maxPerAgent: 3, replayRecordMs: 8 * day }, now);
    expect(pruned).toEqual({ inventories: 3, replayRecords: 1 });
    const left = await db
      .select({ agentId: inventories.agentId, c: sql<number>`count(*)::int` })
      .from(inventories)
      .groupBy(inventories.agentId);
    expect(Object.fromEntries(left.map((r) => [r.agentId, r.c]))).toEqual({ a: 3, b: 1 });
    expect((await latestInventory(db, 'a'))?.content).toEqual({ n: 0 });
    expect((await db.select().from(seenMessages)).map((r) => r.counter)).toEqual([2]);
  });
});
