// Stores accepted messages, coalescing those that arrive together into one statement and one
// transaction (group commit, done by the application). Under load this halves PostgreSQL's work
// per message and the server's round trips; alone, a message goes out at once and waits for nothing.
//
// Every message is still decided on its own: its key's and agent's status, expiry, counter window,
// replay record and the agent's stored-bytes budget are checked per row inside the statement, and a
// message is answered only after the transaction holding it has committed. Two messages with the
// same key and id never share a statement (the second waits for the next one, and then reads as a
// replay). If a statement fails, each of its messages is retried alone, so one message can never
// make another fail.
import { isDatabaseFault } from '../../db/faults.js';
import type { Row } from '../../db/database.js';
import type { ProtocolErrorCode } from '../../protocol/errors.js';
import { OUTBOX_CTE } from './forward-outbox.js';
import { counterInWindowSql, senderRefusalSql } from './sender-rules.js';

export interface StoreItem {
  /** Sender's Ed25519 key id. */
  kid: string;
  /** Message id, 16 bytes. */
  mid: Uint8Array;
  counter: number;
  /** Counter window W: refused when counter ≤ highest − W. */
  window: number;
  /** Received-at, ms since the epoch. */
  at: number;
  agentId: string;
  /** Bytes stored: the inventory's JSON text, decompressed. What the byte budget counts. */
  size: number;
  /** The agent's stored-bytes budget: at most this many bytes at once… */
  byteBurst: number;
  /** …draining at this many bytes per second. */
  bytesPerSecond: number;
  /** The inventory: JSON text, already parsed and validated by the caller. */
  json: string;
  /** The envelope binding (§10 `env`, 32 bytes), kept with the replay record for GET /v1/receipts. */
  env?: Uint8Array;
  /** The verified relay path (spec §11) as JSON text, outer → inner; absent or [] when sent directly. */
  path?: string;
  /**
   * Legacy origin (spec §11.2): the legacy agent the inventory is stored under (created on first
   * sight; its replacement once adopted), what the relay said of it, and the XML as sent.
   */
  legacy?: { agentId: string; meta: { id: string; protocol: string; cty: string }; raw?: string };
}

/** What the statement decided for one message. */
export interface StoreVerdict {
  /**
   * Why it was not stored (agent_revoked, key_revoked, key_expired, key_unknown, stale_message,
   * replay_detected, rate_limited); undefined when it was stored.
   */
  refusal?: ProtocolErrorCode;
  /** Highest accepted counter before this statement (0 when the key is unknown). */
  maxCounter: number;
  sendIntervalSeconds: number | null;
  /** An admin asked this agent to renew (agents.renew_requested_at is set): `renewNow` in its receipt. */
  renewRequested: boolean;
  /** Bytes the agent's budget would hold with this message; over byteBurst when refused for it. */
  byteBudgetNeed: number;
}

const refusal = senderRefusalSql({
  agentStatus: 'ag.status',
  keyStatus: 'k.status',
  unexpired: 'k.expires_at > to_timestamp(input.at / 1000.0)',
  inOverlap: 'k.superseded_until > to_timestamp(input.at / 1000.0)',
});
/** The agent's budget level at a time: what it held at byte_budget_used_at, drained since. */
const budgetLevel = (row: string, at: string, rate: string) =>
  `GREATEST(0, ${row}.byte_budget_used - GREATEST(0, EXTRACT(EPOCH FROM ${at} - COALESCE(${row}.byte_budget_used_at, ${at}))) * ${rate})`;

/**
 * One row per message in $1, a JSON array: {n, k, m (hex), c, w, at, a, s, bb, br, i (the inventory)}, and for a
 * legacy-origin one (spec §11.2) o (the legacy agent), l (its id, protocol, body type) and r (its XML).
 * Data-modifying CTEs run in one snapshot and commit together. The agents' rows are locked first,
 * in id order (one order for every statement, so two never deadlock), and read as last committed:
 * the stored-bytes budget holds across statements and instances. Within a statement, each agent's
 * storable messages are charged in order (a running sum), and only messages actually stored are
 * charged: a replay or a stale copy costs its agent nothing. Each stored inventory is queued in the
 * GLPI forwarding outbox for every active target by the same statement (forward-outbox.ts).
 */
