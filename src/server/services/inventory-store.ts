// Stored inventories: every accepted one (jsonb, unknown fields kept) with agent, message id,
// received-at and size; the latest per agent is one index probe; retention prunes the rest.
import { and, desc, eq, lt, sql } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { inventories, seenMessages } from '../../db/schema.js';

export async function latestInventory(db: Db, agentId: string) {
  const [row] = await db
    .select()
    .from(inventories)
    .where(eq(inventories.agentId, agentId))
    .orderBy(desc(inventories.receivedAt), desc(inventories.id))
    .limit(1);
  return row;
}

export interface RetentionPolicy {
  /** Keep at most this many inventories per agent (the newest). */
  maxPerAgent: number;
  /** Drop inventories older than this many days. */
  maxAgeDays: number;
  /** Drop replay records older than this (they are refused as stale anyway). */
  replayRecordMs: number;
}

export async function pruneInventories(
  db: Db,
  policy: RetentionPolicy,
  now: number,
): Promise<{ inventories: number; replayRecords: number }> {
  const cutoff = new Date(now - policy.maxAgeDays * 86400_000);
  const old = await db.delete(inventories).where(lt(inventories.receivedAt, cutoff)).returning({ id: inventories.id });
  const extra = await db.execute(sql`
    DELETE FROM ${inventories} WHERE ${inventories.id} IN (
      SELECT id FROM (
        SELECT ${inventories.id} AS id, row_number() OVER (PARTITION BY ${inventories.agentId} ORDER BY ${inventories.receivedAt} DESC, ${inventories.id} DESC) AS rn
        FROM ${inventories}) ranked
      WHERE rn > ${policy.maxPerAgent})`);
  const replay = await db
    .delete(seenMessages)
    .where(and(lt(seenMessages.receivedAt, new Date(now - policy.replayRecordMs))))
    .returning({ c: seenMessages.counter });
  const extraCount = Number(
    (extra as unknown as { count?: number; affectedRows?: number }).count ??
      (extra as unknown as { affectedRows?: number }).affectedRows ??
      0,
  );
  return { inventories: old.length + extraCount, replayRecords: replay.length };
}

/** An agent's stored inventories, newest first (no content): the history the console lists. */
export async function inventoryHistory(db: Db, agentId: string, limit: number) {
  return db
    .select({ id: inventories.id, receivedAt: inventories.receivedAt, size: inventories.size })
    .from(inventories)
    .where(eq(inventories.agentId, agentId))
    .orderBy(desc(inventories.receivedAt), desc(inventories.id))
    .limit(limit);
}

/** One stored inventory of an agent, by its id. */
export async function inventoryOf(db: Db, agentId: string, id: number) {
  const [row] = await db
    .select()
    .from(inventories)
    .where(and(eq(inventories.agentId, agentId), eq(inventories.id, id)))
    .limit(1);
  return row;
}
