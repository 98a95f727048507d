// Forwarding the spool upstream (spec/PROTOCOL.md §11): oldest first, in batches of at most 100
// envelopes or 2 MiB, a few requests in flight, each envelope wrapped in this relay's signed layer.
// An envelope leaves the spool only when the server's signed receipt for it (verified with the pinned
// server key and bound to the envelope, §10; for a batch, the one batch receipt that answers it,
// verified once, §10.1) has been kept, or when upstream refused it for good
// without one (moved aside to refused/), or when it aged past the freshness window (expired/).
// While upstream is away: exponential backoff with full jitter, 0.5 s doubling to 60 s.
// Upstream may be another relay: it answers "queued" and the receipt is collected from it later
// (GET /v1/receipts/{snd}/{mid}); an envelope handed off that long without a receipt is sent again
// (harmless: each relay dedups on (snd, mid) and the server on the message id).
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { DEFAULT_FRESHNESS } from '../protocol/envelope.js';
import { batchProof, batchReceiptKids, verifyBatchAnswer } from '../protocol/batch-receipt.js';
import type { ServerPublicKeys } from '../protocol/enrollment.js';
import { fromB64uExact, utf8 } from '../protocol/bytes.js';
import { verifiedReceiptBody } from '../protocol/receipt.js';
import { endpoint, exchange, type HttpAnswer } from '../agent/http.js';
import type { Logger } from '../server/logger.js';
import { isRelayed, wrapRelayed } from '../protocol/relay.js';
import type { RelayServerKeys } from './server-keys.js';
import type { Spool, SpoolEntry, SpoolRecord } from './spool.js';

export const MAX_BATCH_ENVELOPES = 100;
export const MAX_BATCH_BYTES = 2 * 1024 * 1024;
// The server reserves one unit of the sending address's refusal budget per envelope while it is
// being judged (DEFAULT_INGEST_POLICY.sourceRefusalBurst, 256): 3 x 100 in flight overdrew it and
// came back as unsigned rate_limited refusals, resent later (every envelope wrapped and signed
// again, 2.7 times on average in the bench). Two batches keep the server busy (one judged while the
// other travels) within that budget.
export const MAX_IN_FLIGHT = 2;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 60_000;
/** Resend an envelope an upstream relay queued when no receipt came back in this long. */
const HANDOFF_RESEND_MS = 10 * 60_000;
/** Answers upstream may give without a receipt that are worth trying again. */
const TRANSIENT = new Set(['rate_limited', 'unavailable', 'relay_full', 'internal_error', 'not_found']);

/** What became of an envelope, for a request still waiting on it. */
export type Settled = { receipt: unknown; status: 'accepted' | 'rejected'; code?: string };
export type Outcome = Settled | { refused: string };
/** One envelope's fate in an upstream answer: judged (verified; undefined when its receipt does not verify), queued, or refused. */
type Item = { kind: 'judged'; settled: Settled | undefined } | { kind: 'queued' } | { kind: 'refused'; code: string };

export interface RelayIdentity {
  privateKey: Uint8Array;
  kid: string;
  credential: string;
}

export interface ForwarderDeps {
  ctx: ProtocolContext;
  spool: Spool;
  upstream: string;
  identity: () => RelayIdentity;
  keys: RelayServerKeys;
  logger: Logger;
  /** forwarded (by outcome), expired, refused upstream (by code). */
  count: (name: 'forwarded' | 'expired' | 'upstream_refused', label: string) => void;
}

export class Forwarder {
  private readonly inFlight = new Set<string>();
  private readonly retryAt = new Map<string, number>();
  /** Envelopes the server answered with a signed rate_limited, and how many times in a row. */
  private readonly limited = new Map<string, number>();
  /** Queued by an upstream relay: when to ask it for the receipt next, and since when. */
  private readonly handedOff = new Map<string, { pollAt: number; since: number; polls: number }>();
  private readonly waiters = new Map<string, ((o: Outcome) => void)[]>();
  private requests = 0;
  private failures = 0;
  private upstreamRetryAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private pumping = false;
  private stopped = false;