export const STORE_BATCH_SQL = `
  WITH input AS (
    SELECT * FROM jsonb_to_recordset($1::text::jsonb)
      AS t(n int, k text, m text, c bigint, w bigint, at bigint, a text, s bigint, bb float8, br float8, e text, p jsonb, i jsonb,
           o text, l jsonb, r text)
  ), ag AS (
    SELECT id, status, send_interval_seconds, renew_requested_at, byte_budget_used, byte_budget_used_at FROM agents
    WHERE id IN (SELECT a FROM input) ORDER BY id FOR UPDATE
  ), k AS (
    SELECT input.n, input.a, input.bb, ${refusal} AS refusal,
           ${counterInWindowSql('input.c', 'k.max_counter', 'input.w')} AS in_window,
           EXISTS (SELECT 1 FROM seen_messages WHERE sig_kid = input.k AND message_id = decode(input.m, 'hex')) AS seen_before,
           ${budgetLevel('ag', 'to_timestamp(input.at / 1000.0)', 'input.br')} AS budget_level,
           input.s, k.max_counter, ag.send_interval_seconds, ag.renew_requested_at
    FROM input
    JOIN agent_keys k ON k.sig_kid = input.k AND k.agent_id = input.a
    JOIN ag ON ag.id = k.agent_id
  ), charged AS (
    SELECT k.*, k.budget_level + sum(CASE WHEN k.refusal IS NULL AND k.in_window AND NOT k.seen_before THEN k.s ELSE 0 END)
             OVER (PARTITION BY k.a ORDER BY k.n) AS budget_need
    FROM k
  ), seen AS (
    INSERT INTO seen_messages (sig_kid, message_id, counter, received_at, env)
    SELECT input.k, decode(input.m, 'hex'), input.c, to_timestamp(input.at / 1000.0), decode(input.e, 'hex')
    FROM input JOIN charged USING (n)
    WHERE charged.refusal IS NULL AND charged.in_window AND NOT charged.seen_before AND charged.budget_need <= charged.bb
    ON CONFLICT DO NOTHING
    RETURNING sig_kid, message_id
  ), accepted AS (
    SELECT input.*, COALESCE(lg.replaced_by, input.o, input.a) AS owner
    FROM input JOIN seen ON seen.sig_kid = input.k AND seen.message_id = decode(input.m, 'hex')
    LEFT JOIN agents lg ON lg.id = input.o
  ), legacy AS (
    INSERT INTO agents (id, name, role, kind, legacy_id, legacy_protocol, created_at, last_seen_at, last_relay_id)
    SELECT DISTINCT ON (o) o, o, 'agent', 'legacy', l ->> 'id', l ->> 'protocol', to_timestamp(at / 1000.0), to_timestamp(at / 1000.0), a
    FROM accepted WHERE o IS NOT NULL ORDER BY o, n DESC
    ON CONFLICT (id) DO UPDATE SET last_seen_at = GREATEST(agents.last_seen_at, EXCLUDED.last_seen_at),
      legacy_protocol = EXCLUDED.legacy_protocol, last_relay_id = EXCLUDED.last_relay_id
    RETURNING 1
  ), counter AS (
    UPDATE agent_keys SET max_counter = GREATEST(agent_keys.max_counter, m.c)
    FROM (SELECT k, max(c) AS c FROM accepted GROUP BY k) m
    WHERE agent_keys.sig_kid = m.k
    RETURNING 1
  ), stored AS (
    INSERT INTO inventories (agent_id, message_id, received_at, size, content, path, legacy, raw)
    SELECT owner, decode(m, 'hex'), to_timestamp(at / 1000.0), s, i, p, l, r FROM accepted ORDER BY n
    RETURNING id, agent_id, received_at
  ), ${OUTBOX_CTE}, seen_at AS (
    UPDATE agents SET last_seen_at = m.at,
           byte_budget_used = round(${budgetLevel('agents', 'm.at', 'm.br')} + m.s),
           byte_budget_used_at = GREATEST(m.at, agents.byte_budget_used_at),
           last_path = m.p,
           last_relay_id = COALESCE(m.p -> -1 ->> 'agentId', agents.last_relay_id)
    FROM (SELECT a, to_timestamp(max(at) / 1000.0) AS at, sum(s) AS s, max(br) AS br, (array_agg(p ORDER BY n DESC))[1] AS p
          FROM accepted GROUP BY a) m
    WHERE agents.id = m.a
    RETURNING 1
  )
  SELECT input.n, charged.max_counter::text AS max_counter, charged.send_interval_seconds, charged.budget_need::float8 AS budget_need,
         charged.renew_requested_at IS NOT NULL AS renew_requested,
         CASE WHEN charged.n IS NULL THEN 'key_unknown'
              WHEN charged.refusal IS NOT NULL THEN charged.refusal
              WHEN NOT charged.in_window THEN 'stale_message'
              WHEN EXISTS (SELECT 1 FROM accepted WHERE accepted.n = input.n) THEN NULL
              WHEN NOT charged.seen_before AND charged.budget_need > charged.bb THEN 'rate_limited'
              ELSE 'replay_detected' END AS refusal
  FROM input LEFT JOIN charged USING (n)`;

interface Pending {
  item: StoreItem;
  /** The message id in hex, as the statement takes it; also the batch's duplicate key with kid. */
  midHex: string;
  resolve(v: StoreVerdict): void;
  reject(err: unknown): void;
}

export interface BatcherOptions {
  /** Most messages in one statement. */
  maxBatch: number;
  /** Most inventory bytes in one statement (a larger message goes alone). */
  maxBatchBytes: number;
  /** Most statements in flight at once (each holds a pooled connection). */
  maxInFlight: number;
}

