// POST /v1/messages, one envelope at a time (spec/PROTOCOL.md §Envelope, §Replay and freshness).
// Checks, cheapest first; nothing is stored unless every check passes:
//   parse → sender key known (memory, else one lookup that also checks status and replay) →
//   signature → recipient → freshness → per-agent budget → open (HPKE Auth) → bounded gunzip →
//   GLPI validation → ONE statement that re-checks key and agent status, the counter window and the
//   message id, and stores the replay record, counter, inventory and last-seen → signed receipt.
// Mutable state (status, counter, seen ids) is only ever trusted from inside that statement, so a
// revocation is effective on the very next message on every instance, and a concurrent duplicate
// loses on the replay record's primary key: one envelope submitted twice at once is accepted once.
import { eq, sql } from 'drizzle-orm';
import { fromB64u } from '../../protocol/bytes.js';
import type { ProtocolContext } from '../../protocol/crypto/types.js';
import { checkFreshness, DEFAULT_FRESHNESS, parseEnvelope, verifyEnvelopeSignature, type FreshnessPolicy, type ParsedEnvelope } from '../../protocol/envelope.js';
import { ProtocolError, type ProtocolErrorCode } from '../../protocol/errors.js';
import { envelopeBinding, signReceipt, type Directives } from '../../protocol/receipt.js';
import type { SignedObject } from '../../protocol/signed.js';
import type { Database, Db } from '../../db/database.js';
import { agentKeys, agents, seenMessages } from '../../db/schema.js';
import type { ServerIdentity } from '../identity.js';
import type { Telemetry } from '../telemetry.js';
import { createRateLimiter, type RateLimiter } from './rate-limiter.js';
import type { SenderKeyCache, SenderKeyFacts } from './sender-keys.js';
import { isUnstorableValueError } from './storable.js';
import { STORE_BATCH_SQL, StoreBatcher, type StoreVerdict } from './store-batcher.js';
import { unsealInventory } from './unseal.js';

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
  /** Immutable facts about sender keys already looked up by this instance. */
  senderKeys: SenderKeyCache;
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

/** The full lookup, for a key this instance has not seen yet: facts, status and replay at once. */
interface SenderRow {
  agentId: string;
  sigPub: Uint8Array;
  kxPub: Uint8Array;
  keyStatus: string;
  keyCreatedAt: Date;
  keyExpiresAt: Date;
  maxCounter: number;
  agentStatus: string;
  /** This message id was already accepted from this key. */
  seen: boolean;
}

/** The hot lookup, prepared once per database handle. */
const lookups = new WeakMap<Db, ReturnType<typeof prepareLookup>>();
function prepareLookup(db: Db) {
  return db
    .select({
      agentId: agentKeys.agentId,
      sigPub: agentKeys.sigPub,
      kxPub: agentKeys.kxPub,
      keyStatus: agentKeys.status,
      keyCreatedAt: agentKeys.createdAt,
      keyExpiresAt: agentKeys.expiresAt,
      maxCounter: agentKeys.maxCounter,
      agentStatus: agents.status,
      seen: sql<boolean>`EXISTS (SELECT 1 FROM ${seenMessages} WHERE ${seenMessages.sigKid} = ${agentKeys.sigKid} AND ${seenMessages.messageId} = ${sql.placeholder('mid')}::bytea)`,
    })
    .from(agentKeys)
    .innerJoin(agents, eq(agents.id, agentKeys.agentId))
    .where(eq(agentKeys.sigKid, sql.placeholder('kid')))
    .limit(1)
    .prepare('latchkey_sender_key');
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
  let sender: SenderKeyFacts | undefined;
  try {
    env = parseEnvelope(input);
    const mid = fromB64u(env.header.mid);
    sender = deps.senderKeys.get(env.header.snd) ?? (await lookUpSender(deps, env.header.snd, mid));
    await verifyEnvelopeSignature(deps.ctx, env, sender.sigPub);
    if (env.header.rcp !== deps.identity.agreement.kid) throw new ProtocolError('recipient_mismatch');
    const now = deps.ctx.now();
    // Expiry is immutable per key: checked from memory. Status is checked again when storing.
    if (sender.expiresAt <= now) throw new ProtocolError('key_expired');
    checkFreshness(env.header, now, sender.counterFloor, deps.policy.freshness);
    if (env.header.typ !== 'inventory') throw new ProtocolError('payload_invalid', 'this endpoint takes inventory messages');
    spendBudget(deps, sender.agentId, env.ct.length);

    const { text, size } = await unsealInventory(deps.ctx, deps.identity.agreement, { env, senderAgreementKey: sender.kxPub, maxContentBytes: deps.policy.maxContentBytes });

    const stored = await store(deps, env, sender, mid, text, size, now);
    deps.telemetry.count('messages_total', { outcome: 'accepted' });
    deps.telemetry.count('message_bytes_total', { outcome: 'accepted' }, size);
    const receipt = await signReceipt(
      deps.ctx,
      deps.identity.signing,
      { mid: env.header.mid, snd: env.header.snd, env: envelopeBinding(env), status: 'accepted', rat: now, ...withDirectives(deps, sender, stored.sendIntervalSeconds, now) },
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
      result.receipt = await signReceipt(deps.ctx, deps.identity.signing, { mid: env.header.mid, snd: env.header.snd, env: envelopeBinding(env), status: 'rejected', code, rat: deps.ctx.now() });
    }
    return result;
  }
}

