// Agents as admins see them, and their revocation: effective on the very next request on every
// instance, because ingest reads key and agent status from the database on every message.
import { eq, inArray, sql } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { agentKeys, agents } from '../../db/schema.js';
import { ApiError } from '../errors.js';
import { appendAudit } from './audit.js';
import { recordRevocation } from './revocation-list.js';
import { pageQuery, paginate, positionOf, type PageRequest } from './page.js';

export interface AgentView {
  id: string;
  name: string;
  role: 'agent' | 'relay';
  labels: Record<string, string>;
  status: 'active' | 'revoked';
  createdAt: string;
  lastSeenAt: string | null;
  keys: { sigKid: string; kxKid: string; status: string; expiresAt: string }[];
  expiresAt: string | null;
}

/** One page of agents in creation order, each with its keys (spec: pagination in page.ts). */
export async function listAgents(db: Db, page: PageRequest): Promise<{ agents: AgentView[]; nextCursor: string | null }> {
  const { where, orderBy } = pageQuery(page, agents.createdAt, agents.id);
  const fetched = await db
    .select({ agent: agents, position: positionOf(agents.createdAt) })
    .from(agents)
    .where(where)
    .orderBy(...orderBy)
    .limit(page.limit + 1);
  const { rows, nextCursor } = paginate(fetched.map((r) => ({ ...r, id: r.agent.id })), page.limit);
  // The keys of this page's agents, selected by the page's own condition: never a list of ids.
  const pageIds = db.select({ id: agents.id }).from(agents).where(where).orderBy(...orderBy).limit(page.limit);
  const keys = rows.length ? await db.select().from(agentKeys).where(inArray(agentKeys.agentId, pageIds)) : [];
  const byAgent = new Map<string, (typeof keys)[number][]>();
  for (const k of keys) byAgent.set(k.agentId, [...(byAgent.get(k.agentId) ?? []), k]);
  const views = rows.map(({ agent: a }) => {
    const mine = byAgent.get(a.id) ?? [];
    const active = mine.filter((k) => k.status === 'active').sort((x, y) => y.expiresAt.getTime() - x.expiresAt.getTime());
    return {
      id: a.id,
      name: a.name,
      role: a.role,
      labels: a.labels,
      status: a.status,
      createdAt: a.createdAt.toISOString(),
      lastSeenAt: a.lastSeenAt?.toISOString() ?? null,
      keys: mine.map((k) => ({ sigKid: k.sigKid, kxKid: k.kxKid, status: k.status, expiresAt: k.expiresAt.toISOString() })),
      expiresAt: active[0]?.expiresAt.toISOString() ?? null,
    };
  });
  return { agents: views, nextCursor };
}

/**
 * Revocation times are read from the injected clock inside the transaction, after the rows are
 * locked, so nothing the lock held back can appear after the revocation; a revocation that already
 * happened is kept (its time and reason), never overwritten.
 */
export async function revokeAgent(db: Db, clock: () => number, actor: string, id: string, reason?: string): Promise<void> {
  await db.transaction(async (tx) => {
    const [row] = await tx.select({ status: agents.status }).from(agents).where(eq(agents.id, id)).for('update');
    if (!row) throw new ApiError('not_found', 'no such agent');
    if (row.status === 'revoked') return; // already revoked: idempotent
    await tx.select({ id: agentKeys.id }).from(agentKeys).where(eq(agentKeys.agentId, id)).for('update');
    const at = new Date(clock());
    await tx.update(agents).set({ status: 'revoked', revokedAt: at }).where(eq(agents.id, id));
    // A key revoked earlier keeps its own revocation time.
    await tx
      .update(agentKeys)
      .set({ status: 'revoked', revokedAt: sql`COALESCE(${agentKeys.revokedAt}, ${at.toISOString()}::timestamptz)` })
      .where(eq(agentKeys.agentId, id));
    await recordRevocation(tx, { kind: 'agent', subject: id, reason: reason ?? null, actor, at });
    await appendAudit(tx, { at, actor, action: 'agent.revoke', outcome: 'success', agentId: id, details: { reason: reason ?? null } });
  });
}

/** Revokes one key (by its signing key id) without revoking the agent. */
export async function revokeKey(db: Db, clock: () => number, actor: string, sigKid: string, reason?: string): Promise<void> {
  await db.transaction(async (tx) => {
    const [row] = await tx.select({ agentId: agentKeys.agentId, status: agentKeys.status }).from(agentKeys).where(eq(agentKeys.sigKid, sigKid)).for('update');
    if (!row) throw new ApiError('key_unknown', 'no such key');
    if (row.status === 'revoked') return; // already revoked: idempotent
    const at = new Date(clock());
    await tx.update(agentKeys).set({ status: 'revoked', revokedAt: at }).where(eq(agentKeys.sigKid, sigKid));
    await recordRevocation(tx, { kind: 'key', subject: sigKid, reason: reason ?? null, actor, at });
    await appendAudit(tx, { at, actor, action: 'key.revoke', outcome: 'success', agentId: row.agentId, details: { sigKid, reason: reason ?? null } });
  });
}
