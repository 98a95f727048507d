// Enrollment tokens as admins see them: create (the secret is shown once and only its hash is
// kept), list (with every use: when, from where, by which agent), revoke.
import { asc, eq, inArray, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { enrollmentTokens, tokenUses } from '../../db/schema.js';
import { generateToken } from '../../protocol/token.js';
import { ApiError } from '../errors.js';
import { appendAudit } from './audit.js';
import { parseCidr } from './cidr.js';
import { MAX_NAME_PATTERN_LENGTH, NAME_PATTERN } from './name-rules.js';
import { pageQuery, paginate, positionOf, type PageRequest } from './page.js';
import { recordRevocation } from './revocation-list.js';

/**
 * "Is this token usable", the one rule (spec/PROTOCOL.md §5, §6.3): revoked, else used (no uses
 * left), else expired (expiry at or before now), else active. Only `active` admits an enrollment.
 * tokenState is the TypeScript form and tokenStateSql the SQL form of the same rule; the
 * enrollment's conditional update, its explanations and the admin listing use nothing else, and
 * test/enrollment/token-state.test.ts checks that both forms agree on every case, on both databases.
 */
export type TokenState = 'active' | 'expired' | 'used' | 'revoked';

export function tokenState(t: { revokedAt: Date | null; usesLeft: number; expiresAt: Date }, now: number): TokenState {
  if (t.revokedAt) return 'revoked';
  if (t.usesLeft <= 0) return 'used';
  if (t.expiresAt.getTime() <= now) return 'expired';
  return 'active';
}

export function tokenStateSql(now: number): SQL<TokenState> {
  const at = new Date(now).toISOString();
  return sql<TokenState>`(CASE WHEN ${enrollmentTokens.revokedAt} IS NOT NULL THEN 'revoked'
    WHEN ${enrollmentTokens.usesLeft} <= 0 THEN 'used'
    WHEN ${enrollmentTokens.expiresAt} <= ${at}::timestamptz THEN 'expired'
    ELSE 'active' END)`;
}

export interface CreateTokenInput {
  ttlSeconds: number;
  uses: number;
  role: 'agent' | 'relay';
  cidr?: string | undefined;
  namePattern?: string | undefined;
  labels?: Record<string, string> | undefined;
  /** Lifetime of enrolled agents' keys and credentials; absent: the server's default. */
  credentialTtlSeconds?: number | undefined;
}

export interface TokenView {
  id: string;
  role: 'agent' | 'relay';
  usesTotal: number;
  usesLeft: number;
  createdAt: string;
  createdBy: string | null;
  expiresAt: string;
  revokedAt: string | null;
  status: 'active' | 'expired' | 'used' | 'revoked';
  cidr: string | null;
  namePattern: string | null;
  labels: Record<string, string>;
  credentialTtlSeconds: number | null;
  uses: { usedAt: string; sourceAddr: string | null; agentId: string }[];
}

export async function createToken(
  db: Db,
  ctx: { random: (n: number) => Uint8Array; now: () => number },
  fingerprint: string,
  actor: string,
  input: CreateTokenInput,
): Promise<{ token: string; id: string; expiresAt: string }> {
  if (input.cidr !== undefined && !parseCidr(input.cidr)) throw new ApiError('request_invalid', 'cidr is not a valid IPv4 or IPv6 CIDR');
  if (input.namePattern !== undefined && input.namePattern.length > MAX_NAME_PATTERN_LENGTH) {
    throw new ApiError('request_invalid', `namePattern is at most ${MAX_NAME_PATTERN_LENGTH} characters`);
  }
  if (input.namePattern !== undefined && !NAME_PATTERN.test(input.namePattern)) {
    throw new ApiError('request_invalid', 'namePattern may use letters, digits, - _ . and the wildcards * ?');
  }
  const { token, tokenId, secretHash } = generateToken(ctx.random, fingerprint);
  const expiresAt = new Date(ctx.now() + input.ttlSeconds * 1000);
  await db.transaction(async (tx) => {
    await tx.insert(enrollmentTokens).values({
      id: tokenId,
      secretHash,
      role: input.role,
      usesTotal: input.uses,
      usesLeft: input.uses,
      expiresAt,
      createdBy: actor,
      cidr: input.cidr ?? null,
      namePattern: input.namePattern ?? null,
      labels: input.labels ?? {},
      credentialTtlSeconds: input.credentialTtlSeconds ?? null,
    });
    await appendAudit(tx, {
      at: new Date(ctx.now()),
      actor,
      action: 'token.create',
      outcome: 'success',
      tokenId,
      details: {
        role: input.role,
        uses: input.uses,
        ttlSeconds: input.ttlSeconds,
        cidr: input.cidr ?? null,
        namePattern: input.namePattern ?? null,
        credentialTtlSeconds: input.credentialTtlSeconds ?? null,
      },
    });
  });
  return { token, id: tokenId, expiresAt: expiresAt.toISOString() };
}

/** One page of tokens in creation order, each with its uses (pagination in page.ts). */
export async function listTokens(db: Db, now: number, page: PageRequest): Promise<{ tokens: TokenView[]; nextCursor: string | null }> {
  const { where, orderBy } = pageQuery(page, enrollmentTokens.createdAt, enrollmentTokens.id);
  const fetched = await db
    .select({ token: enrollmentTokens, position: positionOf(enrollmentTokens.createdAt) })
    .from(enrollmentTokens)
    .where(where)
    .orderBy(...orderBy)
    .limit(page.limit + 1);
  const { rows: pageRows, nextCursor } = paginate(
    fetched.map((r) => ({ ...r, id: r.token.id })),
    page.limit,
  );
  const rows = pageRows.map((r) => r.token);
  // The uses of this page's tokens, selected by the page's own condition: never a list of ids.
  const pageIds = db
    .select({ id: enrollmentTokens.id })
    .from(enrollmentTokens)
    .where(where)
    .orderBy(...orderBy)
    .limit(page.limit);
  const uses = rows.length
    ? await db.select().from(tokenUses).where(inArray(tokenUses.tokenId, pageIds)).orderBy(asc(tokenUses.usedAt))
    : [];
  const byToken = new Map<string, (typeof uses)[number][]>();
  for (const u of uses) byToken.set(u.tokenId, [...(byToken.get(u.tokenId) ?? []), u]);
  const tokens: TokenView[] = rows.map((r) => ({
    id: r.id,
    role: r.role,
    usesTotal: r.usesTotal,
    usesLeft: r.usesLeft,
    createdAt: r.createdAt.toISOString(),
    createdBy: r.createdBy,
    expiresAt: r.expiresAt.toISOString(),
    revokedAt: r.revokedAt?.toISOString() ?? null,
    status: tokenState(r, now),
    cidr: r.cidr,
    namePattern: r.namePattern,
    labels: r.labels,
    credentialTtlSeconds: r.credentialTtlSeconds,
    uses: (byToken.get(r.id) ?? []).map((u) => ({ usedAt: u.usedAt.toISOString(), sourceAddr: u.sourceAddr, agentId: u.agentId })),
  }));
  return { tokens, nextCursor };
}

/**
 * Revokes a token; effective on the next enrollment attempt on every instance (it is a row). The
 * row is locked first and the clock read after the lock, so no use can be recorded after the
 * revocation time. Revoking again changes nothing: the first revocation's time and reason stand.
 */
export async function revokeToken(db: Db, clock: () => number, actor: string, id: string, reason?: string): Promise<void> {
  await db.transaction(async (tx) => {
    const [row] = await tx
      .select({ revokedAt: enrollmentTokens.revokedAt })
      .from(enrollmentTokens)
      .where(eq(enrollmentTokens.id, id))
      .for('update');
    if (!row) throw new ApiError('token_unknown', 'no such token');
    if (row.revokedAt) return; // already revoked: idempotent
    const at = new Date(clock());
    await tx.update(enrollmentTokens).set({ revokedAt: at }).where(eq(enrollmentTokens.id, id));
    await recordRevocation(tx, { kind: 'token', subject: id, reason: reason ?? null, actor, at });
    await appendAudit(tx, { at, actor, action: 'token.revoke', outcome: 'success', tokenId: id, details: { reason: reason ?? null } });
  });
}
