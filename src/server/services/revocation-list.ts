// Revocations as the signed, versioned list of spec §13. Every revocation is recorded through
// recordRevocation, which serialises writers on a transaction-scoped advisory lock: row ids are then
// handed out in commit order, so a consumer that holds version N and asks for `since=N` can never
// miss a revocation that committed later with a smaller id.
import { asc, gt, sql } from 'drizzle-orm';
import type { CryptoBackend } from '../../protocol/crypto/types.js';
import { signRevocationList, type RevocationKind } from '../../protocol/revocation-list.js';
import type { SignedObject } from '../../protocol/signed.js';
import type { Db, Tx } from '../../db/database.js';
import { revocations } from '../../db/schema.js';

const REVOCATION_LOCK = 0x6c6b_7265_766f_6b65n; // "lkrevoke"

export async function recordRevocation(
  tx: Tx,
  r: { kind: RevocationKind; subject: string; reason: string | null; actor: string; at: Date },
): Promise<void> {
  await tx.execute(sql`SELECT pg_advisory_xact_lock(${REVOCATION_LOCK})`);
  await tx.insert(revocations).values(r).onConflictDoNothing();
}

/** The highest version; 0 when nothing was ever revoked. */
export async function revocationVersion(db: Db): Promise<number> {
  const [row] = await db.select({ v: sql<string | null>`max(${revocations.id})` }).from(revocations);
  return Number(row?.v ?? 0);
}

/** The list of entries after `since` (0: all), signed with the server key. */
export async function signedRevocationList(
  db: Db,
  c: CryptoBackend,
  server: { privateKey: Uint8Array; kid: string },
  since: number,
  now: number,
): Promise<{ version: number; list: SignedObject }> {
  // One snapshot for the version and the entries, so the list is never ahead of its entries.
  const rows = await db.transaction(async (tx) =>
    tx
      .select({ id: revocations.id, kind: revocations.kind, subject: revocations.subject, at: revocations.at })
      .from(revocations)
      .where(gt(revocations.id, since))
      .orderBy(asc(revocations.id)),
  );
  const version = rows.length ? rows[rows.length - 1]!.id : Math.min(since, await revocationVersion(db));
  const list = await signRevocationList(c, server, {
    version,
    since: Math.min(since, version),
    issuedAt: now,
    entries: rows.map((r) => ({ seq: r.id, kind: r.kind, subject: r.subject, at: r.at.getTime() })),
  });
  return { version, list };
}
