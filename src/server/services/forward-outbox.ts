// The GLPI forwarding outbox (README "Forwarding to GLPI"): which targets exist, which stored
// inventories each still has to receive, and the claim / done / retry steps a delivering instance
// takes. Rows are written by the statement that stores inventories (store-batcher.ts, OUTBOX_CTE),
// so an inventory is in the outbox exactly when it is stored. Delivery is at least once and in order
// per (target, agent): only the agent's oldest undelivered row for a target can be claimed, and a
// claim is a lease taken under FOR UPDATE SKIP LOCKED, so two instances never hold the same row.
import { sql } from 'drizzle-orm';
import { rowsOf, type Db } from '../../db/database.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

/**
 * The CTE that queues every inventory inserted by `stored` (a data-modifying CTE that RETURNs id,
 * agent_id and received_at) for every active target. Any statement that stores inventories
 * (sealed messages, later legacy-origin ones) adds it, so nothing stored bypasses forwarding.
 */
export const OUTBOX_CTE = `outbox AS (
    INSERT INTO forward_outbox (target_id, agent_id, inventory_id, created_at, next_attempt_at)
    SELECT t.id, stored.agent_id, stored.id, stored.received_at, stored.received_at
    FROM stored CROSS JOIN forward_targets t WHERE t.active
    RETURNING 1
  )`;

/** A target as configured: its URL without credentials, and the id derived from it. */
export interface TargetRef {
  id: string;
  /** The URL without user info (what the database and status show). */
  url: string;
}

/** The URL without user name and password, query kept (GLPI's endpoint may need one). */
export function redactUrl(url: URL): string {
  const u = new URL(url.href);
  u.username = '';
  u.password = '';
  return u.href;
}

/** A target's id: stable for a URL, whatever credentials it carries. */
export function targetIdOf(url: URL): string {
  return `glpi-${bytesToHex(sha256(utf8ToBytes(`latchkey forward target v1\0${redactUrl(url)}`))).slice(0, 16)}`;
}

export interface TargetSync {
  /** Targets deactivated because this configuration no longer names them. */
  removed: { id: string; url: string; dropped: number }[];
}

/**
 * Makes `targets` the active set (the latest started instance's configuration wins). A target no
 * longer configured is deactivated and its undelivered rows are dropped (counted in the answer, so
 * the caller logs them); configuring it again later starts it afresh, with new inventories only.
 */
export async function syncTargets(db: Db, targets: readonly TargetRef[], now: number): Promise<TargetSync> {
  return db.transaction(async (tx) => {
    const at = tsz(now);
    for (const t of targets) {
      await tx.execute(sql`
        INSERT INTO forward_targets (id, url, active, created_at) VALUES (${t.id}, ${t.url}, true, ${at})
        ON CONFLICT (id) DO UPDATE SET active = true, removed_at = NULL, url = EXCLUDED.url`);
    }
    const ids = targets.map((t) => t.id);
    const gone = rowsOf(
      await tx.execute(sql`
        UPDATE forward_targets SET active = false, removed_at = ${at}
        WHERE active AND NOT (id = ANY(${sql.raw(arrayLiteral(ids))}::text[]))
        RETURNING id, url`),
    );
    const removed: TargetSync['removed'] = [];
    for (const g of gone) {
      const dropped = rowsOf(await tx.execute(sql`DELETE FROM forward_outbox WHERE target_id = ${String(g.id)} RETURNING 1`)).length;
      removed.push({ id: String(g.id), url: String(g.url), dropped });
    }
    return { removed };
  });
}

/** One claimed row: the inventory to send, as stored (jsonb text). */
export interface Claimed {
  id: number;
  agentId: string;
  inventoryId: number;
  attempts: number;
  body: string;
}

/**
 * Claims up to `limit` due rows of a target for `owner` until `now + leaseMs`: each is the oldest
 * undelivered row of its agent for this target, not leased by anyone (or its lease ran out). Rows
 * another instance is claiming at the same moment are skipped, never waited for.
 */
export async function claimDue(db: Db, targetId: string, owner: string, now: number, leaseMs: number, limit: number): Promise<Claimed[]> {
  const at = tsz(now);
  const rows = rowsOf(
    await db.execute(sql`
      UPDATE forward_outbox o SET lease_owner = ${owner}, lease_until = ${tsz(now + leaseMs)}
      FROM inventories i
      WHERE i.id = o.inventory_id AND o.id IN (
        SELECT c.id FROM forward_outbox c
        WHERE c.target_id = ${targetId} AND c.next_attempt_at <= ${at}
          AND (c.lease_until IS NULL OR c.lease_until < ${at})
          AND NOT EXISTS (
            SELECT 1 FROM forward_outbox e
            WHERE e.target_id = c.target_id AND e.agent_id = c.agent_id AND e.inventory_id < c.inventory_id)
        ORDER BY c.inventory_id
        LIMIT ${limit}
        FOR UPDATE OF c SKIP LOCKED)
      RETURNING o.id, o.agent_id, o.inventory_id, o.attempts, i.content::text AS body`),
  );
  return rows
    .map((r) => ({
      id: Number(r.id),
      agentId: String(r.agent_id),
      inventoryId: Number(r.inventory_id),
      attempts: Number(r.attempts),
      body: String(r.body),
    }))
    .sort((a, b) => a.inventoryId - b.inventoryId);
}

