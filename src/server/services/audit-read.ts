// Reading the audit log page by page (hashes shown so a reader can anchor the chain elsewhere).
import { asc, gt } from 'drizzle-orm';
import { b64u } from '../../protocol/bytes.js';
import type { Db } from '../../db/database.js';
import { auditLog } from '../../db/schema.js';

export async function listAudit(db: Db, after: number, limit: number) {
  const rows = await db
    .select()
    .from(auditLog)
    .where(gt(auditLog.seq, after))
    .orderBy(asc(auditLog.seq))
    .limit(limit + 1);
  const page = rows.slice(0, limit);
  return {
    entries: page.map((r) => ({
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
    })),
    next: rows.length > limit ? page[page.length - 1]!.seq : null,
  };
}
