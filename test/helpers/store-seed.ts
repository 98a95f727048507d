// Agents, their keys and stored inventories written straight through the storing statement (the
// StoreBatcher the server uses), for tests of what follows a store: the batcher itself, the GLPI
// forwarding outbox, forwarding over TLS. Keys are placeholders: nothing here verifies a signature.
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { agentKeys, agents } from '../../src/db/schema.js';
import { STORE_BATCH_SQL, StoreBatcher, type StoreItem } from '../../src/server/services/store-batcher.js';
import type { TestDatabase } from './db.js';

const day = 86400_000;

/** An agent key row, `k-<agentId>`, active for a day from `now`; `over` names other kids, status or counter. */
export function testAgentKey(
  agentId: string,
  now: number,
  over: Partial<typeof agentKeys.$inferInsert> = {},
): typeof agentKeys.$inferInsert {
  return {
    agentId,
    sigKid: `k-${agentId}`,
    kxKid: `x-${agentId}`,
    sigPub: new Uint8Array(32),
    kxPub: new Uint8Array(32),
    expiresAt: new Date(now + day),
    ...over,
  };
}

/** One message to store: a fresh message id, the default window and budgets no test reaches unless `over` lowers them. */
export function storeItem(fields: Pick<StoreItem, 'kid' | 'agentId' | 'counter' | 'json' | 'at'> & Partial<StoreItem>): StoreItem {
  return {
    mid: new Uint8Array(randomBytes(16)),
    window: 4096,
    size: fields.json.length,
    byteBurst: 1e12,
    bytesPerSecond: 1e12,
    ...fields,
  };
}

/**
 * Inserts the agents, each with one active key `k-<id>`, and returns a function that stores n more
 * inventories of an agent ({deviceid: `<agent>-<counter>`}), one after the other as an agent sends
 * (it waits for each receipt): stored, so forwarded, in this order. Each must be stored.
 */
export async function seedAgentsAndStore(
  database: TestDatabase,
  agentIds: string[],
): Promise<(agentId: string, n: number) => Promise<void>> {
  const now = Date.now();
  await database.db.insert(agents).values(agentIds.map((id) => ({ id, name: id, role: 'agent' as const })));
  await database.db.insert(agentKeys).values(agentIds.map((id) => testAgentKey(id, now)));
  const batcher = new StoreBatcher(database.prepared(STORE_BATCH_SQL));
  const counters = new Map<string, number>();
  return async (agentId, n) => {
    for (let i = 0; i < n; i++) {
      const c = (counters.get(agentId) ?? 0) + 1;
      counters.set(agentId, c);
      const json = JSON.stringify({ deviceid: `${agentId}-${c}`, content: { n: c } });
      const verdict = await batcher.store(storeItem({ kid: `k-${agentId}`, agentId, counter: c, json, at: now }));
      expect(verdict.refusal).toBeUndefined();
    }
  };
}
