// The one bounded cache of the project: a Map kept in least-recently-used order (a Map iterates in
// insertion order, so a hit is re-inserted and the oldest entry is always first). Imported keys,
// small-order verdicts, static DH results and sender-key facts all live in one of these.
export class Lru<K, V> {
  private readonly map = new Map<K, V>();

  constructor(readonly capacity: number) {}

  get(key: K): V | undefined {
    const hit = this.map.get(key);
    if (hit !== undefined) {
      this.map.delete(key);
      this.map.set(key, hit);
    }
    return hit;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value!);
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  get size(): number {
    return this.map.size;
  }
}

/** The promise for `key`, made once and shared; a rejected one is forgotten, so a later call retries. */
export function memoizeAsync<V>(cache: Lru<string, Promise<V>>, key: string, make: () => Promise<V>): Promise<V> {
  const hit = cache.get(key);
  if (hit) return hit;
  const made = make();
  made.catch(() => cache.delete(key));
  cache.set(key, made);
  return made;
}
