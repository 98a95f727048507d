// POST /v1/enroll, the service (spec/PROTOCOL.md §Enrollment). Order:
//   rate limit → parse → open + proofs → token checks (known+secret, revoked, expired, uses, constraints)
//   → name rules → ONE transaction: consume a use atomically, create agent, keys, token use, audit.
// The use is consumed by a conditional UPDATE … WHERE uses_left > 0, so N concurrent enrollments
// with a one-use token give exactly one success under any interleaving. Failures are audited in a
// transaction of their own and count against the source's and the token's failure budget.
import { and, eq, gt, isNull, sql } from 'drizzle-orm';
import { b64u } from '../../protocol/bytes.js';
import type { ProtocolContext } from '../../protocol/crypto/types.js';
import { issueCredential, type Role } from '../../protocol/credential.js';
import { openEnrollRequest, parseEnrollRequest, signEnrollResponse } from '../../protocol/enrollment.js';
import { ProtocolError, type ProtocolErrorCode } from '../../protocol/errors.js';
import type { SignedObject } from '../../protocol/signed.js';
import { tokenSecretMatches } from '../../protocol/token.js';
import type { Database, Tx } from '../../db/database.js';
import { agentKeys, agents, enrollmentTokens, tokenUses } from '../../db/schema.js';
import type { ServerIdentity } from '../identity.js';
import type { Logger } from '../logger.js';
import type { Telemetry } from '../telemetry.js';
import { appendAudit, appendAuditAlone } from './audit.js';
import { cidrContains, parseCidr } from './cidr.js';
import { globMatches, isValidAgentName } from './name-rules.js';
import { createRateLimiter, type RateLimiter } from './rate-limiter.js';

/** Keys and credentials issued at enrollment live this long unless renewed. */
export const DEFAULT_CREDENTIAL_TTL_SECONDS = 30 * 24 * 3600;

export interface EnrollmentDeps {
  database: Database;
  identity: ServerIdentity;
  ctx: ProtocolContext;
  logger: Logger;
  telemetry: Telemetry;
  limiter: EnrollmentLimiter;
  credentialTtlSeconds?: number;
}

/** Failure budgets: per source address and per token id (per instance, in memory). */
export interface EnrollmentLimiter {
  bySource: RateLimiter;
  byToken: RateLimiter;
}

export function createEnrollmentLimiter(now: () => number): EnrollmentLimiter {
  // 10 failures at once, then one every 6 s: a token secret cannot be guessed and a typo'ing admin
  // is not locked out for long.
  return {
    bySource: createRateLimiter({ capacity: 10, refillPerSecond: 1 / 6, now }),
    byToken: createRateLimiter({ capacity: 10, refillPerSecond: 1 / 6, now }),
  };
}

/**
 * Failures that come before the token secret is proven: what a guesser or a broken client produces.
 * Later failures (used, expired, revoked, constraints, names) prove knowledge of the secret, so
 * they do not spend the budget: 32 agents racing for one token get token_used, not rate_limited.
 */
const GUESSING_CODES = new Set<ProtocolErrorCode>([
  'envelope_malformed',
  'token_malformed',
  'version_unsupported',
  'recipient_mismatch',
  'decrypt_failed',
  'payload_invalid',
  'server_key_mismatch',
  'signature_invalid',
  'token_unknown',
]);

export class RateLimitedError extends ProtocolError {
  constructor(retryAfterSeconds: number) {
    super('rate_limited', 'too many failed enrollment attempts; retry later', { retryAfterSeconds });
  }
}

/** Unique-violation detection across postgres.js and PGlite (drizzle may wrap the driver error). */
function uniqueViolation(err: unknown): string | undefined {
  for (let e = err as { code?: string; constraint_name?: string; constraint?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === '23505') return e.constraint_name ?? e.constraint ?? 'unique';
  }
  return undefined;
}

export async function enroll(deps: EnrollmentDeps, body: unknown, sourceAddr: string | undefined): Promise<SignedObject> {
  const source = sourceAddr ?? 'unknown';
  const sourceBudget = deps.limiter.bySource.peek(source);
  if (!sourceBudget.ok) throw new RateLimitedError(sourceBudget.retryAfterSeconds);

  let tokenId: string | undefined;
  try {
    const wire = parseEnrollRequest(body);
    tokenId = wire.tid;
    const tokenBudget = deps.limiter.byToken.peek(tokenId);
    if (!tokenBudget.ok) throw new RateLimitedError(tokenBudget.retryAfterSeconds);
    const request = await openEnrollRequest(deps.ctx, wire, deps.identity);
    const result = await admit(deps, request, source);
    deps.telemetry.count('enrollments_total', { outcome: 'success' });
    deps.logger.info({ agentId: result.agentId, tokenId, role: result.role, sourceAddr: source }, 'agent enrolled');
    return result.response;
  } catch (err) {
    const code: ProtocolErrorCode = err instanceof ProtocolError ? err.code : 'payload_invalid';
    if (GUESSING_CODES.has(code)) {
      deps.limiter.bySource.take(source);
      if (tokenId) deps.limiter.byToken.take(tokenId);
    }
    deps.telemetry.count('enrollments_total', { outcome: code });
    await appendAuditAlone(deps.database.db, {
      at: new Date(deps.ctx.now()),
      actor: 'agent',
      action: 'agent.enroll',
      outcome: 'failure',
      code,
      sourceAddr: source,
      tokenId: tokenId ?? null,
    }).catch((auditErr: unknown) => deps.logger.error({ err: String(auditErr) }, 'audit append failed'));
    if (err instanceof ProtocolError) throw err;
    throw err;
  }
}

