// POST /v1/renew, the service (spec/PROTOCOL.md §12). An agent replaces its keys before they expire:
//   parse → sender key (one lookup: renewals are rare, nothing cached) → signature → recipient →
//   freshness → status → open (HPKE Auth) → proofs of the new keys → ONE transaction that locks the
//   current key row, re-checks agent and key status, records the message id, registers the new key,
//   marks the current one superseded (accepted until the overlap ends) and audits → signed answer.
// A retry is safe: a renewal repeated for the same new keys (the same envelope again, or a new one
// from the current key during the overlap) gets the same credential back instead of an error.
import { and, eq, sql } from 'drizzle-orm';
import { b64u, fromB64u } from '../../protocol/bytes.js';
import type { ProtocolContext } from '../../protocol/crypto/types.js';
import { issueCredential } from '../../protocol/credential.js';
import {
  checkFreshness,
  DEFAULT_FRESHNESS,
  openEnvelope,
  parseEnvelope,
  verifyEnvelopeSignature,
  type FreshnessPolicy,
  type ParsedEnvelope,
} from '../../protocol/envelope.js';
import { envelopeBinding, signReceipt } from '../../protocol/receipt.js';
import { ProtocolError, type ProtocolErrorCode } from '../../protocol/errors.js';
import { openRenewContent, RENEW_MESSAGE_TYPE, signRenewResponse, type RenewRequest } from '../../protocol/renewal.js';
import type { SignedObject } from '../../protocol/signed.js';
import type { Database, Tx } from '../../db/database.js';
import { agentKeys, agents, seenMessages } from '../../db/schema.js';
import type { ServerIdentity } from '../identity.js';
import type { ServerKeys } from './server-keys.js';
import type { Telemetry } from '../telemetry.js';
import { appendAudit } from './audit.js';
import { senderRefusal } from './sender-rules.js';
import { DEFAULT_CREDENTIAL_TTL_SECONDS } from '../lifetimes.js';
import { uniqueViolation } from '../../db/pg-errors.js';

export interface RenewalPolicy {
  /** How long a superseded key is still accepted, so messages already on their way land. */
  overlapMs: number;
  credentialTtlSeconds: number;
  freshness: FreshnessPolicy;
}

export const DEFAULT_RENEWAL_POLICY: RenewalPolicy = {
  overlapMs: 10 * 60_000,
  credentialTtlSeconds: DEFAULT_CREDENTIAL_TTL_SECONDS,
  freshness: DEFAULT_FRESHNESS,
};

export interface RenewalDeps {
  database: Database;
  identity: ServerIdentity;
  /** Every accepted key set (spec §14): requests are answered with the one they address. */
  keys: ServerKeys;
  ctx: ProtocolContext;
  telemetry: Telemetry;
  policy: RenewalPolicy;
}

/** A renew request's content is four small fields: anything larger is not one. */
const MAX_RENEW_CONTENT = 4096;

interface KeyRow {
  agentId: string;
  sigPub: Uint8Array;
  kxPub: Uint8Array;
  status: string;
  expiresAt: Date;
  supersededUntil: Date | null;
  replacedBy: string | null;
  maxCounter: number;
  agentStatus: string;
  credentialTtlSeconds: number | null;
  role: 'agent' | 'relay';
}

/**
 * Whether a key may renew now: the one sender rule (sender-rules.ts). A superseded key may only
 * repeat the renewal that superseded it (same new key), and only during the overlap; that is
 * decided by the caller.
 */
function renewRefusal(
  row: Pick<KeyRow, 'agentStatus' | 'status' | 'expiresAt' | 'supersededUntil'>,
  now: number,
): ProtocolErrorCode | undefined {
  return senderRefusal({
    agentStatus: row.agentStatus,
    keyStatus: row.status,
    unexpired: row.expiresAt.getTime() > now,
    inOverlap: row.supersededUntil !== null && row.supersededUntil.getTime() > now,
  });
}

