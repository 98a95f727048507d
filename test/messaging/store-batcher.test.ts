// Group commit on the real databases: messages submitted together share statements, yet each is
// decided alone — a message and its duplicate are stored once, a key's status and counter window
// hold per row, and one message PostgreSQL refuses fails by itself, not its batch.
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { agentKeys, agents, inventories, seenMessages } from '../../src/db/schema.js';
import { STORE_BATCH_SQL, StoreBatcher, type StoreItem, type StoreVerdict } from '../../src/server/services/store-batcher.js';
import { createTestDatabase, dbKinds, type TestDatabase } from '../helpers/db.js';
import { storeItem, testAgentKey } from '../helpers/store-seed.js';

describe.each(dbKinds)('store batcher on %s', (kind) => {
  let database: TestDatabase | undefined;
  afterEach(async () => {
    await database?.dispose();
    database = undefined;
  });

  it('coalesces a burst into few statements and decides every message on its own', async () => {
    database = await createTestDatabase(kind);
    const { db } = database;
    const now = Date.now();
    await db.insert(agents).values([
      { id: 'a1', name: 'a1', role: 'agent' },
      { id: 'a2', name: 'a2', role: 'agent' },
    ]);
    const key = (agentId: string, kid: string, status: 'active' | 'revoked', maxCounter = 0) =>
      testAgentKey(agentId, now, { sigKid: kid, kxKid: `x${kid}`, status, maxCounter });
    await db.insert(agentKeys).values([key('a1', 'good', 'active'), key('a2', 'revoked', 'revoked'), key('a2', 'high', 'active', 100_000)]);

    let statements = 0;
    const run = database.prepared(STORE_BATCH_SQL);
    const batcher = new StoreBatcher(async (params) => {
      statements++;
      return run(params);
    });
    const item = (kid: string, agentId: string, counter: number, json = `{"n":${counter}}`): StoreItem =>
      storeItem({ kid, agentId, counter, json, at: now });
    const good = Array.from({ length: 30 }, (_, i) => item('good', 'a1', i + 1));
    const twins = good.slice(0, 5).map((g) => ({ ...g }));
    const poison = item('good', 'a1', 99, '{"bad":"\\u0000"}');
    const revoked = item('revoked', 'a2', 1);
    const stale = item('high', 'a2', 100_000 - 4096);
    const inWindow = item('high', 'a2', 100_000 - 4095);
    const wrongAgent = item('good', 'a2', 200);

    const all = [...good, ...twins, revoked, stale, inWindow, wrongAgent];
    const verdicts = await Promise.all(all.map((i) => batcher.store(i)));
    // 39 messages in a burst: a handful of statements.
    expect(statements).toBeLessThanOrEqual(4);
    expect(verdicts.slice(5, 30).every((v) => v.refusal === undefined)).toBe(true);
    // A message and its twin (same key and id), even in concurrent statements: exactly one is stored.
    for (let i = 0; i < 5; i++) expect([verdicts[i]!.refusal, verdicts[30 + i]!.refusal].sort()).toEqual(['replay_detected', undefined]);
    const [vRevoked, vStale, vInWindow, vWrongAgent] = verdicts.slice(35);
    expect(vRevoked).toMatchObject({ refusal: 'key_revoked' });
    expect(vStale).toMatchObject({ refusal: 'stale_message', maxCounter: 100_000 });
    expect(vInWindow!.refusal).toBeUndefined();
    expect(vWrongAgent).toMatchObject({ refusal: 'key_unknown' });

    // A message PostgreSQL refuses, in a burst with others: it fails alone.
    const after = [item('good', 'a1', 300), item('good', 'a1', 301)];
    const second = await Promise.all([
      batcher.store(after[0]!),
      batcher.store(poison).then(
        () => 'stored',
        () => 'refused',
      ),
      batcher.store(after[1]!),
    ]);
    expect(second[1]).toBe('refused');
    expect([second[0], second[2]].map((v) => (v as StoreVerdict).refusal)).toEqual([undefined, undefined]);

    const count = async (table: typeof inventories | typeof seenMessages) =>
      (await db.select({ c: sql<number>`count(*)::int` }).from(table))[0]!.c;
    expect(await count(inventories)).toBe(33);
    expect(await count(seenMessages)).toBe(33);
    const counters = await db.select({ kid: agentKeys.sigKid, max: agentKeys.maxCounter }).from(agentKeys);
    expect(Object.fromEntries(counters.map((r) => [r.kid, r.max]))).toEqual({ good: 301, revoked: 0, high: 100_000 });
  });

  it('charges the stored-bytes budget in the statement: in order, only what is stored, across concurrent statements', async () => {
    database = await createTestDatabase(kind);
    const { db } = database;
    const now = Date.now();
    await db.insert(agents).values([{ id: 'b1', name: 'b1', role: 'agent' }]);
    await db.insert(agentKeys).values([testAgentKey('b1', now, { sigKid: 'kb1', kxKid: 'xkb1' })]);
    let counter = 0;
    const item = (size: number, mid = new Uint8Array(randomBytes(16))): StoreItem => {
      const json = `{"p":"${'x'.repeat(size - 8)}"}`;
      expect(json.length).toBe(size);
      return storeItem({ kid: 'kb1', mid, counter: ++counter, at: now, agentId: 'b1', json, byteBurst: 400, bytesPerSecond: 0.001 });
    };
    // Two batchers on one database are two instances: their statements run concurrently on PostgreSQL.
    const one = new StoreBatcher(database.prepared(STORE_BATCH_SQL));
    const two = new StoreBatcher(database.prepared(STORE_BATCH_SQL));
    const first = item(40);
    expect((await one.store(first)).refusal).toBeUndefined();
    // Replays of a stored message, in the same statements as fresh ones, are never charged.
    const burst = Array.from({ length: 40 }, (_, i) => (i % 4 === 0 ? { ...first, counter: ++counter } : item(40)));
    let pending: Promise<StoreVerdict[]> | undefined;
    const fire = () => (pending = Promise.all(burst.map((it, i) => (i % 2 ? one : two).store(it))));
    if (kind === 'postgres') {
      // Hold the agent's row while both instances' statements start, so they surely overlap.
      await db.transaction(async (tx) => {
        await tx.execute(sql`SELECT 1 FROM ${agents} WHERE ${agents.id} = 'b1' FOR UPDATE`);
        fire();
        await new Promise((r) => setTimeout(r, 500));
      });
    } else {
      fire();
    }
    const verdicts = await pending!;
    const refusals = verdicts.map((v) => v.refusal ?? 'stored');
    expect(refusals.filter((r) => r === 'replay_detected')).toHaveLength(10);
    // 400 bytes: the first message and 9 more, whichever statement they were in.
    expect(refusals.filter((r) => r === 'stored')).toHaveLength(9);
    expect(refusals.filter((r) => r === 'rate_limited')).toHaveLength(21);
    const refused = verdicts.find((v) => v.refusal === 'rate_limited')!;
    expect(refused.byteBudgetNeed).toBeGreaterThan(400);
    const [row] = await db.select({ used: agents.byteBudgetUsed }).from(agents);
    expect(row!.used).toBe(400);
    expect((await db.select({ c: sql<number>`count(*)::int` }).from(inventories))[0]!.c).toBe(10);
  });
});
