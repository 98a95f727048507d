// Admin API keys: created by a `*` admin with a subset of the scopes, shown once, stored hashed.
import { and, asc, eq, isNull } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { adminKeys, consoleSessions } from '../../db/schema.js';
import { ApiError } from '../errors.js';
import { adminSecretMatches, generateAdminCredential, parseAdminCredential, type AdminScope } from './admin-credentials.js';
import { appendAudit } from './audit.js';

export async function createAdminKey(
  db: Db,
  ctx: { random: (n: number) => Uint8Array; now: () => number },
  actor: string,
  name: string,
  scopes: Exclude<AdminScope, '*'>[],
) {
  const made = generateAdminCredential(ctx.random);
  await db.transaction(async (tx) => {
    await tx.insert(adminKeys).values({ id: made.id, name, secretHash: made.secretHash, scopes, createdBy: actor });
    await appendAudit(tx, {
      at: new Date(ctx.now()),
      actor,
      action: 'admin_key.create',
      outcome: 'success',
      details: { keyId: made.id, name, scopes },
    });
  });
  return { id: made.id, name, scopes, credential: made.credential };
}

export async function listAdminKeys(db: Db) {
  const rows = await db.select().from(adminKeys).orderBy(asc(adminKeys.createdAt));
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    scopes: r.scopes,
    createdAt: r.createdAt.toISOString(),
    createdBy: r.createdBy,
    revokedAt: r.revokedAt?.toISOString() ?? null,
  }));
}

/** Locks the row, then reads the clock; a key already revoked keeps its first revocation time. */
export async function revokeAdminKey(db: Db, clock: () => number, actor: string, id: string): Promise<void> {
  await db.transaction(async (tx) => {
    const [row] = await tx.select({ revokedAt: adminKeys.revokedAt }).from(adminKeys).where(eq(adminKeys.id, id)).for('update');
    if (!row) throw new ApiError('not_found', 'no such admin key');
    if (row.revokedAt) return; // already revoked: idempotent
    const at = new Date(clock());
    await tx.update(adminKeys).set({ revokedAt: at }).where(eq(adminKeys.id, id));
    // Its console sessions end with it (the session check also reads the key, so this is belt and braces).
    await tx
      .update(consoleSessions)
      .set({ revokedAt: at })
      .where(and(eq(consoleSessions.adminKeyId, id), isNull(consoleSessions.revokedAt)));
    await appendAudit(tx, { at, actor, action: 'admin_key.revoke', outcome: 'success', details: { keyId: id } });
  });
}

/**
 * The admin key an `lka.…` credential names, when it is valid: the one check the admin API's bearer
 * middleware and the console's sign-in share. Unknown id, wrong secret and revoked key all give
 * undefined (nothing to enumerate); the secret is compared in constant time.
 */
export async function authenticateAdmin(db: Db, value: string): Promise<{ id: string; name: string; scopes: string[] } | undefined> {
  const credential = parseAdminCredential(value);
  if (!credential) return undefined;
  const [row] = await db.select().from(adminKeys).where(eq(adminKeys.id, credential.id)).limit(1);
  if (!row || row.revokedAt !== null || !adminSecretMatches(credential.secret, row.secretHash)) return undefined;
  return { id: row.id, name: row.name, scopes: row.scopes };
}
