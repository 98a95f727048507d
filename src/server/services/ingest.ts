// POST /v1/messages, one envelope at a time (spec/PROTOCOL.md §Envelope, §Replay and freshness).
// Checks, cheapest first; nothing is stored unless every check passes:
//   source budget (one unit reserved, given back if the message is stored) → parse →
//   sender key known (memory; else a short-lived memory of refused keys; else, within the source's
//   lookup budget, one lookup that also checks status and replay) → signature → recipient →
//   expiry and freshness → credential (when sent) → the agent's message budget (only looked at:
//   it is charged for stored messages) → open (HPKE Auth) → bounded gunzip → GLPI validation →
//   ONE statement that re-checks key and agent status, the counter window, the message id and the
//   agent's stored-bytes budget, and stores the replay record, counter, inventory, budget and
//   last-seen → the receipt's body, signed by the caller (alone, or once for a whole batch).
// Mutable state (status, counter, seen ids, stored bytes) is only ever trusted from inside that
// statement, so a revocation is effective on the very next message on every instance, and a
// concurrent duplicate loses on the replay record's primary key: one envelope submitted twice at
// once is accepted once. A message that is not stored costs its agent nothing: a replayed, stale or
// forged copy is charged to the address that sent it, never to the agent it names.
import { b64u, fromB64u } from '../../protocol/bytes.js';
import { credentialKid, verifyCredential, type CredentialClaims } from '../../protocol/credential.js';
import type { ProtocolContext } from '../../protocol/crypto/types.js';
import {
  checkFreshness,
  DEFAULT_FRESHNESS,
  parseEnvelope,
  verifyEnvelopeSignature,
  type FreshnessPolicy,
  type ParsedEnvelope,
} from '../../protocol/envelope.js';
import { ProtocolError, type ProtocolErrorCode } from '../../protocol/errors.js';
import { Lru } from '../../protocol/lru.js';
import { RECEIPT_TYPE, receiptBody, type Directives } from '../../protocol/receipt.js';
import { envelopeDigest, isRelayed, parseRelayPath } from '../../protocol/relay.js';
import type { JsonObject } from '../../protocol/json.js';
import { LEGACY_CONTENT_TYPE } from '../../protocol/legacy.js';
import { signObject, type SignedObject } from '../../protocol/signed.js';
import type { Database, Row } from '../../db/database.js';
import type { RelayHop } from '../../db/schema.js';
import type { ServerIdentity } from '../identity.js';
import { directiveChain, type ServerKeys } from './server-keys.js';
import type { Telemetry } from '../telemetry.js';
import { cidrContains, parseCidr } from './cidr.js';
import { budgetedLookup, createRateLimiter, type RateLimiter } from './rate-limiter.js';
import { RELAY_LOOKUP_SQL, verifyRelayPath, type RelayMemo } from './relay-layers.js';
import { senderRefusalSql } from './sender-rules.js';
import { SenderKeyCache, type SenderKeyFacts } from './sender-keys.js';
import { isUnstorableValueError } from './storable.js';
import { STORE_BATCH_SQL, StoreBatcher, type StoreItem, type StoreVerdict } from './store-batcher.js';
import type { Gunzip } from './decompress.js';
import { unsealInventory } from './unseal.js';

export interface IngestPolicy {
  freshness: FreshnessPolicy;
  /** Largest plaintext after decompression. */
  maxContentBytes: number;
  /** Per agent: burst and sustained messages per second, counting only messages stored. */
  messageBurst: number;
  messagesPerSecond: number;
  /**
   * Per agent, shared by all instances (kept in the agent's row): bytes of inventory stored, as
   * stored (decompressed JSON), burst and refill per second.
   */
  byteBurst: number;
  bytesPerSecond: number;
  /** Per source address: messages refused (anything not stored), burst and refill per second. */
  sourceRefusalBurst: number;
  sourceRefusalsPerSecond: number;
  /** Per source address: database lookups of keys this instance does not know that found nothing usable. */
  sourceLookupBurst: number;
  sourceLookupsPerSecond: number;
  /** How long a refused sender key (unknown, revoked, expired) is refused from memory, without a lookup. */
  refusedKeyTtlMs: number;
  /** Per source address: GET /v1/receipts lookups, burst and refill per second. */
  receiptLookupBurst: number;
  receiptLookupsPerSecond: number;
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
  // A relay or a NAT may speak for many agents: refusals, not messages, are what a source pays for.
  sourceRefusalBurst: 256,
  sourceRefusalsPerSecond: 4,
  sourceLookupBurst: 32,
  sourceLookupsPerSecond: 2,
  refusedKeyTtlMs: 60_000,
  // A relay fetches a receipt only when a forwarded copy was a replay of one already stored.
  receiptLookupBurst: 120,
  receiptLookupsPerSecond: 20,
  renewWhenRemaining: 0.2,
};

