// POST /v1/enroll, the service (spec/PROTOCOL.md §6.3). Order:
//   reserve the source's failure budget → parse → open + proofs → iat window → token known and
//   secret (constant time) → [secret proven] reserve the token's budget for proven failures →
//   token state, name rules → ONE statement (its own transaction): consume a use atomically, then
//   create agent, keys, token use and audit (or, for a taken name, spend the use and audit that).
// Two round trips to the database per enrollment (the token lookup, that statement).
// The use is consumed by a conditional UPDATE on the one "is this token usable" rule (tokens.ts), so
// N concurrent enrollments with a one-use token give exactly one success under any interleaving.
// Budgets are reserved before anything is awaited and refunded when the attempt was not a guess, so
// concurrent guesses cannot overspend them. Failures are audited in a transaction of their own;
// refused attempts are audited coalesced (one row per source and window, with a count);
// infrastructure faults are 503 `unavailable`, refunded and not blamed on the client.
import { eq, sql } from 'drizzle-orm';
import { b64u } from '../../protocol/bytes.js';
import type { ProtocolContext } from '../../protocol/crypto/types.js';
import { issueCredential, type Role } from '../../protocol/credential.js';
import { openEnrollRequest, parseEnrollRequest, signEnrollResponse } from '../../protocol/enrollment.js';
import { CryptoError, ProtocolError, type ProtocolErrorCode } from '../../protocol/errors.js';
import type { SignedObject } from '../../protocol/signed.js';
import { tokenSecretMatches } from '../../protocol/token.js';
import { rowsOf, type Database, type Db } from '../../db/database.js';
import { uniqueViolation } from '../../db/pg-errors.js';
import { auditHead, enrollmentTokens } from '../../db/schema.js';
import { ApiError } from '../errors.js';
import type { ServerIdentity } from '../identity.js';
import type { ServerKeys } from './server-keys.js';
import type { Logger } from '../logger.js';
import type { Telemetry } from '../telemetry.js';
import { advanceAuditHead, appendAuditAlone, AUDIT_COLUMNS, auditEntrySql, noteRateLimited } from './audit.js';
import { cidrContains, parseCidr } from './cidr.js';
import { globMatches, isValidAgentName } from './name-rules.js';
import { createRateLimiter, createRefusalCoalescer, type RateLimiter, type RefusalCoalescer } from './rate-limiter.js';
import { tokenState, tokenStateSql } from './tokens.js';
import { DEFAULT_CREDENTIAL_TTL_SECONDS } from '../lifetimes.js';

/**
 * The request's `iat` must lie within this much of the server's clock, either way (spec §6.3):
 * a request captured on the wire cannot be presented again later, and a client clock that far off
 * is told so (`stale_message`).
 */
export const ENROLL_IAT_WINDOW_MS = 10 * 60 * 1000;

/** Seconds a client is told to wait after an infrastructure fault (503 `unavailable`). */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

export interface EnrollmentDeps {
  database: Database;
  identity: ServerIdentity;
  /** Every accepted key set (spec §14): requests are answered with the one they address. */
  keys: ServerKeys;
  ctx: ProtocolContext;
  logger: Logger;
  telemetry: Telemetry;
  limiter: EnrollmentLimiter;
  credentialTtlSeconds?: number;
}

/** Enrollment budgets (spec §6.3); per instance, in memory. */
export interface EnrollmentPolicy {
  /** Failures before the secret is proven (malformed, undecryptable, stale, wrong proofs, unknown), per source address. */
  sourceBurst: number;
  sourcePerSecond: number;
  /** Wrong secrets (`token_unknown`), per token id; never consulted when the secret is right. */
  tokenBurst: number;
  tokenPerSecond: number;
  /** Failures after the secret is proven (used, expired, revoked, constraints, names), per token id. */
  provenBurst: number;
  provenPerSecond: number;
  /** Refused (rate-limited) attempts are audited as one row per source and window of this length. */
  refusalAuditWindowMs: number;
}

// 10 failures at once, then one every 6 s: a token secret cannot be guessed and a typo'ing admin is
// not locked out for long. Proven failures get a larger burst: 32 agents racing for one token (one
// NAT address) get token_used, and a leaked used token still cannot write audit rows at will.
export const DEFAULT_ENROLLMENT_POLICY: EnrollmentPolicy = {
  sourceBurst: 10,
  sourcePerSecond: 1 / 6,
  tokenBurst: 10,
  tokenPerSecond: 1 / 6,
  provenBurst: 64,
  provenPerSecond: 1 / 6,
  refusalAuditWindowMs: 60_000,
};

export interface EnrollmentLimiter {
  bySource: RateLimiter;
  byToken: RateLimiter;
  byProvenToken: RateLimiter;
  refusals: RefusalCoalescer;
}

