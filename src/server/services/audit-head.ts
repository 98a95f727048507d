// The audit chain's head, signed with the server's identity key (spec/PROTOCOL.md §19): a signed
// object of type `audit-head` with body {"seq","hash","at"}, seq = the number of entries (the head's
// position), hash = b64u(that entry's hash; 32 zero bytes for an empty chain), at = when it was signed.
// The type and the server key id are inside what is signed (§9). Kept outside the database, an
// earlier head detects the newest entries deleted or rewritten with recomputed hashes.
import { desc } from 'drizzle-orm';
import { b64u, fromB64uExact } from '../../protocol/bytes.js';
import type { CryptoBackend } from '../../protocol/crypto/types.js';
import { ProtocolError } from '../../protocol/errors.js';
import { signObject, verifySignedObject, type SignedObject } from '../../protocol/signed.js';
import type { Db } from '../../db/database.js';
import { auditLog } from '../../db/schema.js';
import { ApiError } from '../errors.js';
import type { ServerIdentity } from '../identity.js';
import { GENESIS, type AuditHead } from './audit.js';

export const AUDIT_HEAD_TYPE = 'audit-head';

export type { AuditHead };

export function signAuditHead(crypto: CryptoBackend, identity: ServerIdentity, head: AuditHead, now: number): Promise<SignedObject> {
  return signObject(crypto, identity.signing, AUDIT_HEAD_TYPE, { seq: head.seq, hash: b64u(head.hash), at: new Date(now).toISOString() });
}

/**
 * Checks a head this server signed: a wrong signer, type or signature is `signature_invalid`;
 * anything malformed is `request_invalid`.
 */
export async function verifyAuditHead(
  crypto: CryptoBackend,
  identity: ServerIdentity,
  input: unknown,
): Promise<AuditHead & { at: string }> {
  try {
    const { seq, hash, at } = await verifySignedObject(crypto, identity.signing, AUDIT_HEAD_TYPE, input);
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0 || typeof hash !== 'string' || typeof at !== 'string')
      throw malformed();
    return { seq, hash: fromB64uExact(hash, 32), at };
  } catch (err) {
    if (err instanceof ProtocolError && err.code === 'signature_invalid') throw err;
    throw err instanceof ApiError ? err : malformed();
  }
}

const malformed = () => new ApiError('request_invalid', 'malformed audit head');

/** The current head, read from the newest row (no chain walk: cheap enough to poll). */
export async function currentAuditHead(db: Db): Promise<AuditHead> {
  const [last] = await db.select({ seq: auditLog.seq, hash: auditLog.hash }).from(auditLog).orderBy(desc(auditLog.seq)).limit(1);
  return last ? { seq: last.seq, hash: last.hash } : { seq: 0, hash: GENESIS };
}
