// The token bucket's reservation: taken synchronously before the caller awaits, kept or refunded
// when the attempt settles; callers that find the bucket empty while reservations are in flight
// wait for them instead of being refused; the audit coalescer reports one window per key.
import { describe, expect, it } from 'vitest';
import { createRateLimiter, createRefusalCoalescer, type RefusalWindow } from '../../src/server/services/rate-limiter.js';

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('rate limiter reservations', () => {
  it('N concurrent reservations never exceed the capacity; charged ones stay spent', async () => {
    const limiter = createRateLimiter({ capacity: 10, refillPerSecond: 0.001, now: () => 0 });
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, async () => {
        const r = await limiter.reserve('k');
        if (!r.ok) return 'refused';
        await tick(); // the attempt's own await (a database lookup)
        r.settle(true);
        return 'charged';
      }),
    );
    expect(outcomes.filter((o) => o === 'charged')).toHaveLength(10);
    expect(outcomes.filter((o) => o === 'refused')).toHaveLength(40);
    expect(limiter.peek('k').ok).toBe(false);
  });

  it('refunded reservations let waiting callers through, in bounded concurrency', async () => {
    const limiter = createRateLimiter({ capacity: 3, refillPerSecond: 0.001, now: () => 0 });
    let inFlight = 0;
    let most = 0;
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const r = await limiter.reserve('k');
        if (!r.ok) return 'refused';
        most = Math.max(most, ++inFlight);
        await tick();
        inFlight--;
        r.settle(false);
        return 'ok';
      }),
    );
    expect(outcomes.every((o) => o === 'ok')).toBe(true);
    expect(most).toBe(3);
    expect(limiter.peek('k', 3).ok).toBe(true);
  });

  it('settling twice refunds once; waiters beyond the bound are refused', async () => {
    const limiter = createRateLimiter({ capacity: 1, refillPerSecond: 0.001, maxWaitersPerKey: 2, now: () => 0 });
    const first = await limiter.reserve('k');
    expect(first.ok).toBe(true);
    const waiting = [limiter.reserve('k'), limiter.reserve('k')];
    expect((await limiter.reserve('k')).ok).toBe(false);
    if (first.ok) {
      first.settle(false);
      first.settle(false);
    }
    // The first waiter takes the refunded unit; the second waits for it, and when it is charged
    // finds the bucket empty with nothing in flight: refused.
    const a = await waiting[0]!;
    expect(a.ok).toBe(true);
    expect(limiter.peek('k').ok).toBe(false);
    if (a.ok) a.settle(true);
    expect((await waiting[1]!).ok).toBe(false);
  });
});

describe('refusal coalescer', () => {
  it('reports one window per key with its count, when the window ends', async () => {
    let t = 1000;
    const c = createRefusalCoalescer({ windowMs: 50, now: () => t });
    const reports: RefusalWindow[] = [];
    for (let i = 0; i < 7; i++) c.note('a', (w) => reports.push(w));
    c.note('b', (w) => reports.push(w));
    expect(reports).toEqual([]);
    t += 60;
    c.note('a', (w) => reports.push(w)); // a new window closes the old one
    expect(reports).toEqual([{ count: 7, from: 1000, to: 1000 }]);
    await new Promise((r) => setTimeout(r, 80)); // timers close the rest
    expect(reports).toHaveLength(3);
    expect(reports.map((r) => r.count).sort()).toEqual([1, 1, 7]);
  });
});