export function createEnrollmentLimiter(now: () => number, overrides: Partial<EnrollmentPolicy> = {}): EnrollmentLimiter {
  const p = { ...DEFAULT_ENROLLMENT_POLICY, ...overrides };
  const clock = { now };
  return {
    bySource: createRateLimiter({ capacity: p.sourceBurst, refillPerSecond: p.sourcePerSecond, ...clock }),
    byToken: createRateLimiter({ capacity: p.tokenBurst, refillPerSecond: p.tokenPerSecond, ...clock }),
    byProvenToken: createRateLimiter({ capacity: p.provenBurst, refillPerSecond: p.provenPerSecond, ...clock }),
    refusals: createRefusalCoalescer({ windowMs: p.refusalAuditWindowMs, ...clock }),
  };
}

export class RateLimitedError extends ProtocolError {
  constructor(retryAfterSeconds: number) {
    super('rate_limited', 'too many failed enrollment attempts; retry later', { retryAfterSeconds });
  }
}

/** Our own 4xx answers. Anything else (a driver error, a deadline, a bug) is the server's fault. */
function isClientError(err: unknown): err is ProtocolError | ApiError {
  return err instanceof ProtocolError || (err instanceof ApiError && err.status < 500);
}

/** Failures already audited inside their own transaction (a taken name spends the use there). */
const audited = new WeakSet<Error>();

type TokenRow = typeof enrollmentTokens.$inferSelect;

export async function enroll(deps: EnrollmentDeps, body: unknown, sourceAddr: string | undefined): Promise<SignedObject> {
  const source = sourceAddr ?? 'unknown';
  const { limiter } = deps;
  const seat = await limiter.bySource.reserve(source);
  if (!seat.ok) throw refuse(deps, source, seat.retryAfterSeconds);

  let tokenId: string | undefined;
  let proven = false; // the caller has shown the token's secret
  let charge = false; // keep the source's reservation: this attempt could have been a guess
  try {
    const wire = parseEnrollRequest(body);
    tokenId = wire.tid;
    // A primitive's refusal of crafted input is the client's failure (charged), never a 503.
    // Answered with the key set it is sealed to (spec §14): a token issued before a rotation names
    // the previous set, and its agent can verify only that set's signatures.
    const addressed = deps.keys.ring.byRecipient(wire.rcp);
    if (!addressed) throw new ProtocolError('recipient_mismatch');
    const request = await openEnrollRequest(deps.ctx, wire, addressed).catch((err: unknown) => {
      throw err instanceof CryptoError ? new ProtocolError('decrypt_failed') : err;
    });
    if (Math.abs(request.iat - deps.ctx.now()) > ENROLL_IAT_WINDOW_MS)
      throw new ProtocolError('stale_message', 'iat is outside the enrollment window');
    const token = await findToken(deps, request.tokenId, request.secret);
    proven = true;
    seat.settle(false); // not a guess: give the source's unit back now, not after the transaction
    const tokenSeat = await limiter.byProvenToken.reserve(token.id);
    if (!tokenSeat.ok) throw refuse(deps, source, tokenSeat.retryAfterSeconds);
    let failed = true;
    try {
      const result = await admit(deps, token, request, source, addressed);
      failed = false;
      deps.telemetry.count('enrollments_total', { outcome: 'success' });
      deps.logger.info({ agentId: result.agentId, tokenId, role: result.role, sourceAddr: source }, 'agent enrolled');
      return result.response;
    } catch (err) {
      failed = isClientError(err);
      throw err;
    } finally {
      tokenSeat.settle(failed);
    }
  } catch (err) {
    if (err instanceof RateLimitedError) throw err;
    if (!isClientError(err)) {
      deps.telemetry.count('enrollments_total', { outcome: 'unavailable' });
      deps.logger.error({ err: describe(err), sourceAddr: source }, 'enrollment failed on an infrastructure fault');
      throw new ApiError('unavailable', 'the service is unavailable; retry later', { retryAfterSeconds: UNAVAILABLE_RETRY_AFTER_SECONDS });
    }
    const code = err.code;
    if (!proven) {
      charge = true;
      // Wrong secrets also spend the token id's budget; a right secret never meets it (findToken
      // compares first), so an id alone, which travels in clear, cannot lock its holder out.
      if (code === 'token_unknown' && tokenId) {
        const v = limiter.byToken.take(tokenId);
        if (!v.ok) throw refuse(deps, source, v.retryAfterSeconds);
      }
    }
    deps.telemetry.count('enrollments_total', { outcome: code });
    if (!audited.has(err)) {
      await appendAuditAlone(deps.database.db, {
        at: new Date(deps.ctx.now()),
        actor: 'agent',
        action: 'agent.enroll',
        outcome: 'failure',
        code,
        sourceAddr: source,
        tokenId: tokenId ?? null,
      }).catch((auditErr: unknown) => deps.logger.error({ err: String(auditErr) }, 'audit append failed'));
    }
    throw err;
  } finally {
    seat.settle(charge);
  }
}

