// Agents as admins see them, and their revocation: effective on the very next request on every
// instance, because ingest reads key and agent status from the database on every message.
import { and, eq, inArray, ne } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { agentKeys, agents, revocations } from '../../db/schema.js';
import { ApiError } from '../errors.js';
import { appendAudit } from './audit.js';
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

export async function revokeAgent(db: Db, actor: string, id: string, reason?: string): Promise<void> {
  await db.transaction(async (tx) => {
    const [row] = await tx.update(agents).set({ status: 'revoked', revokedAt: new Date() }).where(and(eq(agents.id, id), ne(agents.status, 'revoked'))).returning({ id: agents.id });
    if (!row) {
      const [exists] = await tx.select({ id: agents.id }).from(agents).where(eq(agents.id, id));
      if (!exists) throw new ApiError('not_found', 'no such agent');
      return;
    }
    await tx.update(agentKeys).set({ status: 'revoked', revokedAt: new Date() }).where(eq(agentKeys.agentId, id));
    await tx.insert(revocations).values({ kind: 'agent', subject: id, reason: reason ?? null, actor }).onConflictDoNothing();
    await appendAudit(tx, { actor, action: 'agent.revoke', outcome: 'success', agentId: id, details: { reason: reason ?? null } });
  });
}

/** Revokes one key (by its signing key id) without revoking the agent. */
export async function revokeKey(db: Db, actor: string, sigKid: string, reason?: string): Promise<void> {
  await db.transaction(async (tx) => {
    const [row] = await tx.update(agentKeys).set({ status: 'revoked', revokedAt: new Date() }).where(eq(agentKeys.sigKid, sigKid)).returning({ agentId: agentKeys.agentId });
    if (!row) throw new ApiError('key_unknown', 'no such key', 404);
    await tx.insert(revocations).values({ kind: 'key', subject: sigKid, reason: reason ?? null, actor }).onConflictDoNothing();
    await appendAudit(tx, { actor, action: 'key.revoke', outcome: 'success', agentId: row.agentId, details: { sigKid, reason: reason ?? null } });
  });
}