export interface IngestLimits {
  /** Per agent id: messages stored. */
  messages: RateLimiter;
  /** Per source address: messages refused. */
  sourceRefusals: RateLimiter;
  /** Per source address: lookups of keys unknown to this instance that found no usable key. */
  sourceLookups: RateLimiter;
  /**
   * Sender keys refused by a lookup (by signing kid): the code, until when (ms), and the key's facts
   * when it is registered (so that the refusal can be signed for an envelope it signed).
   */
  refusedKeys: Lru<string, { code: ProtocolErrorCode; until: number; facts?: SenderKeyFacts }>;
  /** Agents whose stored-bytes budget was found spent (by agent id): refused from memory until (ms). */
  byteBudgetSpent: Lru<string, number>;
  /** Relay credentials verified (by JWT text), kept until they expire (spec §11). */
  relayCredentials: Lru<string, CredentialClaims>;
  /** Per source address: GET /v1/receipts lookups. */
  receiptLookups: RateLimiter;
}

/** What ingest keeps per process (per isolate on Workers), built once by server/compose.ts. */
export interface IngestState {
  policy: IngestPolicy;
  limits: IngestLimits;
  /** Immutable facts about sender keys already looked up by this instance. */
  senderKeys: SenderKeyCache;
}

/** What ingest keeps per database handle: the sender lookup, prepared once, and the store batcher. */
export interface IngestStatements {
  senderLookup: (params: readonly unknown[]) => Promise<Row[]>;
  /** A relay key, its identity and status (services/relay-layers.ts). */
  relayLookup: (params: readonly unknown[]) => Promise<Row[]>;
  /** Messages arriving together share a statement and a commit. */
  batcher: StoreBatcher;
}

export interface IngestDeps extends IngestState, IngestStatements {
  database: Database;
  identity: ServerIdentity;
  /** Every accepted key set (spec §14): requests are answered with the one they address. */
  keys: ServerKeys;
  ctx: ProtocolContext;
  telemetry: Telemetry;
  /** Bounded gunzip of this runtime (src/runtime/zlib.ts). */
  gunzip: Gunzip;
  /**
   * Node with `--key-request` only (key-request.ts, spec §20.2): asks the external key source about
   * an unknown signing key; true once it is registered.
   */
  keyRequest?: ((kid: string, source: string) => Promise<boolean>) | undefined;
}

export function createIngestState(policy: IngestPolicy, now: () => number): IngestState {
  return { policy, limits: createIngestLimits(policy, now), senderKeys: new SenderKeyCache() };
}

export function createIngestLimits(policy: IngestPolicy, now: () => number): IngestLimits {
  return {
    messages: createRateLimiter({ capacity: policy.messageBurst, refillPerSecond: policy.messagesPerSecond, now }),
    sourceRefusals: createRateLimiter({ capacity: policy.sourceRefusalBurst, refillPerSecond: policy.sourceRefusalsPerSecond, now }),
    sourceLookups: createRateLimiter({ capacity: policy.sourceLookupBurst, refillPerSecond: policy.sourceLookupsPerSecond, now }),
    refusedKeys: new Lru(65_536),
    byteBudgetSpent: new Lru(65_536),
    relayCredentials: new Lru(4096),
    receiptLookups: createRateLimiter({ capacity: policy.receiptLookupBurst, refillPerSecond: policy.receiptLookupsPerSecond, now }),
  };
}

/** The hot path's statements on this database; the batcher reports its batches to `telemetry`. */
export function prepareIngestStatements(database: Database, telemetry?: Telemetry): IngestStatements {
  const batcher = new StoreBatcher(
    database.prepared(STORE_BATCH_SQL),
    undefined,
    telemetry?.observe
      ? (messages, seconds) => {
          telemetry.observe!('store_batch_size', messages);
          telemetry.observe!('store_batch_seconds', seconds);
        }
      : undefined,
  );
  return { senderLookup: database.prepared(SENDER_LOOKUP_SQL), relayLookup: database.prepared(RELAY_LOOKUP_SQL), batcher };
}

