// The GLPI forwarding outbox on the real databases: rows are written by the storing statement itself
// (one per inventory and active target), claimed in order per (target, agent) under leases that two
// claimers never share, retried with backoff, dropped with a removed target or a pruned inventory;
// and two delivering instances on one PostgreSQL database deliver every row exactly once.
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inflateSync } from 'node:zlib';
import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/client.js';
import { forwardOutbox, inventories } from '../../src/db/schema.js';
import { startForwarder } from '../../src/runtime/glpi-forwarder.js';
import { glpiAgentUuid } from '../../src/server/glpi/agent-uuid.js';
import { silentLogger } from '../../src/server/logger.js';
import {
  backoffMs,
  claimDue,
  forwardStatus,
  markDelivered,
  markFailed,
  syncTargets,
  targetIdOf,
} from '../../src/server/services/forward-outbox.js';
import { pruneInventories } from '../../src/server/services/inventory-store.js';
import { createTestDatabase, dbKinds, postgresUrl, type TestDatabase } from '../helpers/db.js';
import { seedAgentsAndStore } from '../helpers/store-seed.js';

const day = 86400_000;

const count = async (database: TestDatabase, table: typeof forwardOutbox | typeof inventories) =>
  (await database.db.select({ c: sql<number>`count(*)::int` }).from(table))[0]!.c;

describe.each(dbKinds)('GLPI forwarding outbox on %s', (kind) => {
  let database: TestDatabase | undefined;
  afterEach(async () => {
    await database?.dispose();
    database = undefined;
  });

  it(
    'is written by the storing statement, claimed in order per agent, retried, dropped with its target or inventory',
    { timeout: 120_000 },
    async () => {
      database = await createTestDatabase(kind);
      const { db } = database;
      const store = await seedAgentsAndStore(database, ['a1', 'a2']);
      // No target: nothing queued.
      await store('a1', 2);
      expect(await count(database, forwardOutbox)).toBe(0);

      const t1 = { id: targetIdOf(new URL('http://glpi-1.test/front/inventory.php')), url: 'http://glpi-1.test/front/inventory.php' };
      const t2 = { id: targetIdOf(new URL('http://u:p@glpi-2.test/')), url: 'http://glpi-2.test/' };
      expect(t2.id).toBe(targetIdOf(new URL('http://glpi-2.test/')));
      await syncTargets(db, [t1, t2], Date.now());
      await store('a1', 3);
      await store('a2', 1);
      // One row per stored inventory and target, none for the inventories stored before.
      expect(await count(database, forwardOutbox)).toBe(8);

      const now = Date.now();
      // Only each agent's oldest row is claimable: a1's third (its first forwarded) and a2's first.
      const first = await claimDue(db, t1.id, 'A', now, 60_000, 10);
      expect(first.map((r) => [r.agentId, JSON.parse(r.body).deviceid])).toEqual([
        ['a1', 'a1-3'],
        ['a2', 'a2-1'],
      ]);
      // Another claimer gets nothing while the leases hold: not a1's next row either.
      expect(await claimDue(db, t1.id, 'B', now, 60_000, 10)).toEqual([]);
      // A delivered row goes; the agent's next becomes claimable.
      await markDelivered(db, t1.id, first[0]!, 'A', now);
      // Delivery by a claimer whose lease was taken over does nothing.
      await markDelivered(db, t1.id, first[1]!, 'B', now);
      const second = await claimDue(db, t1.id, 'B', now, 60_000, 10);
      expect(second.map((r) => JSON.parse(r.body).deviceid)).toEqual(['a1-4']);
      // A failure puts it back after a backoff: not due before, due after; the agent's later rows wait.
      await markFailed(db, t1.id, second[0]!, 'B', now, 5000, 'connection refused');
      expect(await claimDue(db, t1.id, 'B', now + 1000, 60_000, 10)).toEqual([]);
      const retried = await claimDue(db, t1.id, 'B', now + 5000, 60_000, 10);
      expect(retried.map((r) => [JSON.parse(r.body).deviceid, r.attempts])).toEqual([['a1-4', 1]]);
      // A lease that ran out (its holder died) can be claimed again by someone else: at least once.
      const again = await claimDue(db, t1.id, 'C', now + 5000 + 61_000, 60_000, 10);
      expect(again.map((r) => JSON.parse(r.body).deviceid).sort()).toEqual(['a1-4', 'a2-1']);

      const status = await forwardStatus(db, now + 10_000);
      const s1 = status.find((s) => s.id === t1.id)!;
      expect(s1).toMatchObject({ active: true, backlog: 3, deliveredTotal: 1, lastError: 'connection refused', url: t1.url });
      expect(s1.oldestUndeliveredSeconds).toBeGreaterThan(5);
      expect(status.find((s) => s.id === t2.id)).toMatchObject({ backlog: 4, deliveredTotal: 0, lastError: null });

      // t2 is no longer configured: deactivated, its rows dropped, new inventories queue for t1 only.
      const sync = await syncTargets(db, [t1], now);
      expect(sync.removed).toEqual([{ id: t2.id, url: t2.url, dropped: 4 }]);
      await store('a2', 1);
      expect(await count(database, forwardOutbox)).toBe(4);

      // Retention: an inventory pruned before delivery takes its rows with it.
      await pruneInventories(db, { maxAgeDays: 90, maxPerAgent: 1, replayRecordMs: day }, Date.now());
      expect(await count(database, inventories)).toBe(2);
      const left = await db.select({ agentId: forwardOutbox.agentId }).from(forwardOutbox);
      expect(left.map((r) => r.agentId).sort()).toEqual(['a1', 'a2']);
    },
  );

  it('backs off exponentially with jitter, within [delay/2, delay], up to the cap', () => {
    expect([1, 2, 3, 4].map((a) => backoffMs(a, () => 1))).toEqual([1000, 2000, 4000, 8000]);
    expect(backoffMs(3, () => 0)).toBe(2000);
    expect(backoffMs(100, () => 1, 1000, 600_000)).toBe(600_000);
  });

  it('gives every agent one stable GLPI agent UUID (version 5)', () => {
    const u = glpiAgentUuid('ag_123');
    expect(u).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(glpiAgentUuid('ag_123')).toBe(u);
    expect(glpiAgentUuid('ag_124')).not.toBe(u);
  });
});

