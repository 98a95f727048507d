// In-memory token buckets keyed by string (per source address, per token id, per agent). Per
// instance: N instances allow up to N times the rate; state that must hold across instances
// (revocation, replay, token uses) is in the database, never here.
import { ProtocolError } from '../../protocol/errors.js';

export interface RateLimiterOptions {
  /** Bucket size: the burst allowed. */
  capacity: number;
  /** Tokens added per second. */
  refillPerSecond: number;
  /** Keys kept at most (oldest evicted first), so an attacker cannot grow memory without bound. */
  maxKeys?: number;
  /** Requests that may wait, per key, for reservations in flight to settle (see reserve). */
  maxWaitersPerKey?: number;
  /** The server's clock (ctx.now), so budgets can be tested without waiting. */
  now: () => number;
}

export interface Verdict {
  ok: boolean;
  retryAfterSeconds: number;
}

/**
 * A unit of budget taken before the caller awaits anything. The caller MUST settle it exactly once:
 * `settle(true)` keeps the charge (the attempt was a failure that counts), `settle(false)` refunds it.
 */
export interface Reservation {
  ok: true;
  settle(charge: boolean): void;
}

export interface RateLimiter {
  /** Takes `cost` tokens if available. */
  take(key: string, cost?: number): Verdict;
  /** Would `cost` tokens be available now? Takes nothing. */
  peek(key: string, cost?: number): Verdict;
  /**
   * Takes one token now, synchronously, so N concurrent callers can never together spend more than
   * the budget (a check before an await and a charge after it let 256 guesses through a budget of
   * 10). When the bucket is empty but reservations on this key are still in flight (and may be
   * refunded), waits for them to settle and tries again, so honest concurrent callers that end up
   * refunded are queued, not refused.
   */
  reserve(key: string): Promise<Reservation | (Verdict & { ok: false })>;
  /** Gives back `cost` tokens taken earlier (a charge that turned out not to be owed), up to capacity. */
  refund(key: string, cost?: number): void;
}

export function createRateLimiter(opts: RateLimiterOptions): RateLimiter {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const inFlight = new Map<string, { count: number; waiters: (() => void)[] }>();
  const maxKeys = opts.maxKeys ?? 100_000;
  const maxWaiters = opts.maxWaitersPerKey ?? 256;
  const { now } = opts;

  const current = (key: string) => {
    const t = now();
    const b = buckets.get(key);
    const tokens = b ? Math.min(opts.capacity, b.tokens + ((t - b.at) / 1000) * opts.refillPerSecond) : opts.capacity;
    return { tokens, t };
  };
  const verdict = (tokens: number, cost: number): Verdict => ({
    ok: tokens >= cost,
    retryAfterSeconds: tokens >= cost ? 0 : Math.max(1, Math.ceil((cost - tokens) / opts.refillPerSecond)),
  });
  const store = (key: string, tokens: number, t: number) => {
    buckets.delete(key);
    buckets.set(key, { tokens, at: t });
    if (buckets.size > maxKeys) buckets.delete(buckets.keys().next().value!);
  };
  const take = (key: string, cost = 1): Verdict => {
    const { tokens, t } = current(key);
    const v = verdict(tokens, cost);
    store(key, v.ok ? tokens - cost : tokens, t);
    return v;
  };

  return {
    peek(key, cost = 1) {
      return verdict(current(key).tokens, cost);
    },
    take,
    refund(key, cost = 1) {
      if (!buckets.has(key)) return; // evicted or never taken: the bucket is full anyway
      const { tokens, t } = current(key);
      store(key, Math.min(opts.capacity, tokens + cost), t);
    },
    async reserve(key) {
      for (;;) {
        const v = take(key);
        const flight = inFlight.get(key);
        if (v.ok) {
          const f = flight ?? { count: 0, waiters: [] };
          f.count++;
          inFlight.set(key, f);
          let settled = false;
          return {
            ok: true,
            settle(charge) {
              if (settled) return;
              settled = true;
              if (!charge) {
                const { tokens, t } = current(key);
                store(key, Math.min(opts.capacity, tokens + 1), t);
              }
              if (--f.count === 0) inFlight.delete(key);
              for (const wake of f.waiters.splice(0)) wake();
            },
          };
        }
        if (!flight || flight.waiters.length >= maxWaiters) return { ...v, ok: false };
        await new Promise<void>((resolve) => flight.waiters.push(resolve));
      }
    },
  };
}

export interface RefusalWindow {
  count: number;
  /** ms since the epoch: the first and the last refusal counted. */
  from: number;
  to: number;
}

/**
 * Coalesces refusals for the audit log: one report per key and window, with the count, instead of
 * one row per refused request (which would let a flood of refused requests grow the log at will).
 * The report is made when the window ends (a timer, or the key's next refusal after it, or flush).
 */
export interface RefusalCoalescer {
  note(key: string, report: (window: RefusalWindow) => void): void;
  /** Reports every open window now (shutdown). */
  flush(): void;
}

export function createRefusalCoalescer(opts: { windowMs: number; maxKeys?: number; now: () => number }): RefusalCoalescer {
  const open = new Map<string, RefusalWindow & { report: (w: RefusalWindow) => void; timer: ReturnType<typeof setTimeout> }>();
  const maxKeys = opts.maxKeys ?? 10_000;
  const { now } = opts;

  const close = (key: string) => {
    const w = open.get(key);
    if (!w) return;
    open.delete(key);
    clearTimeout(w.timer);
    w.report({ count: w.count, from: w.from, to: w.to });
  };

  return {
    note(key, report) {
      const t = now();
      const w = open.get(key);
      if (w && t - w.from < opts.windowMs) {
        w.count++;
        w.to = t;
        return;
      }
      if (w) close(key);
      const timer = setTimeout(() => close(key), opts.windowMs);
      (timer as { unref?: () => void }).unref?.();
      open.set(key, { count: 1, from: t, to: t, report, timer });
      if (open.size > maxKeys) close(open.keys().next().value!);
    },
    flush() {
      for (const key of [...open.keys()]) close(key);
    },
  };
}

/**
 * Runs a key lookup on a source's lookup budget: a unit reserved before the query (rate-limiter's
 * reserve), kept only when the lookup found nothing usable, given back otherwise and when the query
 * itself failed. Only lookups that find nothing usable are spent, so a flood of unknown keys costs the
 * database a bounded number of queries; honest lookups beyond the burst (a relay's batch of agents
 * this instance has not seen yet, after a restart) wait for those in flight instead of being refused.
 */
export async function budgetedLookup<T>(
  lookups: RateLimiter,
  source: string,
  query: () => Promise<T>,
  usable: (found: T) => boolean,
): Promise<T> {
  const seat = await lookups.reserve(source);
  if (!seat.ok)
    throw new ProtocolError('rate_limited', 'too many lookups of unknown keys from this address', {
      retryAfterSeconds: seat.retryAfterSeconds,
    });
  let charge = false;
  try {
    const found = await query();
    charge = !usable(found);
    return found;
  } finally {
    seat.settle(charge);
  }
}