/**
 * The server's judgement of one envelope, not yet signed: its receipt body (directives sealed) and
 * the key set that signs it. Alone it becomes a receipt (§10); in a batch, one result among those
 * a single batch receipt covers (§10.1).
 */
export interface ReceiptDraft {
  body: JsonObject;
  signer: ServerIdentity['signing'];
}

export type IngestResult =
  | { ok: true; receipt: ReceiptDraft; agentId: string }
  /** The refusal, with its rejection to sign when the sender's key is registered. */
  | { ok: false; error: ProtocolError; receipt?: ReceiptDraft };

/** One envelope's answer alone: its draft signed as a receipt (§10). */
export const signDraft = (ctx: ProtocolContext, d: ReceiptDraft): Promise<SignedObject> =>
  signObject(ctx.crypto, d.signer, RECEIPT_TYPE, d.body);

/**
 * The full lookup, for a key this instance has not seen yet: its immutable facts, and whether it
 * may send (the one status rule, sender-rules.ts) and has sent this message id, all at once.
 */
export const SENDER_LOOKUP_SQL = `
  SELECT k.agent_id, ag.role, k.sig_pub, k.kx_pub, k.max_counter::text AS max_counter,
         (extract(epoch FROM k.created_at) * 1000)::float8 AS created_at,
         (extract(epoch FROM k.expires_at) * 1000)::float8 AS expires_at, ag.cidr,
         ${senderRefusalSql({ agentStatus: 'ag.status', keyStatus: 'k.status', unexpired: 'k.expires_at > to_timestamp($2::float8 / 1000.0)', inOverlap: 'k.superseded_until > to_timestamp($2::float8 / 1000.0)' })} AS refusal,
         EXISTS (SELECT 1 FROM seen_messages s WHERE s.sig_kid = k.sig_kid AND s.message_id = decode($3::text, 'hex')) AS seen
  FROM agent_keys k JOIN agents ag ON ag.id = k.agent_id
  WHERE k.sig_kid = $1::text`;

/**
 * One envelope, or one relayed object (spec §11), from `source` (the peer address). The source pays
 * one unit of its refusal budget up front, given back only when the message is stored: concurrent
 * refusals cannot outrun the budget. A relayed object's layers are verified first, outside in, at
 * the source's expense; once they hold, the envelope is paid for by the address the innermost relay
 * attests (its kid and the layer's `src`), not by the relay that speaks for many agents. `memo`
 * holds the relay lookups of one request (a batch looks each relay key up once).
 */
