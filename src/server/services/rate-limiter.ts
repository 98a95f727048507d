// In-memory token buckets keyed by string (per source address, per token id, per agent). Per
// instance: N instances allow up to N times the rate; state that must hold across instances
// (revocation, replay, token uses) is in the database, never here.

export interface RateLimiterOptions {
  /** Bucket size: the burst allowed. */
  capacity: number;
  /** Tokens added per second. */
  refillPerSecond: number;
  /** Keys kept at most (oldest evicted first), so an attacker cannot grow memory without bound. */
  maxKeys?: number;
  now?: () => number;
}

export interface RateLimiter {
  /** Takes `cost` tokens if available. */
  take(key: string, cost?: number): { ok: boolean; retryAfterSeconds: number };
  /** Would `cost` tokens be available now? Takes nothing. */
  peek(key: string, cost?: number): { ok: boolean; retryAfterSeconds: number };
  /** Gives back `cost` tokens taken earlier (a reservation that turned out not to be owed), up to capacity. */
  refund(key: string, cost?: number): void;
}

export function createRateLimiter(opts: RateLimiterOptions): RateLimiter {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const maxKeys = opts.maxKeys ?? 100_000;
  const now = opts.now ?? (() => Date.now());

  const current = (key: string) => {
    const t = now();
    const b = buckets.get(key);
    const tokens = b ? Math.min(opts.capacity, b.tokens + ((t - b.at) / 1000) * opts.refillPerSecond) : opts.capacity;
    return { tokens, t };
  };
  const verdict = (tokens: number, cost: number) => ({
    ok: tokens >= cost,
    retryAfterSeconds: tokens >= cost ? 0 : Math.max(1, Math.ceil((cost - tokens) / opts.refillPerSecond)),
  });

  return {
    peek(key, cost = 1) {
      return verdict(current(key).tokens, cost);
    },
    take(key, cost = 1) {
      const { tokens, t } = current(key);
      const v = verdict(tokens, cost);
      buckets.delete(key);
      buckets.set(key, { tokens: v.ok ? tokens - cost : tokens, at: t });
      if (buckets.size > maxKeys) buckets.delete(buckets.keys().next().value!);
      return v;
    },
    refund(key, cost = 1) {
      const b = buckets.get(key);
      if (!b) return; // evicted or never taken: the bucket is full anyway
      const { tokens, t } = current(key);
      buckets.set(key, { tokens: Math.min(opts.capacity, tokens + cost), at: t });
    },
  };
}