describe.runIf(postgresUrl)('GLPI forwarding with two instances on one PostgreSQL database', () => {
  it('delivers every row exactly once, in order per agent, whichever instance claims it', { timeout: 60_000 }, async () => {
    const database = await createTestDatabase('postgres');
    const second = await openDatabase({ url: postgresUrl!, schema: database.schemaName });
    const received: { agent: string; deviceid: string }[] = [];
    const receiver = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(inflateSync(Buffer.concat(chunks)).toString('utf8')) as { deviceid: string };
        received.push({ agent: String(req.headers['glpi-agent-id']), deviceid: body.deviceid });
        // A little latency, so both instances have rows in hand at once.
        setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}'), 2);
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/proxy/glpi`;
    const config = { urls: [url], compression: 'zlib' as const, retryMaxMs: 1000, pollMs: 50, timeoutMs: 5000 };
    try {
      const agentIds = Array.from({ length: 6 }, (_, i) => `agent${i}`);
      const store = await seedAgentsAndStore(database, agentIds);
      await syncTargets(database.db, [{ id: targetIdOf(new URL(url)), url }], Date.now());
      await Promise.all(agentIds.map((a) => store(a, 10)));
      const f1 = await startForwarder(database, config, silentLogger);
      const f2 = await startForwarder(second, config, silentLogger);
      const deadline = Date.now() + 45_000;
      while (received.length < 60 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await Promise.all([f1.stop(), f2.stop()]);
      expect(received).toHaveLength(60);
      expect(new Set(received.map((r) => r.deviceid)).size).toBe(60);
      // Per agent, in the order stored (inventory id).
      const stored = await database.db
        .select({ agentId: inventories.agentId, content: inventories.content })
        .from(inventories)
        .orderBy(inventories.id);
      for (const a of agentIds) {
        const mine = received.filter((r) => r.agent === glpiAgentUuid(a)).map((r) => r.deviceid);
        expect(mine).toEqual(stored.filter((s) => s.agentId === a).map((s) => (s.content as { deviceid: string }).deviceid));
      }
      expect(await count(database, forwardOutbox)).toBe(0);
    } finally {
      receiver.close();
      await second.close();
      await database.dispose();
    }
  });
});