export async function ingestOne(deps: IngestDeps, input: unknown, source = 'unknown', memo: RelayMemo = new Map()): Promise<IngestResult> {
  const reserved = deps.limits.sourceRefusals.take(source);
  if (!reserved.ok) {
    deps.telemetry.count('messages_total', { outcome: 'rate_limited' });
    return {
      ok: false,
      error: new ProtocolError('rate_limited', 'too many refused messages from this address', {
        retryAfterSeconds: reserved.retryAfterSeconds,
      }),
    };
  }
  let env: ParsedEnvelope | undefined;
  let sender: SenderKeyFacts | undefined;
  /** Whose refusal budget holds this message's unit: the peer, then the attested source. */
  let payer = source;
  let path: RelayHop[] = [];
  // The key set the envelope is sealed to answers it (spec §14); the current one if none is.
  let addressed: ServerIdentity | undefined;
  try {
    let parsed: ParsedEnvelope;
    if (isRelayed(input)) {
      const relayed = parseRelayPath(input, deps.ctx.crypto);
      path = await verifyRelayPath(deps, relayed, source, memo);
      parsed = relayed.envelope;
      const first = relayed.layers[relayed.layers.length - 1]!;
      const attested = `relay:${first.relay}|${first.src ?? ''}`;
      const moved = deps.limits.sourceRefusals.take(attested);
      if (!moved.ok)
        throw new ProtocolError('rate_limited', 'too many refused messages from this address', {
          retryAfterSeconds: moved.retryAfterSeconds,
        });
      deps.limits.sourceRefusals.refund(source);
      payer = attested;
    } else {
      parsed = parseEnvelope(input);
    }
    env = parsed;
    const mid = fromB64u(env.header.mid);
    const cached = deps.senderKeys.get(env.header.snd);
    const known = cached ? { facts: cached } : await lookUpSender(deps, env.header.snd, mid, payer);
    sender = known.facts;
    await verifyEnvelopeSignature(deps.ctx, env, sender.sigPub);
    // A registered key that may no longer send: refused after its signature verified, so the
    // refusal is signed, and the agent can believe it (spec §10; §12, §13).
    if (known.refusal) throw new ProtocolError(known.refusal);
    // An externally provisioned agent bound to a network (§20) speaks from inside it only.
    // A stored network that no longer parses admits nobody (fail closed).
    if (sender.cidr !== undefined && (sender.cidr === null || !cidrContains(sender.cidr, source)))
      throw new ProtocolError('source_not_allowed');
    addressed = deps.keys.ring.byRecipient(env.header.rcp);
    if (!addressed) throw new ProtocolError('recipient_mismatch');
    const now = deps.ctx.now();
    // Expiry is immutable per key: checked from memory. Status is checked again when storing.
    if (sender.expiresAt <= now) throw new ProtocolError('key_expired');
    checkFreshness(env.header, now, sender.counterFloor, deps.policy.freshness);
    if (env.cred !== undefined) await checkCredential(deps, env.cred, env.header.snd, sender, now);
    if (env.header.typ !== 'inventory') throw new ProtocolError('payload_invalid', 'this endpoint takes inventory messages');
    // Legacy origin (§11.2): only a relay speaks for legacy agents, decided from the header, before opening.
    if (env.header.cty === LEGACY_CONTENT_TYPE && sender.role !== 'relay')
      throw new ProtocolError('relay_not_authorized', 'only a relay may submit legacy-origin inventories');
    checkBudgets(deps, sender.agentId, now);

    const { text, size, legacy } = await unsealInventory(deps.ctx, addressed.agreement, {
      env,
      senderAgreementKey: sender.kxPub,
      maxContentBytes: deps.policy.maxContentBytes,
      gunzip: deps.gunzip,
    });

    const binding = envelopeDigest(env, deps.ctx.crypto);
    const stored = await store(deps, env, sender, mid, text, size, now, binding, path, legacy);
    // Stored: the agent pays for it, and the source gets its reservation back.
    deps.limits.messages.take(sender.agentId);
    deps.limits.sourceRefusals.refund(payer);
    deps.telemetry.count('messages_total', { outcome: 'accepted' });
    deps.telemetry.count('message_bytes_total', { outcome: 'accepted' }, size);
    const body = await receiptBody(
      deps.ctx,
      {
        mid: env.header.mid,
        snd: env.header.snd,
        env: b64u(binding),
        status: 'accepted',
        rat: now,
        ...(await withDirectives(deps, sender, stored, now, addressed, env.cred)),
      },
      sender.kxPub,
    );
    return { ok: true, receipt: { body, signer: addressed.signing }, agentId: sender.agentId };
  } catch (err) {
    if (!(err instanceof ProtocolError)) {
      // Not the message's fault (the database, say): the source is not charged for it either.
      deps.limits.sourceRefusals.refund(payer);
      throw err;
    }
    const code = err.code;
    deps.telemetry.count('messages_total', { outcome: code });
    // A signed rejection whenever we know whom it answers (the sender's key is registered).
    const receipt: ReceiptDraft | undefined =
      env && sender
        ? {
            body: await receiptBody(deps.ctx, {
              mid: env.header.mid,
              snd: env.header.snd,
              env: b64u(envelopeDigest(env, deps.ctx.crypto)),
              status: 'rejected',
              code,
              rat: deps.ctx.now(),
            }),
            signer: (addressed ?? deps.identity).signing,
          }
        : undefined;
    return {
      ok: false,
      error: new ProtocolError(code, err.message, { retryAfterSeconds: err.retryAfterSeconds }),
      ...(receipt ? { receipt } : {}),
    };
  }
}

