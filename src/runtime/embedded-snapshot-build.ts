// `npm run build`, last step: creates dist/pglite-base.tar.gz (an initialised PGlite cluster with every
// migration of this package applied) and its manifest, for embedded-snapshot.ts. Skipped when the
// snapshot on disk was made by the same PGlite from the same migrations.
import { mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { create } from 'tar';
import { openDatabase } from '../db/client.js';
import { applyMigrations } from '../db/migrate.js';
import { readMigrations } from '../db/migrations-fs.js';
import { installedPgliteVersion, migrationsDigest, SNAPSHOT_FILE, SNAPSHOT_MANIFEST, type SnapshotManifest } from './embedded-snapshot.js';

export async function buildSnapshot(
  files = { archive: SNAPSHOT_FILE, manifest: SNAPSHOT_MANIFEST },
  opts: { force?: boolean } = {},
): Promise<'built' | 'up to date'> {
  const migrations = await readMigrations();
  const pglite = await installedPgliteVersion();
  const digest = migrationsDigest(migrations);
  if (!opts.force) {
    try {
      const current = JSON.parse(await readFile(files.manifest, 'utf8')) as SnapshotManifest;
      await stat(files.archive);
      if (current.format === 1 && current.pglite === pglite && current.migrations === digest) return 'up to date';
    } catch {
      // absent or unreadable: build it
    }
  }
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-snapshot-'));
  try {
    const folder = join(dir, 'pglite');
    const database = await openDatabase({ dataDir: folder });
    try {
      await applyMigrations(database, migrations);
    } finally {
      await database.close();
    }
    const pgVersion = (await readFile(join(folder, 'PG_VERSION'), 'utf8')).trim();
    const archive = join(dir, 'pglite-base.tar.gz');
    await create({ gzip: { level: 9 }, file: archive, cwd: folder, portable: true }, await readdir(folder));
    const manifest: SnapshotManifest = { format: 1, pglite, pgVersion, migrations: digest, tags: migrations.map((m) => m.tag) };
    // The manifest goes last: a snapshot is only ever used with the manifest written for it.
    await rm(files.manifest, { force: true });
    await rename(archive, files.archive).catch(async () => writeFile(files.archive, await readFile(archive)));
    await writeFile(files.manifest, `${JSON.stringify(manifest, null, 2)}\n`);
    return 'built';
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const started = performance.now();
  const outcome = await buildSnapshot(undefined, { force: process.argv.includes('--force') });
  process.stdout.write(`pglite snapshot: ${outcome} (${Math.round(performance.now() - started)} ms)\n`);
}
