// The project's one bounded cache: least-recently-used eviction, and shared promises that are
// forgotten when they reject.
import { describe, expect, it } from 'vitest';
import { Lru, memoizeAsync } from '../../src/protocol/lru.js';

describe('Lru', () => {
  it('evicts the least recently used entry, a hit counting as a use; false is a value', () => {
    const lru = new Lru<string, boolean>(2);
    lru.set('a', false);
    lru.set('b', true);
    expect(lru.get('a')).toBe(false);
    lru.set('c', true);
    expect([lru.get('a'), lru.get('b'), lru.get('c')]).toEqual([false, undefined, true]);
    expect(lru.size).toBe(2);
  });

  it('memoizeAsync shares one promise and retries after a rejection', async () => {
    const lru = new Lru<string, Promise<number>>(4);
    let calls = 0;
    const failing = () => (++calls, Promise.reject(new Error('no')));
    await expect(memoizeAsync(lru, 'k', failing)).rejects.toThrow('no');
    const made = () => (++calls, Promise.resolve(7));
    const [x, y] = await Promise.all([memoizeAsync(lru, 'k', made), memoizeAsync(lru, 'k', made)]);
    expect([x, y, calls]).toEqual([7, 7, 2]);
  });
});
