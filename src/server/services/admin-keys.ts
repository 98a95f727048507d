// Admin API keys: created by a `*` admin with a subset of the scopes, shown once, stored hashed.
import { asc, eq } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { adminKeys } from '../../db/schema.js';
import { ApiError } from '../errors.js';
import { generateAdminCredential, type AdminScope } from './admin-credentials.js';
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
    await appendAudit(tx, { at, actor, action: 'admin_key.revoke', outcome: 'success', details: { keyId: id } });
  });
}