async function readKey(db: Database['db'] | Tx, kid: string, forUpdate: boolean): Promise<KeyRow | undefined> {
  const q = db
    .select({
      agentId: agentKeys.agentId,
      sigPub: agentKeys.sigPub,
      kxPub: agentKeys.kxPub,
      status: agentKeys.status,
      expiresAt: agentKeys.expiresAt,
      supersededUntil: agentKeys.supersededUntil,
      replacedBy: agentKeys.replacedBy,
      maxCounter: agentKeys.maxCounter,
      agentStatus: agents.status,
      credentialTtlSeconds: agents.credentialTtlSeconds,
      role: agents.role,
    })
    .from(agentKeys)
    .innerJoin(agents, eq(agents.id, agentKeys.agentId))
    .where(eq(agentKeys.sigKid, kid))
    .limit(1);
  const [row] = forUpdate ? await q.for('update') : await q;
  return row as KeyRow | undefined;
}

/**
 * Renews, or throws why not. Once the envelope's signature has verified with a registered key, a
 * refusal carries a signed receipt, so the agent can believe it (and only then give up a key).
 */
export async function renew(deps: RenewalDeps, input: unknown, source: string | undefined): Promise<SignedObject> {
  const env = parseEnvelope(input);
  if (env.header.typ !== RENEW_MESSAGE_TYPE) throw new ProtocolError('payload_invalid', 'this endpoint takes renew messages');
  const key = await readKey(deps.database.db, env.header.snd, false);
  if (!key) throw new ProtocolError('key_unknown');
  await verifyEnvelopeSignature(deps.ctx, env, key.sigPub);
  // Answered with the key set the envelope is sealed to (spec §14), the current one if none is.
  const addressed = deps.keys.ring.byRecipient(env.header.rcp);
  try {
    if (!addressed) throw new ProtocolError('recipient_mismatch');
    return await renewVerified(deps, env, key, source, addressed);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    deps.telemetry.count('renewals_total', { outcome: err.code });
    const receipt = await signReceipt(deps.ctx, (addressed ?? deps.identity).signing, {
      mid: env.header.mid,
      snd: env.header.snd,
      env: envelopeBinding(env),
      status: 'rejected',
      code: err.code,
      rat: deps.ctx.now(),
    });
    throw new ProtocolError(err.code, err.message, { receipt });
  }
}

async function renewVerified(
  deps: RenewalDeps,
  env: ParsedEnvelope,
  key: KeyRow,
  source: string | undefined,
  identity: ServerIdentity,
): Promise<SignedObject> {
  const { snd, mid } = env.header;
  const midBytes = fromB64u(mid);
  const now = deps.ctx.now();
  checkFreshness(env.header, now, key.maxCounter, deps.policy.freshness);
  const refused = renewRefusal(key, now);
  if (refused) throw new ProtocolError(refused);
  if (env.header.cen !== 'identity' || env.header.cty !== 'application/json')
    throw new ProtocolError('payload_invalid', 'renew content is uncompressed application/json');
  if (env.ct.length > MAX_RENEW_CONTENT) throw new ProtocolError('payload_too_large');
  const content = await openEnvelope(deps.ctx, env, identity.agreement, key.kxPub);
  const next = await openRenewContent(deps.ctx.crypto, content, { snd, mid }, identity.agreement.privateKey);

  const ttl = key.credentialTtlSeconds ?? deps.policy.credentialTtlSeconds;
  const issuedAt = Math.floor(now / 1000);
  const fresh = {
    credential: await issueCredential(identity.signing, identity.fingerprint, {
      agentId: key.agentId,
      role: key.role,
      signingKey: next.signingKey,
      agreementKey: next.agreementKey,
      issuedAt,
      expiresAt: issuedAt + ttl,
      jti: b64u(deps.ctx.random(16)),
    }),
    expiresAt: (issuedAt + ttl) * 1000,
    supersededUntil: now + deps.policy.overlapMs,
  };

  let outcome: { credential: string; expiresAt: number; supersededUntil: number; repeated: boolean };
  try {
    outcome = await deps.database.db.transaction((tx) =>
      commitRenewal(tx, { snd, midBytes, ctr: env.header.ctr, window: deps.policy.freshness.counterWindow, next, now, fresh, source }),
    );
  } catch (err) {
    if (uniqueViolation(err)) throw new ProtocolError('payload_invalid', 'these keys are already registered');
    throw err;
  }
  deps.telemetry.count('renewals_total', { outcome: outcome.repeated ? 'repeated' : 'renewed' });
  return signRenewResponse(deps.ctx.crypto, identity.signing, {
    agentId: key.agentId,
    mid,
    snd,
    sigKid: next.signingKey.kid,
    kxKid: next.agreementKey.kid,
    credential: outcome.credential,
    expiresAt: outcome.expiresAt,
    supersededUntil: outcome.supersededUntil,
    iat: now,
  });
}

