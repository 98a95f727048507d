// Admin console sessions: opened by signing in with an admin API key, kept server-side (only a hash
// of the session id is stored), bound to that key, ended by sign-out, by their absolute or idle
// limit, or by the key's revocation (checked on every request, and recorded by revokeAdminKey).
import { sha256 } from '@noble/hashes/sha2.js';
import { and, eq, gt, isNull } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { adminKeys, consoleSessions } from '../../db/schema.js';
import { b64u, concatBytes, constantTimeEqual, fromB64u, utf8 } from '../../protocol/bytes.js';

export interface ConsolePolicy {
  /** A session ends this long after sign-in, whatever happens. */
  absoluteSeconds: number;
  /** A session ends after this long without a request. */
  idleSeconds: number;
  /** Failed sign-ins allowed per source address at once, and refilled per second. */
  signInBurst: number;
  signInPerSecond: number;
  /** Refused sign-ins are audited once per source and window, with a count. */
  refusalAuditWindowMs: number;
}

export const DEFAULT_CONSOLE_POLICY: ConsolePolicy = {
  absoluteSeconds: 8 * 3600,
  idleSeconds: 3600,
  signInBurst: 5,
  signInPerSecond: 1 / 12,
  refusalAuditWindowMs: 60_000,
};

const SESSION_LABEL = utf8('latchkey/1 console-session\0');

/** What is stored for a session id (never the id itself). */
export function sessionIdHash(id: Uint8Array): Uint8Array {
  return sha256(concatBytes(SESSION_LABEL, id));
}

export interface ConsoleSession {
  idHash: Uint8Array;
  csrfSecret: Uint8Array;
  admin: { id: string; name: string; scopes: string[] };
  expiresAt: Date;
}

/** Opens a session for an authenticated admin key; returns the cookie value (shown to that browser only). */
export async function openSession(
  db: Db,
  ctx: { random: (n: number) => Uint8Array; now: () => number },
  policy: ConsolePolicy,
  adminKeyId: string,
  sourceAddr: string | undefined,
): Promise<{ cookie: string; expiresAt: Date }> {
  const id = ctx.random(32);
  const now = new Date(ctx.now());
  const expiresAt = new Date(now.getTime() + policy.absoluteSeconds * 1000);
  await db.insert(consoleSessions).values({
    idHash: sessionIdHash(id),
    adminKeyId,
    csrfSecret: ctx.random(32),
    createdAt: now,
    lastUsedAt: now,
    expiresAt,
    sourceAddr: sourceAddr ?? null,
  });
  return { cookie: b64u(id), expiresAt };
}

/**
 * The live session a cookie names, with its admin key as it is now; undefined when the cookie is
 * malformed or names no session, or the session is signed out, past a limit, or its key revoked.
 * A live session's idle clock restarts.
 */
export async function findSession(db: Db, now: number, policy: ConsolePolicy, cookie: string): Promise<ConsoleSession | undefined> {
  let id: Uint8Array;
  try {
    id = fromB64u(cookie);
  } catch {
    return undefined;
  }
  if (id.length !== 32) return undefined;
  const at = new Date(now);
  const idleSince = new Date(now - policy.idleSeconds * 1000);
  const [row] = await db
    .select({ session: consoleSessions, admin: { id: adminKeys.id, name: adminKeys.name, scopes: adminKeys.scopes } })
    .from(consoleSessions)
    .innerJoin(adminKeys, eq(adminKeys.id, consoleSessions.adminKeyId))
    .where(
      and(
        eq(consoleSessions.idHash, sessionIdHash(id)),
        isNull(consoleSessions.revokedAt),
        isNull(adminKeys.revokedAt),
        gt(consoleSessions.expiresAt, at),
        gt(consoleSessions.lastUsedAt, idleSince),
      ),
    )
    .limit(1);
  if (!row) return undefined;
  await db.update(consoleSessions).set({ lastUsedAt: at }).where(eq(consoleSessions.idHash, row.session.idHash));
  return { idHash: row.session.idHash, csrfSecret: row.session.csrfSecret, admin: row.admin, expiresAt: row.session.expiresAt };
}

/** Sign-out: the session can never be used again. */
export async function closeSession(db: Db, now: number, idHash: Uint8Array): Promise<void> {
  await db
    .update(consoleSessions)
    .set({ revokedAt: new Date(now) })
    .where(and(eq(consoleSessions.idHash, idHash), isNull(consoleSessions.revokedAt)));
}

/** The synchroniser token a session's forms carry. */
export const csrfToken = (session: ConsoleSession): string => b64u(session.csrfSecret);

/** Does a submitted form token match the session's (constant time)? */
export function csrfMatches(session: ConsoleSession, submitted: unknown): boolean {
  if (typeof submitted !== 'string' || submitted.length > 64) return false;
  try {
    return constantTimeEqual(fromB64u(submitted), session.csrfSecret);
  } catch {
    return false;
  }
}
