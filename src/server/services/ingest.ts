// POST /v1/messages, one envelope at a time (spec/PROTOCOL.md §Envelope, §Replay and freshness).
// Checks, cheapest first; nothing is stored unless every check passes:
//   parse → sender key known and active (agent too) → signature → recipient → freshness →
//   per-agent budget → replay pre-check → open (HPKE Auth) → bounded gunzip → GLPI validation →
//   ONE transaction: replay record (unique per key), counter, inventory, last-seen → signed receipt.
// The replay record's primary key makes a concurrent duplicate lose inside the transaction, so one
// envelope submitted twice at once is accepted exactly once. Nothing about key or agent status is
// cached across requests: a revocation is effective on the very next message on every instance.
import { eq, sql } from 'drizzle-orm';
import { fromB64u, fromUtf8 } from '../../protocol/bytes.js';
import type { ProtocolContext } from '../../protocol/crypto/types.js';
import { checkFreshness, DEFAULT_FRESHNESS, openEnvelope, parseEnvelope, verifyEnvelopeSignature, type FreshnessPolicy, type ParsedEnvelope } from '../../protocol/envelope.js';
import { ProtocolError, type ProtocolErrorCode } from '../../protocol/errors.js';
import { signReceipt, type Directives } from '../../protocol/receipt.js';
import type { SignedObject } from '../../protocol/signed.js';
import type { Database, Db } from '../../db/database.js';
import { agentKeys, agents, inventories, seenMessages } from '../../db/schema.js';
import { validateInventory } from '../glpi/inventory-schema.js';
import type { ServerIdentity } from '../identity.js';
import type { Telemetry } from '../telemetry.js';
import { gunzipBounded } from './decompress.js';
import { createRateLimiter, type RateLimiter } from './rate-limiter.js';

export interface IngestPolicy {
  freshness: FreshnessPolicy;
  /** Largest plaintext after decompression. */
  maxContentBytes: number;
  /** Per agent: burst and sustained messages per second. */
  messageBurst: number;
  messagesPerSecond: number;
  /** Per agent: byte budget (ciphertext bytes) burst and refill per second. */
  byteBurst: number;
  bytesPerSecond: number;
  /** Ask the agent to renew when less than this fraction of its key lifetime is left. */
  renewWhenRemaining: number;
}

export const DEFAULT_INGEST_POLICY: IngestPolicy = {
  freshness: DEFAULT_FRESHNESS,
  maxContentBytes: 16 * 1024 * 1024,
  messageBurst: 60,
  messagesPerSecond: 1,
  // The largest real inventory is 1.4 MB; 64 MiB at once and ~18 KiB/s (64 MiB an hour) after.
  byteBurst: 64 * 1024 * 1024,
  bytesPerSecond: (64 * 1024 * 1024) / 3600,
  renewWhenRemaining: 0.2,
};

export interface IngestDeps {
  database: Database;
  identity: ServerIdentity;
  ctx: ProtocolContext;
  telemetry: Telemetry;
  policy: IngestPolicy;
  limits: { messages: RateLimiter; bytes: RateLimiter };
}

export function createIngestLimits(policy: IngestPolicy): IngestDeps['limits'] {
  return {
    messages: createRateLimiter({ capacity: policy.messageBurst, refillPerSecond: policy.messagesPerSecond }),
    bytes: createRateLimiter({ capacity: policy.byteBurst, refillPerSecond: policy.bytesPerSecond }),
  };
}

export type IngestResult =
  | { ok: true; receipt: SignedObject; agentId: string }
  | { ok: false; code: ProtocolErrorCode; message: string; receipt?: SignedObject; retryAfterSeconds?: number };

interface SenderKey {
  agentId: string;
  sigPub: Uint8Array;
  kxPub: Uint8Array;
  keyStatus: string;
  keyCreatedAt: Date;
  keyExpiresAt: Date;
  maxCounter: number;
  agentStatus: string;
  sendIntervalSeconds: number | null;
  /** This message id was already accepted from this key. */
  seen: boolean;
}