async function admit(
  deps: EnrollmentDeps,
  request: Awaited<ReturnType<typeof openEnrollRequest>>,
  source: string,
): Promise<{ agentId: string; role: Role; response: SignedObject }> {
  const { db } = deps.database;
  const now = deps.ctx.now();
  const [token] = await db.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, request.tokenId)).limit(1);
  // A wrong secret for a known id reads exactly like an unknown id: nothing to probe.
  if (!token || !tokenSecretMatches(request.tokenId, request.secret, token.secretHash)) throw new ProtocolError('token_unknown');
  if (token.revokedAt) throw new ProtocolError('token_revoked');
  if (token.expiresAt.getTime() <= now) throw new ProtocolError('token_expired');
  if (token.usesLeft <= 0) throw new ProtocolError('token_used');

  const name = request.name ?? `agent-${b64u(deps.ctx.random(6)).replace(/[^A-Za-z0-9]/g, 'x')}`;
  if (!isValidAgentName(name)) throw new ProtocolError('name_invalid', 'names use letters, digits, - _ . and at most 128 bytes');
  if (token.cidr) {
    const cidr = parseCidr(token.cidr);
    if (!cidr || !cidrContains(cidr, source)) throw new ProtocolError('token_constraint_failed', 'source address not allowed by this token');
  }
  if (token.namePattern && !globMatches(token.namePattern, name)) {
    throw new ProtocolError('token_constraint_failed', 'name not allowed by this token');
  }

  const agentId = randomUuid(deps.ctx.random);
  const ttl = deps.credentialTtlSeconds ?? DEFAULT_CREDENTIAL_TTL_SECONDS;
  const issuedAt = Math.floor(now / 1000);
  const expiresAtSec = issuedAt + ttl;
  try {
    await db.transaction(async (tx) => {
      const [consumed] = await tx
        .update(enrollmentTokens)
        .set({ usesLeft: sql`${enrollmentTokens.usesLeft} - 1` })
        .where(
          and(
            eq(enrollmentTokens.id, token.id),
            gt(enrollmentTokens.usesLeft, 0),
            isNull(enrollmentTokens.revokedAt),
            gt(enrollmentTokens.expiresAt, new Date(now)),
          ),
        )
        .returning({ usesLeft: enrollmentTokens.usesLeft });
      if (!consumed) throw await whyNotConsumed(tx, token.id, now);
      await tx.insert(agents).values({ id: agentId, name, role: token.role, labels: token.labels, tokenId: token.id, status: 'active' });
      await tx.insert(agentKeys).values({
        agentId,
        sigKid: request.signingKey.kid,
        sigPub: request.signingKey.publicKey,
        kxKid: request.agreementKey.kid,
        kxPub: request.agreementKey.publicKey,
        expiresAt: new Date(expiresAtSec * 1000),
      });
      await tx.insert(tokenUses).values({ tokenId: token.id, agentId, sourceAddr: source });
      await appendAudit(tx, {
        at: new Date(now),
        actor: 'agent',
        action: 'agent.enroll',
        outcome: 'success',
        sourceAddr: source,
        tokenId: token.id,
        agentId,
        details: { name, role: token.role, sigKid: request.signingKey.kid, kxKid: request.agreementKey.kid },
      });
    });
  } catch (err) {
    const constraint = uniqueViolation(err);
    if (constraint?.includes('name')) throw new ProtocolError('name_taken', 'an agent with this name exists');
    if (constraint) throw new ProtocolError('payload_invalid', 'these keys are already registered');
    throw err;
  }

  const { identity } = deps;
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
function randomUuid(random: (n: number) => Uint8Array): string {
  const b = random(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The conditional update matched nothing: someone else changed the token meanwhile. Say what. */
async function whyNotConsumed(tx: Tx, id: string, now: number): Promise<ProtocolError> {
  const [t] = await tx.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, id)).limit(1);
  if (!t) return new ProtocolError('token_unknown');
  if (t.revokedAt) return new ProtocolError('token_revoked');
  if (t.expiresAt.getTime() <= now) return new ProtocolError('token_expired');
  return new ProtocolError('token_used');
}
