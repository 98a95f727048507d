// Agents as admins see them, and their revocation: effective on the very next request on every
// instance, because ingest reads key and agent status from the database on every message.
import { and, asc, eq, inArray, ne } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { agentKeys, agents, revocations } from '../../db/schema.js';
import { ApiError } from '../errors.js';
import { appendAudit } from './audit.js';

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

export async function listAgents(db: Db): Promise<AgentView[]> {
  const rows = await db.select().from(agents).orderBy(asc(agents.createdAt));
  const keys = rows.length ? await db.select().from(agentKeys).where(inArray(agentKeys.agentId, rows.map((r) => r.id))) : [];
  return rows.map((a) => {
    const mine = keys.filter((k) => k.agentId === a.id);
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
}

export async function revokeAgent(db: Db, now: number, actor: string, id: string, reason?: string): Promise<void> {
  await db.transaction(async (tx) => {
    const [row] = await tx.update(agents).set({ status: 'revoked', revokedAt: new Date(now) }).where(and(eq(agents.id, id), ne(agents.status, 'revoked'))).returning({ id: agents.id });
    if (!row) {
      const [exists] = await tx.select({ id: agents.id }).from(agents).where(eq(agents.id, id));
      if (!exists) throw new ApiError('not_found', 'no such agent');
      return;
    }
    await tx.update(agentKeys).set({ status: 'revoked', revokedAt: new Date(now) }).where(eq(agentKeys.agentId, id));
    await tx.insert(revocations).values({ kind: 'agent', subject: id, reason: reason ?? null, actor }).onConflictDoNothing();
    await appendAudit(tx, { at: new Date(now), actor, action: 'agent.revoke', outcome: 'success', agentId: id, details: { reason: reason ?? null } });
  });
}

/** Revokes one key (by its signing key id) without revoking the agent. */
export async function revokeKey(db: Db, now: number, actor: string, sigKid: string, reason?: string): Promise<void> {
  await db.transaction(async (tx) => {
    const [row] = await tx.update(agentKeys).set({ status: 'revoked', revokedAt: new Date(now) }).where(eq(agentKeys.sigKid, sigKid)).returning({ agentId: agentKeys.agentId });
    if (!row) throw new ApiError('key_unknown', 'no such key');
    await tx.insert(revocations).values({ kind: 'key', subject: sigKid, reason: reason ?? null, actor }).onConflictDoNothing();
    await appendAudit(tx, { at: new Date(now), actor, action: 'key.revoke', outcome: 'success', agentId: row.agentId, details: { sigKid, reason: reason ?? null } });
  });
}
