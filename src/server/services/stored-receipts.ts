// GET /v1/receipts/{snd}/{mid} (spec §11, §17): the server's signed receipt for a message it stored,
// again, for a relay to hand to an agent later. It is made from the replay record alone (the one row
// per accepted message, keyed by sender kid and message id), which keeps the accepted copy's envelope
// binding (`env`, §10) and its received-at: the agent checks `env` against the envelope it sent, so a
// relay cannot pass a receipt for another envelope off as this one, nor forge one.
import { b64u, fromB64uExact } from '../../protocol/bytes.js';
import type { ProtocolContext } from '../../protocol/crypto/types.js';
import { ProtocolError } from '../../protocol/errors.js';
import { signReceipt } from '../../protocol/receipt.js';
import type { SignedObject } from '../../protocol/signed.js';
import type { Database } from '../../db/database.js';
import { LatchkeyError } from '../errors.js';
import type { ServerIdentity } from '../identity.js';
import type { RateLimiter } from './rate-limiter.js';

const KID = /^[A-Za-z0-9_-]{22}$/;

export const STORED_RECEIPT_SQL = `
  SELECT (extract(epoch FROM received_at) * 1000)::float8 AS rat, env
  FROM seen_messages WHERE sig_kid = $1::text AND message_id = decode($2::text, 'hex')`;

export interface StoredReceiptDeps {
  database: Database;
  identity: ServerIdentity;
  ctx: ProtocolContext;
  limits: { receiptLookups: RateLimiter };
}

/**
 * The accepted receipt of (snd, mid), signed now by the current key set. `not_found` when no such
 * message was accepted (or its replay record has been pruned); `rate_limited` past the source's budget.
 */
export async function storedReceipt(deps: StoredReceiptDeps, snd: string, mid: string, source: string): Promise<SignedObject> {
  const budget = deps.limits.receiptLookups.take(source);
  if (!budget.ok)
    throw new ProtocolError('rate_limited', 'too many receipt lookups from this address', { retryAfterSeconds: budget.retryAfterSeconds });
  if (!KID.test(snd)) throw new LatchkeyError('request_invalid', 'snd must be a key id');
  let midBytes: Uint8Array;
  try {
    midBytes = fromB64uExact(mid, 16);
  } catch {
    throw new LatchkeyError('request_invalid', 'mid must be b64u of 16 bytes');
  }
  const rows = await deps.database.prepared(STORED_RECEIPT_SQL)([snd, hex(midBytes)]);
  const row = rows[0];
  if (!row || !row.env) throw new LatchkeyError('not_found', 'no accepted message with this sender and id');
  const env = new Uint8Array(row.env as Uint8Array);
  return signReceipt(deps.ctx, deps.identity.signing, { mid, snd, env: b64u(env), status: 'accepted', rat: Math.round(Number(row.rat)) });
}

function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += (x < 16 ? '0' : '') + x.toString(16);
  return s;
}
