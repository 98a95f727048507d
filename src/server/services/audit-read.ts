// Reading the audit log page by page (hashes shown so a reader can anchor the chain elsewhere):
// oldest first after a position (the admin API), or newest first before one with filters (the console).
import { and, asc, desc, eq, gt, lt, or, sql, type SQL } from 'drizzle-orm';
import { b64u } from '../../protocol/bytes.js';
import type { Db } from '../../db/database.js';
import { auditLog } from '../../db/schema.js';

type Row = typeof auditLog.$inferSelect;

const view = (r: Row) => ({
  seq: r.seq,
  at: r.at.toISOString(),
  actor: r.actor,
  action: r.action,
  outcome: r.outcome,
  code: r.code,
  sourceAddr: r.sourceAddr,
  tokenId: r.tokenId,
  agentId: r.agentId,
  details: r.details,
  hash: b64u(r.hash),
});
export type AuditView = ReturnType<typeof view>;

export async function listAudit(db: Db, after: number, limit: number) {
  const rows = await db
    .select()
    .from(auditLog)
    .where(gt(auditLog.seq, after))
    .orderBy(asc(auditLog.seq))
    .limit(limit + 1);
  const page = rows.slice(0, limit);
  return {
    entries: page.map(view),
    next: rows.length > limit ? page[page.length - 1]!.seq : null,
  };
}

export interface AuditFilter {
  /** Exact action (`agent.revoke`) or a family (`agent.`, ending in a dot). */
  action?: string | undefined;
  outcome?: 'success' | 'failure' | undefined;
  /** Entries about this agent or token id, or by this actor. */
  subject?: string | undefined;
}

/** Newest first, entries before `before` (a seq; none: from the newest), filtered. */
export async function listAuditNewest(db: Db, before: number | undefined, limit: number, filter: AuditFilter) {
  const conditions: (SQL | undefined)[] = [before !== undefined ? lt(auditLog.seq, before) : undefined];
  if (filter.action) {
    conditions.push(
      filter.action.endsWith('.') ? sql`starts_with(${auditLog.action}, ${filter.action})` : eq(auditLog.action, filter.action),
    );
  }
  if (filter.outcome) conditions.push(eq(auditLog.outcome, filter.outcome));
  if (filter.subject) {
    const s = filter.subject;
    conditions.push(or(eq(auditLog.agentId, s), eq(auditLog.tokenId, s), eq(auditLog.actor, s)));
  }
  const rows = await db
    .select()
    .from(auditLog)
    .where(and(...conditions))
    .orderBy(desc(auditLog.seq))
    .limit(limit + 1);
  const page = rows.slice(0, limit);
  return { entries: page.map(view), before: rows.length > limit ? page[page.length - 1]!.seq : null };
}