/**
 * First message from a key on this instance: one query for the key, its agent and the message id.
 * Only a key in good standing is remembered among the senders. A key refused here is refused from
 * memory for a short while: an unknown key at once; a registered one (revoked, expired) once its
 * envelope's signature verifies, so that its refusal is signed. Lookups that find nothing usable
 * are budgeted per source (budgetedLookup: only a lookup that finds no usable key is spent), so a
 * flood of unknown keys costs the database a bounded number of queries.
 */
async function lookUpSender(
  deps: IngestDeps,
  kid: string,
  mid: Uint8Array,
  source: string,
): Promise<{ facts: SenderKeyFacts; refusal?: ProtocolErrorCode }> {
  const now = deps.ctx.now();
  const refused = deps.limits.refusedKeys.get(kid);
  if (refused) {
    if (refused.until > now) {
      if (!refused.facts) throw new ProtocolError(refused.code);
      return { facts: refused.facts, refusal: refused.code };
    }
    deps.limits.refusedKeys.delete(kid);
  }
  const row = await budgetedLookup(
    deps.limits.sourceLookups,
    source,
    async () => {
      const found = (await deps.senderLookup([kid, now, hex(mid)]))[0];
      // Nobody registered this key: the external key source may know it (§20.2), within this lookup's budget.
      if (found || !deps.keyRequest || !(await deps.keyRequest(kid, source))) return found;
      return (await deps.senderLookup([kid, now, hex(mid)]))[0];
    },
    (found) => found !== undefined && !found.refusal,
  );
  if (!row) {
    deps.limits.refusedKeys.set(kid, { code: 'key_unknown', until: now + deps.policy.refusedKeyTtlMs });
    throw new ProtocolError('key_unknown');
  }
  const facts: SenderKeyFacts = {
    agentId: String(row.agent_id),
    sigPub: new Uint8Array(row.sig_pub as Uint8Array),
    kxPub: new Uint8Array(row.kx_pub as Uint8Array),
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    counterFloor: Number(row.max_counter),
    role: row.role === 'relay' ? 'relay' : 'agent',
    ...(typeof row.cidr === 'string' ? { cidr: parseCidr(row.cidr) ?? null } : {}),
  };
  const refusal = (row.refusal as ProtocolErrorCode | null) ?? undefined;
  if (refusal) {
    deps.limits.refusedKeys.set(kid, { code: refusal, until: now + deps.policy.refusedKeyTtlMs, facts });
    return { facts, refusal };
  }
  if (row.seen === true) throw new ProtocolError('replay_detected');
  deps.senderKeys.set(kid, facts);
  return { facts };
}

/**
 * The envelope's `cred`, when present (§7): a credential this server issued, unexpired, naming the
 * sender's agent and keys. One verification per key and credential: the verified JWT is remembered
 * with the key's facts until it expires.
 */
async function checkCredential(deps: IngestDeps, jwt: string, kid: string, sender: SenderKeyFacts, now: number): Promise<void> {
  if (sender.credential?.jwt === jwt && sender.credential.expiresAt > now) return;
  // Issued under any accepted key set (a credential names its signer by kid and issuer fingerprint).
  const issuer = deps.keys.ring.bySigningKid(credentialKid(jwt)) ?? deps.identity;
  const claims = await verifyCredential(jwt, issuer.signing, issuer.fingerprint, now);
  const cnf = claims.cnf;
  if (claims.sub !== sender.agentId || cnf.sig_kid !== kid || cnf.sig !== b64u(sender.sigPub) || cnf.kx !== b64u(sender.kxPub)) {
    throw new ProtocolError('credential_invalid');
  }
  sender.credential = { jwt, expiresAt: claims.exp * 1000 };
}

/**
 * The agent's budgets, looked at before opening: its message budget (charged when a message is
 * stored) and whether its stored-bytes budget was last found spent. Neither is charged here.
 */
function checkBudgets(deps: IngestDeps, agentId: string, now: number): void {
  const m = deps.limits.messages.peek(agentId);
  if (!m.ok) throw new ProtocolError('rate_limited', 'message rate exceeded for this agent', { retryAfterSeconds: m.retryAfterSeconds });
  const until = deps.limits.byteBudgetSpent.get(agentId);
  if (until === undefined) return;
  if (until > now)
    throw new ProtocolError('rate_limited', 'byte budget exceeded for this agent', {
      retryAfterSeconds: Math.max(1, Math.ceil((until - now) / 1000)),
    });
  deps.limits.byteBudgetSpent.delete(agentId);
}