/** A refused attempt: counted into the source's coalesced audit row, answered 429. */
function refuse(deps: EnrollmentDeps, source: string, retryAfterSeconds: number): RateLimitedError {
  deps.telemetry.count('enrollments_total', { outcome: 'rate_limited' });
  noteRateLimited(deps, deps.limiter.refusals, { actor: 'agent', action: 'agent.enroll', sourceAddr: source });
  return new RateLimitedError(retryAfterSeconds);
}

/** Name and message for the server log only; never sent to a client. */
function describe(err: unknown): object {
  return err instanceof Error ? { name: err.name, message: err.message } : { value: String(err) };
}

/** The token, if it exists and the secret matches (constant time); else token_unknown, either way. */
async function findToken(deps: EnrollmentDeps, id: string, secret: Uint8Array): Promise<TokenRow> {
  const [token] = await deps.database.db.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, id)).limit(1);
  // A wrong secret for a known id reads exactly like an unknown id: nothing to probe.
  if (!token || !tokenSecretMatches(id, secret, token.secretHash)) throw new ProtocolError('token_unknown');
  return token;
}

const STATE_CODE: Record<Exclude<ReturnType<typeof tokenState>, 'active'>, ProtocolErrorCode> = {
  revoked: 'token_revoked',
  used: 'token_used',
  expired: 'token_expired',
};

