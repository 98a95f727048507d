// Issue 14: `agent run` waits its interval plus a random splay, so a fleet started together spreads
// out: bounded by the splay (explicit, or a fraction of the interval in force), and actually random.
import { describe, expect, it } from 'vitest';
import { nextWait, type DaemonOptions } from '../../src/agent/daemon.js';

const base = { stateDir: '/nonexistent', intervalSeconds: 3600, log: () => {}, signal: new AbortController().signal } as DaemonOptions;

describe('agent run splay', () => {
  it('adds 0..splay to the interval, spread over that range', () => {
    const waits = Array.from({ length: 2000 }, () => nextWait({ ...base, splaySeconds: 60 }, 3_600_000));
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(3_600_000);
    expect(Math.max(...waits)).toBeLessThan(3_660_000);
    expect(new Set(waits).size).toBeGreaterThan(1900);
    expect(waits.filter((w) => w < 3_630_000).length).toBeGreaterThan(800); // both halves used
    expect(waits.filter((w) => w >= 3_630_000).length).toBeGreaterThan(800);
  });
  it('defaults to a fraction of the interval in force, and 0 turns it off', () => {
    const waits = Array.from({ length: 500 }, () => nextWait({ ...base, splayFraction: 0.1 }, 600_000));
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(600_000);
    expect(Math.max(...waits)).toBeLessThan(660_000);
    expect(Math.max(...waits)).toBeGreaterThan(640_000);
    expect(nextWait({ ...base, splaySeconds: 0, splayFraction: 0.1 }, 600_000)).toBe(600_000);
    expect(nextWait(base, 600_000)).toBe(600_000);
  });
});