/** The target took it: the row goes (only if this owner still holds it). */
export async function markDelivered(db: Db, targetId: string, row: Claimed, owner: string, now: number): Promise<void> {
  await db.transaction(async (tx) => {
    const gone = rowsOf(await tx.execute(sql`DELETE FROM forward_outbox WHERE id = ${row.id} AND lease_owner = ${owner} RETURNING 1`));
    if (gone.length === 0) return;
    await tx.execute(sql`
      UPDATE forward_targets SET delivered_total = delivered_total + 1, last_delivered_at = ${tsz(now)} WHERE id = ${targetId}`);
  });
}

/** Exponential backoff with full jitter over [delay/2, delay]: 1 s, 2 s, 4 s, … at most `capMs`. */
export function backoffMs(attempts: number, random: () => number, baseMs = 1000, capMs = 600_000): number {
  const delay = Math.min(capMs, baseMs * 2 ** Math.min(30, Math.max(0, attempts - 1)));
  return Math.round(delay / 2 + (random() * delay) / 2);
}

/** The target refused or could not be reached: the row waits `delayMs`, the lease is given back. */
export async function markFailed(
  db: Db,
  targetId: string,
  row: Claimed,
  owner: string,
  now: number,
  delayMs: number,
  error: string,
): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.execute(sql`
      UPDATE forward_outbox SET attempts = attempts + 1, next_attempt_at = ${tsz(now + delayMs)}, last_error = ${error},
             lease_owner = NULL, lease_until = NULL
      WHERE id = ${row.id} AND lease_owner = ${owner}`);
    await tx.execute(sql`UPDATE forward_targets SET last_error = ${error}, last_error_at = ${tsz(now)} WHERE id = ${targetId}`);
  });
}

/** Gives back leases not tried (the target went down while a batch was in hand). */
export async function release(db: Db, rows: readonly Claimed[], owner: string): Promise<void> {
  if (rows.length === 0) return;
  await db.execute(sql`
    UPDATE forward_outbox SET lease_owner = NULL, lease_until = NULL
    WHERE lease_owner = ${owner} AND id = ANY(${sql.raw(arrayLiteral(rows.map((r) => String(r.id))))}::bigint[])`);
}

export interface TargetStatus {
  id: string;
  url: string;
  active: boolean;
  /** Inventories stored but not yet accepted by this target. */
  backlog: number;
  /** Age of the oldest of them, in seconds (null when none). */
  oldestUndeliveredSeconds: number | null;
  deliveredTotal: number;
  lastDeliveredAt: string | null;
  lastError: string | null;
  lastErrorAt: string | null;
}

/** Every target, active first, with its backlog. */
export async function forwardStatus(db: Db, now: number): Promise<TargetStatus[]> {
  const rows = rowsOf(
    await db.execute(sql`
      SELECT t.id, t.url, t.active, t.delivered_total::text AS delivered_total,
             t.last_delivered_at, t.last_error, t.last_error_at,
             (SELECT count(*) FROM forward_outbox o WHERE o.target_id = t.id)::int AS backlog,
             (SELECT min(o.created_at) FROM forward_outbox o WHERE o.target_id = t.id) AS oldest
      FROM forward_targets t ORDER BY t.active DESC, t.id`),
  );
  const iso = (v: unknown) => (v === null || v === undefined ? null : new Date(v as string).toISOString());
  return rows.map((r) => ({
    id: String(r.id),
    url: String(r.url),
    active: r.active === true,
    backlog: Number(r.backlog),
    oldestUndeliveredSeconds:
      r.oldest === null || r.oldest === undefined ? null : Math.max(0, (now - new Date(r.oldest as string).getTime()) / 1000),
    deliveredTotal: Number(r.delivered_total),
    lastDeliveredAt: iso(r.last_delivered_at),
    lastError: r.last_error === null || r.last_error === undefined ? null : String(r.last_error),
    lastErrorAt: iso(r.last_error_at),
  }));
}

/** A time as a timestamptz parameter (ISO text: both drivers take it; postgres.js refuses a Date in raw SQL). */
const tsz = (ms: number) => sql`${new Date(ms).toISOString()}::timestamptz`;

/** A PostgreSQL array literal of plain tokens (ids we made: [A-Za-z0-9_-]), as SQL text. */
function arrayLiteral(items: readonly string[]): string {
  for (const i of items) if (!/^[A-Za-z0-9_-]+$/.test(i)) throw new RangeError('not a plain id');
  return `'{${items.join(',')}}'`;
}
