// The fleet status rule in its two SQL forms (a probe per agent for pages and filters, one aggregate
// for the counts) gives the same answer for every kind of agent, on both databases.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentKeys, agents } from '../../src/db/schema.js';
import { fleetCounts, listFleet, FLEET_STATUSES, type FleetStatus } from '../../src/server/services/agents.js';
import { createTestDatabase, dbKinds, type TestDatabase } from '../helpers/db.js';

const NOW = Date.parse('2026-06-01T00:00:00Z');
const DAY = 86400_000;

// name -> [agent status, keys (status, expires in days)], and the status the console must show.
const CASES: [string, 'active' | 'revoked', ['active' | 'superseded' | 'revoked', number][], FleetStatus][] = [
  ['fresh', 'active', [['active', 30]], 'active'],
  [
    'renewed',
    'active',
    [
      ['superseded', 2],
      ['active', 40],
    ],
    'active',
  ],
  ['soon', 'active', [['active', 3]], 'expiring'],
  ['past', 'active', [['active', -1]], 'expired'],
  ['keyless', 'active', [], 'expired'],
  ['only-superseded', 'active', [['superseded', 5]], 'expired'],
  ['agent-revoked', 'revoked', [['revoked', 30]], 'revoked'],
  [
    'keys-revoked',
    'active',
    [
      ['revoked', 30],
      ['revoked', 60],
    ],
    'revoked',
  ],
  [
    'one-key-revoked',
    'active',
    [
      ['revoked', 30],
      ['active', 60],
    ],
    'active',
  ],
];

describe.each(dbKinds)('fleet status on %s', (kind) => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase(kind);
    let n = 0;
    for (const [name, status, keys] of CASES) {
      await database.db.insert(agents).values({ id: `id-${name}`, name, role: name === 'soon' ? 'relay' : 'agent', status });
      for (const [keyStatus, days] of keys) {
        n++;
        await database.db.insert(agentKeys).values({
          agentId: `id-${name}`,
          sigKid: `s${n}`,
          kxKid: `x${n}`,
          sigPub: new Uint8Array(32),
          kxPub: new Uint8Array(32),
          status: keyStatus,
          expiresAt: new Date(NOW + days * DAY),
        });
      }
    }
  }, 180_000);
  afterAll(async () => database?.close());

  it('shows each agent with its status, filters by it, and counts it', async () => {
    const { agents: rows } = await listFleet(database.db, NOW, {}, { limit: 100 });
    expect(Object.fromEntries(rows.map((r) => [r.name, r.status]))).toEqual(Object.fromEntries(CASES.map((c) => [c[0], c[3]])));
    const expected = Object.fromEntries(FLEET_STATUSES.map((s) => [s, CASES.filter((c) => c[3] === s).length]));
    expect(await fleetCounts(database.db, NOW)).toEqual(expected);
    for (const status of FLEET_STATUSES) {
      const { agents: only } = await listFleet(database.db, NOW, { status }, { limit: 100 });
      expect(only.map((r) => r.name).sort()).toEqual(
        CASES.filter((c) => c[3] === status)
          .map((c) => c[0])
          .sort(),
      );
    }
    expect((await fleetCounts(database.db, NOW, 'relay')).expiring).toBe(1);
    expect((await listFleet(database.db, NOW, { search: 'KEYS-' }, { limit: 100 })).agents.map((r) => r.name)).toEqual(['keys-revoked']);
    expect((await listFleet(database.db, NOW, { search: '%' }, { limit: 100 })).agents).toEqual([]);
  });
});
