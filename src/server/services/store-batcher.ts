// Stores accepted messages, coalescing those that arrive together into one statement and one
// transaction (group commit, done by the application). Under load this halves PostgreSQL's work
// per message and the server's round trips; alone, a message goes out at once and waits for nothing.
//
// Every message is still decided on its own: its key's and agent's status, expiry, counter window
// and replay record are checked per row inside the statement, and a message is answered only after
// the transaction holding it has committed. Two messages with the same key and id never share a
// statement (the second waits for the next one, and then reads as a replay). If a statement fails,
// each of its messages is retried alone, so one message can never make another fail.
import { isDatabaseFault } from '../../db/faults.js';
import type { Row } from '../../db/database.js';

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
  size: number;
  /** The inventory: JSON text, already parsed and validated by the caller. */
  json: string;
}

/** What the statement saw for one message; undefined when no key of that id belongs to the agent. */
export interface StoreVerdict {
  keyStatus: string;
  agentStatus: string;
  unexpired: boolean;
  /** Highest accepted counter before this statement. */
  maxCounter: number;
  sendIntervalSeconds: number | null;
  /** The replay record, the inventory, the counter and last-seen were written. */
  inserted: boolean;
}

/**
 * One row per message in $1, a JSON array: {n, k, m (hex), c, w, at, a, s, i (the inventory)}.
 * Data-modifying CTEs run in one snapshot and commit together.
 */
export const STORE_BATCH_SQL = `
  WITH input AS (
    SELECT * FROM jsonb_to_recordset($1::text::jsonb)
      AS t(n int, k text, m text, c bigint, w bigint, at bigint, a text, s int, i jsonb)
  ), k AS (
    SELECT input.n, k.status AS key_status, ag.status AS agent_status,
           k.expires_at > to_timestamp(input.at / 1000.0) AS unexpired, k.max_counter, ag.send_interval_seconds
    FROM input
    JOIN agent_keys k ON k.sig_kid = input.k AND k.agent_id = input.a
    JOIN agents ag ON ag.id = k.agent_id
  ), seen AS (
    INSERT INTO seen_messages (sig_kid, message_id, counter, received_at)
    SELECT input.k, decode(input.m, 'hex'), input.c, to_timestamp(input.at / 1000.0)
    FROM input JOIN k USING (n)
    WHERE k.key_status = 'active' AND k.agent_status = 'active' AND k.unexpired AND input.c > k.max_counter - input.w
    ON CONFLICT DO NOTHING
    RETURNING sig_kid, message_id
  ), accepted AS (
    SELECT input.* FROM input JOIN seen ON seen.sig_kid = input.k AND seen.message_id = decode(input.m, 'hex')
  ), counter AS (
    UPDATE agent_keys SET max_counter = GREATEST(agent_keys.max_counter, m.c)
    FROM (SELECT k, max(c) AS c FROM accepted GROUP BY k) m
    WHERE agent_keys.sig_kid = m.k
    RETURNING 1
  ), stored AS (
    INSERT INTO inventories (agent_id, message_id, received_at, size, content)
    SELECT a, decode(m, 'hex'), to_timestamp(at / 1000.0), s, i FROM accepted
    RETURNING 1
  ), seen_at AS (
    UPDATE agents SET last_seen_at = m.at
    FROM (SELECT a, to_timestamp(max(at) / 1000.0) AS at FROM accepted GROUP BY a) m
    WHERE agents.id = m.a
    RETURNING 1
  )
  SELECT input.n, k.key_status, k.agent_status, k.unexpired, k.max_counter::text AS max_counter,
         k.send_interval_seconds, EXISTS (SELECT 1 FROM accepted WHERE accepted.n = input.n) AS inserted
  FROM input LEFT JOIN k USING (n)`;

interface Pending {
  item: StoreItem;
  /** The message id in hex, as the statement takes it; also the batch's duplicate key with kid. */
  midHex: string;
  resolve(v: StoreVerdict | undefined): void;
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

export class StoreBatcher {
  private queue: Pending[] = [];
  private inFlight = 0;

  constructor(
    private readonly run: (params: readonly unknown[]) => Promise<Row[]>,
    private readonly opts: BatcherOptions = DEFAULT_BATCHER_OPTIONS,
  ) {}

  store(item: StoreItem): Promise<StoreVerdict | undefined> {
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
    try {
      rows = await this.run([encodeBatch(batch)]);
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

function verdictOf(row: Row | undefined): StoreVerdict | undefined {
  if (!row || row.key_status === null || row.key_status === undefined) return undefined;
  return {
    keyStatus: String(row.key_status),
    agentStatus: String(row.agent_status),
    unexpired: row.unexpired === true,
    maxCounter: Number(row.max_counter),
    sendIntervalSeconds: row.send_interval_seconds === null || row.send_interval_seconds === undefined ? null : Number(row.send_interval_seconds),
    inserted: row.inserted === true,
  };
}

/**
 * The batch as one JSON text. Inventories go in as their own (validated) JSON text, so nothing is
 * serialised twice; every other field is a number or goes through JSON.stringify.
 */
function encodeBatch(batch: readonly Pending[]): string {
  const parts = batch.map(
    ({ item: it, midHex }, n) =>
      `{"n":${n},"k":${JSON.stringify(it.kid)},"m":"${midHex}","c":${int(it.counter)},"w":${int(it.window)},"at":${int(it.at)},"a":${JSON.stringify(it.agentId)},"s":${int(it.size)},"i":${it.json}}`,
  );
  return `[${parts.join(',')}]`;
}

function int(x: number): string {
  if (!Number.isSafeInteger(x)) throw new RangeError('not a safe integer');
  return String(x);
}

function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += (x < 16 ? '0' : '') + x.toString(16);
  return s;
}