/**
 * Stores the message if, inside the storing statement, its key and agent are still active and
 * unexpired, its counter is within the window, its id is new and the agent's stored-bytes budget
 * holds it; otherwise says why not.
 */
async function store(
  deps: IngestDeps,
  env: ParsedEnvelope,
  sender: SenderKeyFacts,
  mid: Uint8Array,
  inventoryJson: string,
  size: number,
  now: number,
  binding: Uint8Array,
  path: RelayHop[],
  legacy: StoreItem['legacy'],
): Promise<{ sendIntervalSeconds: number | null; renewRequested: boolean }> {
  const kid = env.header.snd;
  const { byteBurst, bytesPerSecond } = deps.policy;
  let v: StoreVerdict;
  try {
    v = await deps.batcher.store({
      kid,
      mid,
      counter: env.header.ctr,
      window: deps.policy.freshness.counterWindow,
      at: now,
      agentId: sender.agentId,
      size,
      byteBurst,
      bytesPerSecond,
      json: inventoryJson,
      env: binding,
      path: JSON.stringify(path),
      ...(legacy ? { legacy } : {}),
    });
  } catch (err) {
    // The batcher retries a failing statement message by message, so this one is this message's.
    if (isUnstorableValueError(err))
      throw new ProtocolError('payload_invalid', 'inventory cannot be stored: a value is out of range or nested too deeply');
    throw err;
  }
  if (v.maxCounter > sender.counterFloor) sender.counterFloor = v.maxCounter;
  switch (v.refusal) {
    case undefined:
      break;
    case 'rate_limited': {
      const seconds = Math.max(1, Math.ceil((v.byteBudgetNeed - byteBurst) / bytesPerSecond));
      if (size <= byteBurst) deps.limits.byteBudgetSpent.set(sender.agentId, now + seconds * 1000);
      throw new ProtocolError('rate_limited', 'byte budget exceeded for this agent', { retryAfterSeconds: seconds });
    }
    case 'stale_message':
      throw new ProtocolError('stale_message', 'counter is below the window');
    case 'replay_detected':
      throw new ProtocolError('replay_detected');
    default:
      // The key or its agent may no longer send: the next message from this key takes the full
      // lookup path, and is refused (signed) once its signature verifies.
      deps.senderKeys.delete(kid);
      throw new ProtocolError(v.refusal);
  }
  if (env.header.ctr > sender.counterFloor) sender.counterFloor = env.header.ctr;
  return { sendIntervalSeconds: v.sendIntervalSeconds, renewRequested: v.renewRequested };
}

/**
 * The receipt's directives: the agent's send interval; `renewNow` when an admin asked for it
 * (`latchkey agents renew-now`, until the agent renews), when little of the key's lifetime is left,
 * or when its credential was issued under a previous server key set; `serverKey` for an agent still
 * addressing a previous key set.
 */
async function withDirectives(
  deps: IngestDeps,
  sender: SenderKeyFacts,
  stored: { sendIntervalSeconds: number | null; renewRequested: boolean },
  now: number,
  addressed: ServerIdentity,
  cred: string | undefined,
): Promise<{ directives?: Directives }> {
  const d: Directives = {};
  // A credential issued under a previous key set stops working when that set is dropped: renew.
  const { ring } = deps.keys;
  if (cred !== undefined && ring.accepted.length > 1) {
    const issuer = credentialKid(cred);
    if (issuer !== ring.current.signing.kid && issuer !== ring.next?.signing.kid) d.renewNow = true;
  }
  // An agent still on a previous key set is shown the way to the current one (spec §14).
  const endorsements = await directiveChain(deps.keys, addressed);
  if (endorsements) {
    const { current } = deps.keys.ring;
    d.serverKey = { sig: b64u(current.signing.publicKey), kx: b64u(current.agreement.publicKey), fp: current.fingerprint, endorsements };
  }
  if (stored.sendIntervalSeconds) d.sendIntervalSeconds = stored.sendIntervalSeconds;
  const lifetime = sender.expiresAt - sender.createdAt;
  if (stored.renewRequested || (lifetime > 0 && sender.expiresAt - now < lifetime * deps.policy.renewWhenRemaining)) d.renewNow = true;
  return Object.keys(d).length ? { directives: d } : {};
}

function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += (x < 16 ? '0' : '') + x.toString(16);
  return s;
}
