// Stored inventories: every accepted one (jsonb, unknown fields kept) with agent, message id,
// received-at and size; the latest per agent is one index probe; retention prunes the rest.
import { and, desc, eq, gte, lt, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { agents, inventories, seenMessages, type LegacyMeta, type RelayHop } from '../../db/schema.js';
import { b64u } from '../../protocol/bytes.js';
import { resolveAgentId } from './agents.js';
import { pageQuery, paginate, positionOf, type PageRequest } from './page.js';

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

/** One stored inventory as history and export show it; `inventory` only when asked for. */
export interface InventoryEntry {
  agentId: string;
  agentName: string;
  messageId: string;
  receivedAt: string;
  size: number;
  /** The verified relay path (spec §11), outer → inner; empty when it came directly. */
  path: RelayHop[];
  inventory?: unknown;
  /** Legacy origin (spec §11.2), and with the content the XML as the legacy agent sent it. */
  legacy?: LegacyMeta;
  raw?: string;
}

/** The columns of a stored inventory's listing entry (with its agent's name). */
const entryColumns = {
  agentId: inventories.agentId,
  agentName: agents.name,
  messageId: inventories.messageId,
  receivedAt: inventories.receivedAt,
  size: inventories.size,
  path: inventories.path,
  legacy: inventories.legacy,
};

/**
 * Stored inventories in the order received (received_at, id), a page at a time (services/page.ts):
 * one agent's (by id or name) or everyone's, from `since` on. Export asks for the content too;
 * the page size bounds what one answer holds.
 */
export async function listInventories(
  db: Db,
  page: PageRequest,
  opts: { agentRef?: string | undefined; since?: Date | undefined; withContent: boolean },
): Promise<{ inventories: InventoryEntry[]; nextCursor: string | null }> {
  const { where, orderBy } = pageQuery(page, inventories.receivedAt, inventories.id);
  const conditions: (SQL | undefined)[] = [where];
  if (opts.agentRef !== undefined) conditions.push(eq(inventories.agentId, await resolveAgentId(db, opts.agentRef)));
  if (opts.since !== undefined) conditions.push(gte(inventories.receivedAt, opts.since));
  const fetched = await db
    .select({
      id: inventories.id,
      ...entryColumns,
      position: positionOf(inventories.receivedAt),
      ...(opts.withContent ? { content: inventories.content, raw: inventories.raw } : {}),
    })
    .from(inventories)
    .innerJoin(agents, eq(agents.id, inventories.agentId))
    .where(and(...conditions))
    .orderBy(...orderBy)
    .limit(page.limit + 1);
  const { rows, nextCursor } = paginate(
    fetched.map((r) => ({ ...r, id: String(r.id) })),
    page.limit,
  );
  return {
    inventories: rows.map((r) => ({
      agentId: r.agentId,
      agentName: r.agentName,
      messageId: b64u(r.messageId),
      receivedAt: r.receivedAt.toISOString(),
      size: r.size,
      path: r.path ?? [],
      ...('content' in r ? { inventory: r.content } : {}),
      ...(r.legacy ? { legacy: r.legacy } : {}),
      ...('raw' in r && typeof r.raw === 'string' ? { raw: r.raw } : {}),
    })),
    nextCursor,
  };
}

/** One stored inventory of an agent (by id or name), by its message id. */
export async function inventoryByMessage(db: Db, agentRef: string, messageId: Uint8Array) {
  const agentId = await resolveAgentId(db, agentRef);
  const [row] = await db
    .select({
      ...entryColumns,
      content: inventories.content,
      raw: inventories.raw,
    })
    .from(inventories)
    .innerJoin(agents, eq(agents.id, inventories.agentId))
    .where(and(eq(inventories.agentId, agentId), eq(inventories.messageId, messageId)))
    .orderBy(desc(inventories.receivedAt))
    .limit(1);
  return row;
}