  constructor(private readonly deps: ForwarderDeps) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), 250);
    this.timer.unref();
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    while (this.requests > 0) await new Promise((r) => setTimeout(r, 20));
  }

  /** Upstream failed recently and is being waited out. */
  upstreamAway(): boolean {
    return this.failures > 0 && this.deps.ctx.now() < this.upstreamRetryAt;
  }

  /** Resolves with the outcome for `key`, or undefined after `ms`. */
  waitFor(key: string, ms: number): Promise<Outcome | undefined> {
    return new Promise((resolve) => {
      const list = this.waiters.get(key) ?? [];
      const done = (o: Outcome | undefined) => {
        clearTimeout(t);
        const l = this.waiters.get(key);
        if (l) {
          const i = l.indexOf(done as (o: Outcome) => void);
          if (i >= 0) l.splice(i, 1);
          if (l.length === 0) this.waiters.delete(key);
        }
        resolve(o);
      };
      const t = setTimeout(() => done(undefined), ms);
      list.push(done as (o: Outcome) => void);
      this.waiters.set(key, list);
    });
  }

  private resolve(key: string, o: Outcome): void {
    for (const w of [...(this.waiters.get(key) ?? [])]) w(o);
  }

  /** Ends the wait on `key` without an outcome. */
  private release(key: string): void {
    for (const w of [...(this.waiters.get(key) ?? [])]) (w as (o: Outcome | undefined) => void)(undefined);
  }

  kick(): void {
    if (this.pumping || this.stopped) return;
    this.pumping = true;
    void this.pump()
      .catch((err: unknown) => this.deps.logger.error({ err: (err as Error).message }, 'relay forwarding failed'))
      .finally(() => (this.pumping = false));
  }

  private async pump(): Promise<void> {
    const now = this.deps.ctx.now();
    await this.pollHandedOff(now);
    if (now < this.upstreamRetryAt) return;
    while (this.requests < MAX_IN_FLIGHT) {
      const batch = await this.nextBatch(this.deps.ctx.now());
      if (batch.length === 0) return;
      for (const e of batch) this.inFlight.add(e.key);
      this.requests++;
      void this.send(batch)
        .catch((err: unknown) => {
          this.deps.logger.warn({ err: (err as Error).message }, 'relay batch failed');
          this.failed(batch);
        })
        .finally(() => {
          for (const e of batch) this.inFlight.delete(e.key);
          this.requests--;
          if (this.failures === 0) this.kick();
        });
    }
  }

  /** The oldest ready envelopes; those past the freshness window are moved aside on the way. */
  private async nextBatch(now: number): Promise<SpoolEntry[]> {
    const batch: SpoolEntry[] = [];
    let bytes = 0;
    for (const e of this.deps.spool.list()) {
      if (this.inFlight.has(e.key) || this.handedOff.has(e.key) || (this.retryAt.get(e.key) ?? 0) > now) continue;
      if (e.record.iat < now - DEFAULT_FRESHNESS.maxAgeMs) {
        await this.deps.spool.moveAside(e.key, 'expired');
        this.deps.count('expired', 'expired');
        this.deps.logger.warn({ snd: e.record.snd, mid: e.record.mid }, 'relay: envelope past the freshness window moved to expired/');
        this.resolve(e.key, { refused: 'stale_message' });
        continue;
      }
      if (batch.length > 0 && (batch.length >= MAX_BATCH_ENVELOPES || bytes + e.bytes > MAX_BATCH_BYTES)) break;
      batch.push(e);
      bytes += e.bytes;
    }
    return batch;
  }

  private async wrap(record: SpoolRecord): Promise<unknown> {
    const me = this.deps.identity();
    return wrapRelayed(this.deps.ctx, {
      inner: record.object,
      relayKid: me.kid,
      relaySigningKey: me.privateKey,
      rat: record.rat,
      ...(record.src !== undefined ? { src: record.src.slice(0, 128) } : {}),
      cred: me.credential,
      // An envelope was parsed and checked on admission, and its digest D (= the receipt binding,
      // §10) kept in the record: no second parse. A relayed object is parsed again (hop and D).
      ...(isRelayed(record.object) ? {} : { envelopeDigest: fromB64uExact(record.env, 32) }),
    });
  }

  private async send(batch: SpoolEntry[]): Promise<void> {
    const envelopes = await Promise.all(batch.map((e) => this.wrap(e.record)));
    const request = JSON.stringify({ envelopes });
    const answer = await exchange(
      endpoint(this.deps.upstream, '/v1/messages'),
      { method: 'POST', body: request, headers: { 'content-type': 'application/json' } },
      { timeoutMs: 60_000 },
    );
    const items = answer.status === 200 ? await this.answers(batch, request, answer.json) : undefined;
    if (!items) {
      this.failed(batch, answer);
      return;
    }
    this.failures = 0;
    const settled: { key: string; receipt: unknown }[] = [];
    const outcomes: [string, Outcome][] = [];
    const now = this.deps.ctx.now();
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i]!;
      const r = items[i]!;
      if (r.kind === 'judged') {
        let checked: Settled | undefined = r.settled;
        // A copy of an envelope stored earlier (we resent after a crash, or another path delivered
        // it): the original receipt is the better proof for the agent (§11 "Exactly once").
        if (checked?.code === 'replay_detected') checked = (await this.fetchReceipt(e.record)) ?? checked;
        if (checked?.code === 'rate_limited') {
          // The server signed "not now" for this envelope (its sender's budget): keep it and retry later.
          const n = (this.limited.get(e.key) ?? 0) + 1;
          this.limited.set(e.key, n);
          this.retryAt.set(e.key, now + this.backoffMs(n + 1));
          this.release(e.key);
          continue;
        }
        if (checked) {
          settled.push({ key: e.key, receipt: checked.receipt });
          outcomes.push([e.key, checked]);
          continue;
        }
      } else if (r.kind === 'queued') {
        this.handedOff.set(e.key, { pollAt: now + 1000, since: now, polls: 0 });
        this.release(e.key);
        continue;
      } else if (r.kind === 'refused' && !TRANSIENT.has(r.code)) {
        const code = /^[a-z0-9_]{1,64}$/.test(r.code) ? r.code : 'unknown';
        await this.deps.spool.moveAside(e.key, 'refused', { code, at: now });
        this.deps.count('upstream_refused', code);
        this.deps.logger.warn({ snd: e.record.snd, mid: e.record.mid, code }, 'relay: upstream refused an envelope without a receipt');
        this.resolve(e.key, { refused: code });
        continue;
      }
      this.retryAt.set(e.key, now + this.backoffMs(1));
    }
    await this.deps.spool.settle(settled);
    for (const [key, o] of outcomes) {
      this.retryAt.delete(key);
      this.limited.delete(key);
      this.handedOff.delete(key);
      this.deps.count('forwarded', 'code' in o && o.code ? o.code : 'accepted');
      this.resolve(key, o);
    }
  }

  /**
   * What upstream said of each envelope of `batch`, in order; undefined when the answer as a whole
   * is not to be believed. The server answers with a batch receipt (§10.1), verified once: the
   * pinned key's signature, the request bytes we sent, one result per envelope in order, each bound
   * to its envelope; any mismatch leaves every envelope spooled. An upstream relay answers each
   * envelope on its own (the server's receipt or its share of a batch receipt, verified one by one,
   * or queued, or an unsigned error).
   */
  private async answers(batch: SpoolEntry[], request: string, json: unknown): Promise<Item[] | undefined> {
    const a = json as { batchReceipts?: unknown; results?: unknown } | undefined;
    if (a?.batchReceipts !== undefined) {
      try {
        const results = await this.withServerKey(a, (key) =>
          verifyBatchAnswer(this.deps.ctx.crypto, key, a, { request: utf8(request), items: batch.map((e) => e.record) }),
        );
        return results.map((r): Item => {
          if (r.status === 'refused') return { kind: 'refused', code: r.code ?? 'unknown' };
          const settled: Settled = {
            receipt: batchProof({ batchReceipts: a.batchReceipts }, r),
            status: r.status,
            ...(r.code !== undefined ? { code: r.code } : {}),
          };
          return { kind: 'judged', settled };
        });
      } catch {
        this.deps.logger.warn({ envelopes: batch.length }, 'relay: a batch answer from upstream does not verify; every envelope stays');
        return undefined;
      }
    }
    if (!Array.isArray(a?.results) || a.results.length !== batch.length) return undefined;
    const results = a.results as ({ receipt?: unknown; status?: unknown; error?: { code?: unknown } } | undefined)[];
    return Promise.all(
      results.map(async (r, i): Promise<Item> => {
        if (r?.receipt !== undefined) return { kind: 'judged', settled: await this.checkReceipt(batch[i]!.record, r.receipt) };
        if (r?.status === 'queued') return { kind: 'queued' };
        if (typeof r?.error?.code === 'string') return { kind: 'refused', code: r.error.code };
        return { kind: 'refused', code: 'unavailable' };
      }),
    );
  }

  /**
   * Runs `verify` with each trusted server key set that `signed` names (a receipt's kid, or those of
   * the batch receipts of an answer or a share): the pin or a set left behind by a rotation (§14),
   * looked up upstream when unknown. The first that verifies wins; none: the last failure.
   */
  private async withServerKey<T>(signed: unknown, verify: (key: ServerPublicKeys['signing']) => Promise<T>): Promise<T> {
    let failure: unknown = new Error('no trusted server key signed this');
    for (const kid of signerKids(signed)) {
      const set = await this.deps.keys.resolve(kid);
      if (!set) continue;
      try {
        return await verify(set.signing);
      } catch (err) {
        failure = err;
      }
    }
    throw failure;
  }

  /**
   * The server's receipt for this exact envelope (a receipt, or its share of a batch receipt), or
   * undefined (a forgery, someone else's, a bad shape).
   */
  private async checkReceipt(record: SpoolRecord, receipt: unknown): Promise<Settled | undefined> {
    try {
      // Signed by a key set the envelope may have been addressed to: the pin, or one left behind (§14).
      const b = await this.withServerKey(receipt, (key) => verifiedReceiptBody(this.deps.ctx.crypto, key, receipt, record));
      if (b.status !== 'accepted' && b.status !== 'rejected') throw new Error('status');
      return { receipt, status: b.status, ...(typeof b.code === 'string' ? { code: b.code } : {}) };
    } catch {
      this.deps.logger.warn({ snd: record.snd, mid: record.mid }, 'relay: a receipt from upstream does not verify; the envelope stays');
      return undefined;
    }
  }

  /** The server's receipt for this envelope from upstream (GET /v1/receipts/{snd}/{mid}), if it has one that verifies. */
  private async fetchReceipt(record: SpoolRecord): Promise<Settled | undefined> {
    const url = endpoint(this.deps.upstream, `/v1/receipts/${record.snd}/${record.mid}`);
    const answer = await exchange(url, { method: 'GET' }, { timeoutMs: 10_000 }).catch(() => undefined);
    if (answer?.status !== 200) return undefined;
    return this.checkReceipt(record, answer.json);
  }

  private backoffMs(failures: number): number {
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(failures, 20));
    return cap / 2 + Math.random() * (cap / 2);
  }

  private failed(batch: SpoolEntry[], answer?: HttpAnswer): void {
    // Whoever waits on these hears "not yet" at once: the relay answers with its acceptance.
    for (const e of batch) this.release(e.key);
    this.failures++;
    let wait = this.backoffMs(this.failures);
    if (answer?.retryAfterSeconds !== undefined) wait = Math.max(wait, Math.min(answer.retryAfterSeconds * 1000, 3600_000));
    this.upstreamRetryAt = this.deps.ctx.now() + wait;
    if (this.failures === 1 || this.failures % 10 === 0)
      this.deps.logger.warn(
        { status: answer?.status, envelopes: batch.length, retryInMs: Math.round(wait) },
        'relay: upstream away, backing off',
      );
  }

  /** Asks an upstream relay for receipts of envelopes it queued. */
  private async pollHandedOff(now: number): Promise<void> {
    const due = [...this.handedOff].filter(([, h]) => h.pollAt <= now).slice(0, 32);
    await Promise.all(
      due.map(async ([key, h]) => {
        const e = this.deps.spool.get(key);
        if (!e) return void this.handedOff.delete(key);
        if (now - h.since > HANDOFF_RESEND_MS) return void this.handedOff.delete(key);
        h.polls++;
        h.pollAt = now + Math.min(30_000, 1000 * 2 ** Math.min(h.polls, 5));
        const answer = await exchange(
          endpoint(this.deps.upstream, `/v1/receipts/${e.record.snd}/${e.record.mid}`),
          { method: 'GET' },
          { timeoutMs: 10_000 },
        ).catch(() => undefined);
        if (answer?.status !== 200) return;
        const checked = await this.checkReceipt(e.record, answer.json);
        if (!checked) return;
        await this.deps.spool.settle([{ key, receipt: answer.json }]);
        this.handedOff.delete(key);
        this.deps.count('forwarded', checked.code ?? 'accepted');
        this.resolve(key, checked);
      }),
    );
  }
}

/** The signing key ids an answer names: a receipt's own, or those of its batch receipts (at most a few). */
function signerKids(signed: unknown): string[] {
  const o = signed as { kid?: unknown; batchReceipts?: unknown } | null;
  return typeof o?.kid === 'string' ? [o.kid] : batchReceiptKids(o?.batchReceipts).slice(0, 4);
}
