// A slow process is not an unavailable database: a statement whose answer arrived while this
// process's event loop was blocked (a loaded machine, a synchronous task such as loading PGlite in
// the same process) is answered, not timed out as 503 `unavailable`; a database that does not answer
// while the process runs normally still times out on time. PostgreSQL only (PGlite has no deadlines).
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatabaseUnavailableError } from '../../src/db/faults.js';
import { openPostgres } from '../../src/db/postgres.js';
import type { Database } from '../../src/db/database.js';
import { postgresUrl } from '../helpers/db.js';

/** Blocks the event loop, as a synchronous task would. */
function block(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy
  }
}

describe.skipIf(!postgresUrl)('database deadlines on a stalled process (PostgreSQL)', () => {
  let db: Database;
  beforeAll(async () => {
    db = await openPostgres({ url: postgresUrl!, maxConnections: 2, deadlines: { queryTimeoutMs: 400, transactionTimeoutMs: 600 } });
    await db.db.execute(sql`SELECT 1`); // connected
  });
  afterAll(async () => {
    await db.close();
  });

  it('an answer that arrived while the event loop was blocked past the deadline is taken', async () => {
    for (let i = 0; i < 3; i++) {
      // Sent, then the loop blocked at once (in the check phase, so the next turn runs due timers
      // before it reads the socket): the answer arrives meanwhile and the deadline (400 ms) passes.
      const settled = await new Promise<Promise<{ ok: boolean; err?: unknown }>>((resolve) =>
        setImmediate(() => {
          const s = db.db.execute(sql`SELECT 42 AS answer`).then(
            () => ({ ok: true }),
            (err: unknown) => ({ ok: false, err }),
          );
          block(1000);
          resolve(s);
        }),
      );
      const got = await settled;
      expect(got.ok, String(got.err)).toBe(true);
    }
  });

  it('a transaction whose statements were answered during a stall commits', async () => {
    const done = db.db.transaction(async (tx) => {
      await tx.execute(sql`SELECT 1`);
      block(900);
      await tx.execute(sql`SELECT 2`);
      return 'committed';
    });
    await expect(done).resolves.toBe('committed');
  });

  it('a database that does not answer still times out, on time', async () => {
    const started = performance.now();
    // drizzle wraps the driver's error; the fault is its cause.
    const err = await db.db.execute(sql`SELECT pg_sleep(10)`).then(
      () => undefined,
      (e: unknown) => e as Error & { cause?: unknown },
    );
    expect(err instanceof DatabaseUnavailableError || err?.cause instanceof DatabaseUnavailableError, String(err)).toBe(true);
    // Well before the answer (10 s), even on a loaded machine whose timers run late.
    expect(performance.now() - started).toBeLessThan(3000);
  });
});
