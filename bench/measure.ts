// Runs an async operation repeatedly for about `ms` milliseconds and reports operations per second.
export async function opsPerSecond(fn: () => Promise<unknown>, ms = 300): Promise<number> {
  for (let i = 0; i < 3; i++) await fn(); // warm-up (JIT, key caches)
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    await fn();
    n++;
    elapsed = performance.now() - start;
  }
  return Math.round((n / elapsed) * 1000);
}

export const SIZES = [1024, 16 * 1024, 256 * 1024] as const;
export const sizeName = (n: number) => `${n / 1024}KiB`;
