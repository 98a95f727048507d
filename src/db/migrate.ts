// Applies drizzle-kit's SQL migrations (migrations/meta/_journal.json order) under a PostgreSQL
// advisory lock, so several instances starting at once apply each migration exactly once.
// drizzle's own migrator neither locks nor honours search_path (drizzle-kit writes `"public".` into
// foreign keys), and tests isolate by schema, so this small runner does both.
import type { SqlExecutor } from './database.js';

export interface Migration {
  tag: string;
  sql: string;
}

/** Arbitrary but fixed: "latchkey" as ASCII folded into a bigint. */
const MIGRATION_LOCK = 0x6c61_7463_686b_6579n;

export async function applyMigrations(exec: SqlExecutor, migrations: readonly Migration[]): Promise<string[]> {
  return exec.withSession(async (run) => {
    await run(`SELECT pg_advisory_lock(${MIGRATION_LOCK})`);
    try {
      await run(`CREATE TABLE IF NOT EXISTS latchkey_migrations (tag text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
      const rows = await run(`SELECT tag FROM latchkey_migrations`);
      const done = new Set(rows.map((r) => String(r.tag)));
      const applied: string[] = [];
      for (const m of migrations) {
        if (done.has(m.tag)) continue;
        const statements = m.sql
          .split('--> statement-breakpoint')
          .map((s) => s.replaceAll('"public".', '').trim())
          .filter((s) => s.length > 0);
        await run('BEGIN');
        try {
          for (const s of statements) await run(s);
          await run(`INSERT INTO latchkey_migrations (tag) VALUES ('${m.tag.replaceAll("'", "''")}')`);
          await run('COMMIT');
        } catch (err) {
          await run('ROLLBACK');
          throw err;
        }
        applied.push(m.tag);
      }
      return applied;
    } finally {
      await run(`SELECT pg_advisory_unlock(${MIGRATION_LOCK})`);
    }
  });
}
