// Reads the drizzle-kit output folder from disk (Node). The Worker does not migrate: run
// `latchkey migrate --database-url …` against the database behind Hyperdrive before deploying.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Migration } from './migrate.js';

/** `migrations/` at the package root, from both src/db (tsx) and dist/db (built). */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const journal = JSON.parse(await readFile(`${dir}/meta/_journal.json`, 'utf8')) as {
    entries: { idx: number; tag: string }[];
  };
  const entries = [...journal.entries].sort((a, b) => a.idx - b.idx);
  return Promise.all(entries.map(async (e) => ({ tag: e.tag, sql: await readFile(`${dir}/${e.tag}.sql`, 'utf8') })));
}
