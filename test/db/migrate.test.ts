import { afterEach, describe, expect, it } from 'vitest';
import { applyMigrations } from '../../src/db/migrate.js';
import { readMigrations } from '../../src/db/migrations-fs.js';
import { openDatabase } from '../../src/db/client.js';
import { createTestDatabase, dbKinds, postgresUrl, type TestDatabase } from '../helpers/db.js';

describe.each(dbKinds)('migrations on %s', (kind) => {
  let database: TestDatabase | undefined;
  afterEach(async () => {
    await database?.dispose();
    database = undefined;
  });

  it('creates every table of the schema in the test schema, not in public', async () => {
    database = await createTestDatabase(kind);
    const schema = database.schemaName;
    const rows = await database.withSession((run) =>
      run(`SELECT table_name FROM information_schema.tables WHERE table_schema = '${schema}' ORDER BY 1`),
    );
    expect(rows.map((r) => r.table_name)).toEqual([
      'admin_keys',
      'agent_keys',
      'agents',
      'audit_head',
      'audit_log',
      'console_sessions',
      'enrollment_tokens',
      'forward_outbox',
      'forward_targets',
      'inventories',
      'latchkey_migrations',
      'revocations',
      'seen_messages',
      'server_key_endorsements',
      'token_uses',
    ]);
  });

  it('is idempotent: a second run applies nothing', async () => {
    database = await createTestDatabase(kind);
    expect(await applyMigrations(database, await readMigrations())).toEqual([]);
  });
});

describe.runIf(postgresUrl)('migrations on postgres under concurrency', () => {
  it('applies each migration exactly once when several instances start at once', async () => {
    const schema = `t_race_${Date.now().toString(36)}`;
    const instances = await Promise.all(Array.from({ length: 4 }, () => openDatabase({ url: postgresUrl, schema, maxConnections: 2 })));
    try {
      const migrations = await readMigrations();
      const applied = await Promise.all(instances.map((db) => applyMigrations(db, migrations)));
      // Exactly one instance applied everything; the others found it done.
      expect(applied.map((a) => a.length).sort()).toEqual([0, 0, 0, migrations.length]);
    } finally {
      await instances[0]!.withSession((run) => run(`DROP SCHEMA "${schema}" CASCADE`));
      await Promise.all(instances.map((db) => db.close()));
    }
  });
});