/**
 * First message from a key on this instance: one query for the key, its agent and the message id.
 * Everything is checked here, before the signature; only a key in good standing is remembered.
 */
async function lookUpSender(deps: IngestDeps, kid: string, mid: Uint8Array): Promise<SenderKeyFacts> {
  const db = deps.database.db;
  let q = lookups.get(db);
  if (!q) lookups.set(db, (q = prepareLookup(db)));
  const [row] = (await q.execute({ kid, mid })) as SenderRow[];
  if (!row) throw new ProtocolError('key_unknown');
  const refused = statusRefusal(row.agentStatus, row.keyStatus);
  if (refused) throw new ProtocolError(refused);
  if (row.keyExpiresAt.getTime() <= deps.ctx.now()) throw new ProtocolError('key_expired');
  if (row.seen) throw new ProtocolError('replay_detected');
  const facts: SenderKeyFacts = {
    agentId: row.agentId,
    sigPub: row.sigPub,
    kxPub: row.kxPub,
    createdAt: row.keyCreatedAt.getTime(),
    expiresAt: row.keyExpiresAt.getTime(),
    counterFloor: Number(row.maxCounter),
  };
  deps.senderKeys.set(kid, facts);
  return facts;
}

/** Why an agent and key in these states may not send; undefined when both are active. */
function statusRefusal(agentStatus: unknown, keyStatus: unknown): ProtocolErrorCode | undefined {
  if (agentStatus === 'revoked') return 'agent_revoked';
  if (keyStatus === 'revoked') return 'key_revoked';
  // Superseded by a renewal: the key's life is over.
  if (keyStatus !== 'active' || agentStatus !== 'active') return 'key_expired';
  return undefined;
}

function spendBudget(deps: IngestDeps, agentId: string, bytes: number): void {
  const m = deps.limits.messages.take(agentId);
  if (!m.ok) throw new Rejection('rate_limited', 'message rate exceeded for this agent', m.retryAfterSeconds);
  const b = deps.limits.bytes.take(agentId, bytes);
  if (!b.ok) throw new Rejection('rate_limited', 'byte budget exceeded for this agent', b.retryAfterSeconds);
}

/** One batcher per database handle: messages arriving together share a statement and a commit. */
const batchers = new WeakMap<Database, StoreBatcher>();

/**
 * Stores the message if, inside the storing statement, its key and agent are still active and
 * unexpired, its counter is within the window and its id is new; otherwise says why not.
 */
async function store(
  deps: IngestDeps,
  env: ParsedEnvelope,
  sender: SenderKeyFacts,
  mid: Uint8Array,
  inventoryJson: string,
  size: number,
  now: number,
): Promise<{ sendIntervalSeconds: number | null }> {
  let batcher = batchers.get(deps.database);
  if (!batcher) batchers.set(deps.database, (batcher = new StoreBatcher(deps.database.prepared(STORE_BATCH_SQL))));
  const kid = env.header.snd;
  const window = deps.policy.freshness.counterWindow;
  let v: StoreVerdict | undefined;
  try {
    v = await batcher.store({ kid, mid, counter: env.header.ctr, window, at: now, agentId: sender.agentId, size, json: inventoryJson });
  } catch (err) {
    // The batcher retries a failing statement message by message, so this one is this message's.
    if (isUnstorableValueError(err)) throw new ProtocolError('payload_invalid', 'inventory cannot be stored: a value is out of range or nested too deeply');
    throw err;
  }
  const refused = v ? (statusRefusal(v.agentStatus, v.keyStatus) ?? (v.unexpired ? undefined : 'key_expired')) : 'key_unknown';
  if (!v || refused) {
    // The next message from this key takes the full lookup path, and is refused before its signature.
    deps.senderKeys.delete(kid);
    throw new ProtocolError(refused ?? 'key_unknown');
  }
  if (v.maxCounter > sender.counterFloor) sender.counterFloor = v.maxCounter;
  if (!v.inserted) {
    if (env.header.ctr <= v.maxCounter - window) throw new ProtocolError('stale_message', 'counter is below the window');
    throw new ProtocolError('replay_detected');
  }
  if (env.header.ctr > sender.counterFloor) sender.counterFloor = env.header.ctr;
  return { sendIntervalSeconds: v.sendIntervalSeconds };
}

function withDirectives(deps: IngestDeps, sender: SenderKeyFacts, sendIntervalSeconds: number | null, now: number): { directives?: Directives } {
  const d: Directives = {};
  if (sendIntervalSeconds) d.sendIntervalSeconds = sendIntervalSeconds;
  const lifetime = sender.expiresAt - sender.createdAt;
  if (lifetime > 0 && sender.expiresAt - now < lifetime * deps.policy.renewWhenRemaining) d.renewNow = true;
  return Object.keys(d).length ? { directives: d } : {};
}
