// The bootstrap admin credential: created on first start, written once to <data-dir>/admin.token
// (0600) and never logged. Instances sharing one database share one bootstrap key: a later instance
// registers its existing file, or finds the key already made by another instance and writes nothing.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { and, eq, isNull, sql } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { adminKeys } from '../db/schema.js';
import { appendAudit } from '../server/services/audit.js';
import {
  adminSecretMatches,
  generateAdminCredential,
  hashAdminSecret,
  parseAdminCredential,
} from '../server/services/admin-credentials.js';
import { dataDirLayout } from './config.js';
import { writeSecretFile } from '../node/fs-secure.js';

export type BootstrapOutcome = 'created' | 'existing' | 'registered' | 'held-by-another-instance';

const BOOTSTRAP_LOCK = 0x6c6b_6164_6d69_6e00n; // "lkadmin"

export async function ensureBootstrapAdmin(database: Database, dataDir: string): Promise<BootstrapOutcome> {
  const file = dataDirLayout(dataDir).adminToken;
  const fromFile = await readFile(file, 'utf8').then(parseAdminCredential, () => undefined);
  return database.db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${BOOTSTRAP_LOCK})`);
    const rows = await tx.select().from(adminKeys).where(eq(adminKeys.name, 'bootstrap'));
    const live = rows.filter((r) => r.revokedAt === null);
    if (fromFile) {
      const mine = rows.find((r) => r.id === fromFile.id);
      if (mine && adminSecretMatches(fromFile.secret, mine.secretHash)) return 'existing';
      if (live.length === 0 && !mine) {
        await tx
          .insert(adminKeys)
          .values({ id: fromFile.id, name: 'bootstrap', secretHash: hashAdminSecret(fromFile.secret), scopes: ['*'] });
        return 'registered';
      }
      return 'held-by-another-instance';
    }
    if (live.length > 0) return 'held-by-another-instance';
    const made = generateAdminCredential((n) => new Uint8Array(randomBytes(n)));
    await tx.insert(adminKeys).values({ id: made.id, name: 'bootstrap', secretHash: made.secretHash, scopes: ['*'] });
    await writeSecretFile(file, `${made.credential}\n`);
    return 'created';
  });
}

/**
 * Break-glass recovery when the bootstrap credential is lost: whoever can reach the database directly
 * (which already grants everything) mints a new full-scope bootstrap key. With `revokeOthers`, every
 * earlier live bootstrap key is revoked in the same transaction. Audited; the secret is returned once.
 */
export async function recoverBootstrapAdmin(
  database: Database,
  opts: { revokeOthers: boolean; actor: string },
): Promise<{ id: string; credential: string; revoked: string[] }> {
  return database.db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${BOOTSTRAP_LOCK})`);
    const at = new Date();
    const revoked: string[] = [];
    if (opts.revokeOthers) {
      const rows = await tx
        .update(adminKeys)
        .set({ revokedAt: at })
        .where(and(eq(adminKeys.name, 'bootstrap'), isNull(adminKeys.revokedAt)))
        .returning({ id: adminKeys.id });
      revoked.push(...rows.map((r) => r.id));
    }
    const made = generateAdminCredential((n) => new Uint8Array(randomBytes(n)));
    await tx
      .insert(adminKeys)
      .values({ id: made.id, name: 'bootstrap', secretHash: made.secretHash, scopes: ['*'], createdBy: opts.actor });
    await appendAudit(tx, { at, actor: opts.actor, action: 'admin_key.recover', outcome: 'success', details: { keyId: made.id, revoked } });
    return { id: made.id, credential: made.credential, revoked };
  });
}