async function admit(
  deps: EnrollmentDeps,
  token: TokenRow,
  request: Awaited<ReturnType<typeof openEnrollRequest>>,
  source: string,
  identity: ServerIdentity,
): Promise<{ agentId: string; role: Role; response: SignedObject }> {
  const { db } = deps.database;
  const now = deps.ctx.now();
  const state = tokenState(token, now);
  if (state !== 'active') throw new ProtocolError(STATE_CODE[state]);

  const name = request.name ?? `agent-${b64u(deps.ctx.random(6)).replace(/[^A-Za-z0-9]/g, 'x')}`;
  if (!isValidAgentName(name)) throw new ProtocolError('name_invalid', 'names use letters, digits, - _ . and at most 128 bytes');
  if (token.cidr) {
    const cidr = parseCidr(token.cidr);
    if (!cidr || !cidrContains(cidr, source))
      throw new ProtocolError('token_constraint_failed', 'source address not allowed by this token');
  }
  if (token.namePattern && !globMatches(token.namePattern, name)) {
    throw new ProtocolError('token_constraint_failed', 'name not allowed by this token');
  }

  const agentId = randomUuid(deps.ctx.random);
  // The token's lifetime, else the server's; kept on the agent, which its renewals use.
  const ttl = token.credentialTtlSeconds ?? deps.credentialTtlSeconds ?? DEFAULT_CREDENTIAL_TTL_SECONDS;
  const issuedAt = Math.floor(now / 1000);
  const expiresAtSec = issuedAt + ttl;
  const entry = { at: new Date(now), actor: 'agent', action: 'agent.enroll', sourceAddr: source, tokenId: token.id } as const;
  const enrolledEntry = auditEntrySql({
    ...entry,
    outcome: 'success',
    agentId,
    details: {
      name,
      role: token.role,
      sigKid: request.signingKey.kid,
      kxKid: request.agreementKey.kid,
      ...(identity === deps.keys.ring.current ? {} : { serverKey: identity.fingerprint }),
    },
  });
  // A taken name spends the use (with its audit entry): a token cannot be used to probe which agent
  // names exist without being consumed.
  const takenEntry = auditEntrySql({ ...entry, outcome: 'failure', code: 'name_taken', details: { useSpent: true } });
  const pick = (i: number) => sql`CASE WHEN outcome.enrolled THEN ${enrolledEntry.columns[i]} ELSE ${takenEntry.columns[i]} END`;
  let outcome: 'enrolled' | 'name_taken';
  try {
    // ONE statement, its own transaction: consume a use (the conditional UPDATE waits for the token's
    // row and re-checks the rule on its newest version), create the agent unless the name is taken,
    // its keys and the token use, and append the audit entry of whichever happened. No row is held
    // across a round trip to this process, so concurrent enrollments serialise only on the
    // database's own work (the token row, then the audit head, each until this statement commits).
    const [r] = rowsOf(
      await db.execute(sql`WITH consumed AS (
          UPDATE enrollment_tokens SET uses_left = uses_left - 1
          WHERE id = ${token.id} AND ${tokenStateSql(now)} = 'active' AND EXISTS (SELECT 1 FROM audit_head WHERE id = 1)
          RETURNING id),
        agent AS (
          INSERT INTO agents (id, name, role, labels, token_id, status, credential_ttl_seconds)
          SELECT ${agentId}, ${name}, ${token.role}, ${JSON.stringify(token.labels)}::jsonb, consumed.id, 'active', ${token.credentialTtlSeconds}::integer
          FROM consumed
          ON CONFLICT (name) DO NOTHING
          RETURNING id),
        keys AS (
          INSERT INTO agent_keys (agent_id, sig_kid, sig_pub, kx_kid, kx_pub, created_at, expires_at)
          SELECT agent.id, ${request.signingKey.kid}, ${request.signingKey.publicKey}::bytea, ${request.agreementKey.kid},
            ${request.agreementKey.publicKey}::bytea, ${new Date(now).toISOString()}::timestamptz, ${new Date(expiresAtSec * 1000).toISOString()}::timestamptz
          FROM agent
          RETURNING 1),
        used AS (
          INSERT INTO token_uses (token_id, agent_id, source_addr) SELECT ${token.id}, agent.id, ${source} FROM agent RETURNING 1),
        outcome AS (
          SELECT agent.id IS NOT NULL AS enrolled, (SELECT count(*) FROM keys) + (SELECT count(*) FROM used) AS written
          FROM consumed LEFT JOIN agent ON true),
        head AS (${advanceAuditHead(sql`CASE WHEN outcome.enrolled THEN ${enrolledEntry.tail} ELSE ${takenEntry.tail} END`, sql`outcome`)}),
        appended AS (
          INSERT INTO audit_log (${AUDIT_COLUMNS})
          SELECT head.seq, ${sql.join(
            enrolledEntry.columns.map((_, i) => pick(i)),
            sql`, `,
          )}, head.prev_hash, head.hash
          FROM head, outcome
          RETURNING 1)
        SELECT (SELECT count(*) FROM consumed)::int AS consumed, coalesce((SELECT bool_or(enrolled) FROM outcome), false) AS enrolled,
          (SELECT count(*) FROM appended)::int AS audited`),
    );
    if (!r || Number(r.consumed) !== 1) throw await whyNotConsumed(db, token.id, now);
    // Cannot happen while audit_head has its row (checked by the statement); never silent.
    if (Number(r.audited) !== 1) throw new Error('enrollment committed without its audit entry');
    outcome = r.enrolled === true ? 'enrolled' : 'name_taken';
  } catch (err) {
    const constraint = uniqueViolation(err);
    // Keys another agent already has: rolled back, use kept.
    if (constraint?.includes('name')) throw new ProtocolError('name_taken', 'an agent with this name exists');
    if (constraint) throw new ProtocolError('payload_invalid', 'these keys are already registered');
    throw err;
  }
  if (outcome === 'name_taken') {
    const err = new ProtocolError('name_taken', 'an agent with this name exists; the token use is spent');
    audited.add(err);
    throw err;
  }

  const credential = await issueCredential(identity.signing, identity.fingerprint, {
    agentId,
    role: token.role,
    signingKey: request.signingKey,
    agreementKey: request.agreementKey,
    issuedAt,
    expiresAt: expiresAtSec,
    jti: b64u(deps.ctx.random(16)),
  });
  const response = await signEnrollResponse(deps.ctx.crypto, identity.signing, {
    agentId,
    name,
    role: token.role,
    labels: token.labels,
    credential,
    expiresAt: expiresAtSec * 1000,
    nonce: request.nonce,
    server: {
      sig: b64u(identity.signing.publicKey),
      sigKid: identity.signing.kid,
      kx: b64u(identity.agreement.publicKey),
      kxKid: identity.agreement.kid,
      fp: identity.fingerprint,
    },
    iat: now,
  });
  return { agentId, role: token.role, response };
}

/** A random (version 4) UUID from the injected randomness, laid out as RFC 9562 §5.4 says. */
export function randomUuid(random: (n: number) => Uint8Array): string {
  const b = random(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The conditional update matched nothing: someone else changed the token meanwhile. Say what. A
 * usable token with no audit head is a broken database: an infrastructure fault, never a 4xx.
 */
async function whyNotConsumed(db: Db, id: string, now: number): Promise<Error> {
  const [t] = await db.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, id)).limit(1);
  if (!t) return new ProtocolError('token_unknown');
  const state = tokenState(t, now);
  if (state !== 'active') return new ProtocolError(STATE_CODE[state]);
  const [head] = await db.select({ id: auditHead.id }).from(auditHead).limit(1);
  return head ? new ProtocolError('token_used') : new Error('the audit chain has no head row');
}