export const DEFAULT_BATCHER_OPTIONS: BatcherOptions = { maxBatch: 64, maxBatchBytes: 2 * 1024 * 1024, maxInFlight: 2 };

/** Told of every statement the batcher ran: its messages and how long it took (metrics). */
export type BatchObserver = (messages: number, seconds: number) => void;

export class StoreBatcher {
  private queue: Pending[] = [];
  private inFlight = 0;

  constructor(
    private readonly run: (params: readonly unknown[]) => Promise<Row[]>,
    private readonly opts: BatcherOptions = DEFAULT_BATCHER_OPTIONS,
    private readonly observe?: BatchObserver,
  ) {}

  /** Statements running now, and messages waiting for one (read by /metrics at scrape time). */
  get load(): { statements: number; queued: number } {
    return { statements: this.inFlight, queued: this.queue.length };
  }

  store(item: StoreItem): Promise<StoreVerdict> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, midHex: hex(item.mid), resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.opts.maxInFlight && this.queue.length > 0) {
      const batch = this.take();
      this.inFlight++;
      void this.execute(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  /** The oldest messages, within maxBatch and maxBatchBytes, no two with the same key and id. */
  private take(): Pending[] {
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    const ids = new Set<string>();
    let bytes = 0;
    for (const p of this.queue) {
      const id = `${p.item.kid}.${p.midHex}`;
      const fits = batch.length === 0 || (batch.length < this.opts.maxBatch && bytes + p.item.json.length <= this.opts.maxBatchBytes);
      if (fits && !ids.has(id)) {
        ids.add(id);
        bytes += p.item.json.length;
        batch.push(p);
      } else {
        rest.push(p);
      }
    }
    this.queue = rest;
    return batch;
  }

  private async execute(batch: Pending[]): Promise<void> {
    let rows: Row[];
    const started = performance.now();
    try {
      rows = await this.run([encodeBatch(batch)]);
      this.observe?.(batch.length, (performance.now() - started) / 1000);
    } catch (err) {
      // An outage or a missed deadline is every message's, not one message's: no retry one by one.
      if (batch.length === 1 || isDatabaseFault(err)) return batch.forEach((p) => p.reject(err));
      // Retry alone, in arrival order: a message that cannot be stored fails by itself, and of two
      // with the same id the first still wins.
      for (const p of batch) await this.execute([p]);
      return;
    }
    const byRow = new Map<number, Row>();
    for (const r of rows) byRow.set(Number(r.n), r);
    batch.forEach((p, n) => p.resolve(verdictOf(byRow.get(n))));
  }
}

function verdictOf(row: Row | undefined): StoreVerdict {
  // A statement answers every row; a missing one would be a bug, refused as the safest code.
  if (!row) return { refusal: 'key_unknown', maxCounter: 0, sendIntervalSeconds: null, renewRequested: false, byteBudgetNeed: 0 };
  const v: StoreVerdict = {
    maxCounter: row.max_counter === null || row.max_counter === undefined ? 0 : Number(row.max_counter),
    sendIntervalSeconds:
      row.send_interval_seconds === null || row.send_interval_seconds === undefined ? null : Number(row.send_interval_seconds),
    renewRequested: row.renew_requested === true,
    byteBudgetNeed: Number(row.budget_need ?? 0),
  };
  if (typeof row.refusal === 'string') v.refusal = row.refusal as ProtocolErrorCode;
  return v;
}

/**
 * The batch as one JSON text. Inventories go in as their own (validated) JSON text, so nothing is
 * serialised twice; every other field is a number or goes through JSON.stringify.
 */
function encodeBatch(batch: readonly Pending[]): string {
  const parts = batch.map(
    ({ item: it, midHex }, n) =>
      `{${it.legacy ? `"o":${JSON.stringify(it.legacy.agentId)},"l":${JSON.stringify(it.legacy.meta)},"r":${it.legacy.raw === undefined ? 'null' : JSON.stringify(it.legacy.raw)},` : ''}"n":${n},"k":${JSON.stringify(it.kid)},"m":"${midHex}","c":${int(it.counter)},"w":${int(it.window)},"at":${int(it.at)},"a":${JSON.stringify(it.agentId)},"s":${int(it.size)},"bb":${num(it.byteBurst)},"br":${num(it.bytesPerSecond)},"e":${it.env ? `"${hex(it.env)}"` : 'null'},"p":${it.path ?? '[]'},"i":${it.json}}`,
  );
  return `[${parts.join(',')}]`;
}

function int(x: number): string {
  if (!Number.isSafeInteger(x)) throw new RangeError('not a safe integer');
  return String(x);
}

function num(x: number): string {
  if (!Number.isFinite(x) || x < 0) throw new RangeError('not a finite, non-negative number');
  return String(x);
}

function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += (x < 16 ? '0' : '') + x.toString(16);
  return s;
}