interface CommitInput {
  snd: string;
  midBytes: Uint8Array;
  ctr: number;
  window: number;
  next: RenewRequest;
  now: number;
  fresh: { credential: string; expiresAt: number; supersededUntil: number };
  source: string | undefined;
}

async function commitRenewal(
  tx: Tx,
  r: CommitInput,
): Promise<{ credential: string; expiresAt: number; supersededUntil: number; repeated: boolean }> {
  // The row lock orders this renewal against revocations and against a concurrent renewal.
  const key = await readKey(tx, r.snd, true);
  if (!key) throw new ProtocolError('key_unknown');
  const refused = renewRefusal(key, r.now);
  if (refused) throw new ProtocolError(refused);
  if (key.status === 'superseded') {
    // Only the renewal that superseded this key may be repeated; its answer is given again.
    if (key.replacedBy !== r.next.signingKey.kid) throw new ProtocolError('key_expired', 'this key was already renewed to other keys');
    const [done] = await tx
      .select({ credential: agentKeys.credential, expiresAt: agentKeys.expiresAt })
      .from(agentKeys)
      .where(and(eq(agentKeys.sigKid, r.next.signingKey.kid), eq(agentKeys.agentId, key.agentId)))
      .limit(1);
    if (!done?.credential) throw new ProtocolError('key_expired', 'this key was already renewed to other keys');
    return {
      credential: done.credential,
      expiresAt: done.expiresAt.getTime(),
      supersededUntil: key.supersededUntil!.getTime(),
      repeated: true,
    };
  }
  if (r.ctr <= key.maxCounter - r.window) throw new ProtocolError('stale_message', 'counter is below the window');
  const [recorded] = await tx
    .insert(seenMessages)
    .values({ sigKid: r.snd, messageId: r.midBytes, counter: r.ctr, receivedAt: new Date(r.now) })
    .onConflictDoNothing()
    .returning({ sigKid: seenMessages.sigKid });
  if (!recorded) throw new ProtocolError('replay_detected');
  await tx.insert(agentKeys).values({
    agentId: key.agentId,
    sigKid: r.next.signingKey.kid,
    sigPub: r.next.signingKey.publicKey,
    kxKid: r.next.agreementKey.kid,
    kxPub: r.next.agreementKey.publicKey,
    createdAt: new Date(r.now),
    expiresAt: new Date(r.fresh.expiresAt),
    credential: r.fresh.credential,
  });
  await tx
    .update(agentKeys)
    .set({
      status: 'superseded',
      replacedBy: r.next.signingKey.kid,
      supersededAt: new Date(r.now),
      supersededUntil: new Date(r.fresh.supersededUntil),
      maxCounter: sql`GREATEST(${agentKeys.maxCounter}, ${r.ctr})`,
    })
    .where(eq(agentKeys.sigKid, r.snd));
  await tx
    .update(agents)
    .set({ renewRequestedAt: null, lastSeenAt: new Date(r.now) })
    .where(eq(agents.id, key.agentId));
  await appendAudit(tx, {
    actor: 'agent',
    action: 'agent.renew',
    outcome: 'success',
    sourceAddr: r.source ?? null,
    agentId: key.agentId,
    details: {
      oldSigKid: r.snd,
      sigKid: r.next.signingKey.kid,
      kxKid: r.next.agreementKey.kid,
      supersededUntil: new Date(r.fresh.supersededUntil).toISOString(),
    },
    at: new Date(r.now),
  });
  return { ...r.fresh, repeated: false };
}