/** The hot lookup, prepared once per database handle. */
const lookups = new WeakMap<Db, ReturnType<typeof prepareLookup>>();
function prepareLookup(db: Db) {
  return {
    key: db
      .select({
        agentId: agentKeys.agentId,
        sigPub: agentKeys.sigPub,
        kxPub: agentKeys.kxPub,
        keyStatus: agentKeys.status,
        keyCreatedAt: agentKeys.createdAt,
        keyExpiresAt: agentKeys.expiresAt,
        maxCounter: agentKeys.maxCounter,
        agentStatus: agents.status,
        sendIntervalSeconds: agents.sendIntervalSeconds,
        // The replay pre-check rides along: one round trip for key, agent and message id.
        seen: sql<boolean>`EXISTS (SELECT 1 FROM ${seenMessages} WHERE ${seenMessages.sigKid} = ${agentKeys.sigKid} AND ${seenMessages.messageId} = ${sql.placeholder('mid')}::bytea)`,
      })
      .from(agentKeys)
      .innerJoin(agents, eq(agents.id, agentKeys.agentId))
      .where(eq(agentKeys.sigKid, sql.placeholder('kid')))
      .limit(1)
      .prepare('latchkey_sender_key'),
  };
}

class Rejection extends Error {
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export async function ingestOne(deps: IngestDeps, input: unknown): Promise<IngestResult> {
  let env: ParsedEnvelope | undefined;
  let sender: SenderKey | undefined;
  try {
    env = parseEnvelope(input);
    const mid = fromB64u(env.header.mid);
    sender = await findSender(deps, env.header.snd, mid);
    await verifyEnvelopeSignature(deps.ctx, env, sender.sigPub);
    if (env.header.rcp !== deps.identity.agreement.kid) throw new ProtocolError('recipient_mismatch');
    const now = deps.ctx.now();
    checkFreshness(env.header, now, sender.maxCounter, deps.policy.freshness);
    if (env.header.typ !== 'inventory') throw new ProtocolError('payload_invalid', 'this endpoint takes inventory messages');
    spendBudget(deps, sender.agentId, env.ct.length);
    if (sender.seen) throw new ProtocolError('replay_detected');

    const sealed = await openEnvelope(deps.ctx, env, deps.identity.agreement, sender.kxPub);
    const content = env.header.cen === 'gzip' ? gunzipBounded(sealed, deps.policy.maxContentBytes) : sealed;
    if (content.length > deps.policy.maxContentBytes) throw new ProtocolError('payload_too_large');
    if (env.header.cty !== 'application/json') throw new ProtocolError('payload_invalid', 'content type must be application/json');
    let inventory: unknown;
    try {
      inventory = JSON.parse(fromUtf8(content));
    } catch {
      throw new ProtocolError('payload_invalid', 'inventory is not JSON');
    }
    const valid = validateInventory(inventory);
    if (!valid.ok) throw new ProtocolError('payload_invalid', `inventory does not match the GLPI schema at ${valid.issues.map((i) => i.path).join(', ')}`);

    const receivedAt = new Date(now);
    await store(deps, env, sender.agentId, mid, inventory, content.length, receivedAt);
    deps.telemetry.count('messages_total', { outcome: 'accepted' });
    deps.telemetry.count('message_bytes_total', { outcome: 'accepted' }, content.length);
    const receipt = await signReceipt(
      deps.ctx,
      deps.identity.signing,
      { mid: env.header.mid, snd: env.header.snd, status: 'accepted', rat: now, ...withDirectives(deps, sender, now) },
      sender.kxPub,
    );
    return { ok: true, receipt, agentId: sender.agentId };
  } catch (err) {
    const code: ProtocolErrorCode = err instanceof ProtocolError || err instanceof Rejection ? err.code : 'payload_invalid';
    if (!(err instanceof ProtocolError) && !(err instanceof Rejection)) throw err;
    deps.telemetry.count('messages_total', { outcome: code });
    const result: IngestResult = { ok: false, code, message: err.message };
    if (err instanceof Rejection && err.retryAfterSeconds) result.retryAfterSeconds = err.retryAfterSeconds;
    // A signed rejection whenever we know whom it answers (the sender's key is registered).
    if (env && sender) {
      result.receipt = await signReceipt(deps.ctx, deps.identity.signing, { mid: env.header.mid, snd: env.header.snd, status: 'rejected', code, rat: deps.ctx.now() });
    }
    return result;
  }
}

async function findSender(deps: IngestDeps, kid: string, mid: Uint8Array): Promise<SenderKey> {
  const q = lookups.get(deps.database.db) ?? lookups.set(deps.database.db, prepareLookup(deps.database.db)).get(deps.database.db)!;
  const [row] = (await q.key.execute({ kid, mid })) as SenderKey[];
  if (!row) throw new ProtocolError('key_unknown');
  if (row.agentStatus === 'revoked') throw new ProtocolError('agent_revoked');
  if (row.keyStatus === 'revoked') throw new ProtocolError('key_revoked');
  if (row.keyStatus !== 'active' || row.keyExpiresAt.getTime() <= deps.ctx.now()) throw new ProtocolError('key_expired');
  return row;
}

function spendBudget(deps: IngestDeps, agentId: string, bytes: number): void {
  const m = deps.limits.messages.take(agentId);
  if (!m.ok) throw new Rejection('rate_limited', 'message rate exceeded for this agent', m.retryAfterSeconds);
  const b = deps.limits.bytes.take(agentId, bytes);
  if (!b.ok) throw new Rejection('rate_limited', 'byte budget exceeded for this agent', b.retryAfterSeconds);
}

/**
 * The replay record, the counter, the inventory and last-seen in ONE statement (data-modifying CTEs
 * run atomically): one round trip instead of six. Every write is conditional on the replay record
 * being new, so a concurrent duplicate changes nothing and reads as a replay.
 */
async function store(deps: IngestDeps, env: ParsedEnvelope, agentId: string, mid: Uint8Array, inventory: unknown, size: number, receivedAt: Date): Promise<void> {
  const kid = env.header.snd;
  const ctr = env.header.ctr;
  // Raw SQL parameters bypass drizzle's column mapping: pass driver-neutral text and bytes, cast here.
  const at = receivedAt.toISOString();
  const rows = await deps.database.db.execute(sql`
    WITH seen AS (
      INSERT INTO ${seenMessages} (sig_kid, message_id, counter, received_at)
      VALUES (${kid}, ${mid}::bytea, ${ctr}::bigint, ${at}::timestamptz) ON CONFLICT DO NOTHING RETURNING 1
    ), counter AS (
      UPDATE ${agentKeys} SET max_counter = GREATEST(max_counter, ${ctr}::bigint)
      WHERE sig_kid = ${kid} AND EXISTS (SELECT 1 FROM seen) RETURNING 1
    ), stored AS (
      INSERT INTO ${inventories} (agent_id, message_id, received_at, size, content)
      SELECT ${agentId}, ${mid}::bytea, ${at}::timestamptz, ${size}::int, ${JSON.stringify(inventory)}::jsonb WHERE EXISTS (SELECT 1 FROM seen) RETURNING 1
    ), seen_at AS (
      UPDATE ${agents} SET last_seen_at = ${at}::timestamptz WHERE id = ${agentId} AND EXISTS (SELECT 1 FROM seen) RETURNING 1
    )
    SELECT (SELECT count(*) FROM seen)::int AS inserted`);
  const first = (Array.isArray(rows) ? rows[0] : (rows as { rows: Record<string, unknown>[] }).rows[0]) as { inserted: number } | undefined;
  if (!first || Number(first.inserted) !== 1) throw new ProtocolError('replay_detected');
}

function withDirectives(deps: IngestDeps, sender: SenderKey, now: number): { directives?: Directives } {
  const d: Directives = {};
  if (sender.sendIntervalSeconds) d.sendIntervalSeconds = sender.sendIntervalSeconds;
  const lifetime = sender.keyExpiresAt.getTime() - sender.keyCreatedAt.getTime();
  if (lifetime > 0 && sender.keyExpiresAt.getTime() - now < lifetime * deps.policy.renewWhenRemaining) d.renewNow = true;
  return Object.keys(d).length ? { directives: d } : {};
}
