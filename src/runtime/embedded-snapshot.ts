// The embedded database's first start, made a restart. Creating a PGlite cluster runs initdb, which
// loads a second and a third WebAssembly instance (initdb and a helper PGlite) for seconds and leaves
// the process holding ~800 MiB for its whole life; opening an existing cluster does neither. So
// `npm run build` creates the cluster once (initdb plus every migration of the package) and ships it
// as dist/pglite-base.tar.gz with a manifest; a first start unpacks it with node:zlib into
// <data-dir>/pglite and opens that folder exactly as a restart would.
//
// The snapshot is used only when it is certain to fit: the manifest names the PGlite release that
// made it (same WebAssembly, same PostgreSQL catalog version) and a digest of the migrations it
// holds; the unpacked PG_VERSION must match too. Otherwise, or without a snapshot, PGlite initialises
// the folder itself as before. The unpack goes to a temporary sibling renamed into place, so a crash
// leaves either no database folder or a complete one, never half a cluster.
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extract } from 'tar';
import type { Migration } from '../db/migrate.js';

/** At the package root's dist/, from both src/runtime (tsx) and dist/runtime (built). */
export const SNAPSHOT_FILE = fileURLToPath(new URL('../../dist/pglite-base.tar.gz', import.meta.url));
export const SNAPSHOT_MANIFEST = fileURLToPath(new URL('../../dist/pglite-base.json', import.meta.url));

export interface SnapshotManifest {
  format: 1;
  /** @electric-sql/pglite's version that created the cluster. */
  pglite: string;
  /** The cluster's PG_VERSION (major version). */
  pgVersion: string;
  /** sha256 over the migrations applied in it (tags and SQL, in order). */
  migrations: string;
  tags: string[];
}

export type SeedOutcome =
  /** The folder already holds a cluster: a restart. */
  | 'existing'
  /** Unpacked from the snapshot. */
  | 'snapshot'
  /** No usable snapshot; PGlite will run initdb (the reason is given). */
  | { fallback: string };

/** The PGlite release this process loads. */
export async function installedPgliteVersion(): Promise<string> {
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  // …/node_modules/@electric-sql/pglite/dist/index.cjs → the package's own package.json.
  let dir = dirname(entry);
  for (let i = 0; i < 4; i++, dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === '@electric-sql/pglite' && pkg.version) return pkg.version;
    } catch {
      // not this level
    }
  }
  throw new Error('cannot find the PGlite version');
}

export function migrationsDigest(migrations: readonly Migration[]): string {
  const h = createHash('sha256');
  for (const m of migrations) h.update(`${m.tag}\0${m.sql}\0`);
  return h.digest('hex');
}

async function isCluster(folder: string): Promise<boolean> {
  return stat(join(folder, 'PG_VERSION')).then(
    () => true,
    () => false,
  );
}

/**
 * Prepares `folder` for PGlite: leaves an existing cluster alone, else unpacks the snapshot when it
 * fits this PGlite and these migrations. The caller holds the data dir lock.
 */
export async function seedEmbeddedDatabase(
  folder: string,
  migrations: readonly Migration[],
  files = { archive: SNAPSHOT_FILE, manifest: SNAPSHOT_MANIFEST },
): Promise<SeedOutcome> {
  if (await isCluster(folder)) return 'existing';
  let manifest: SnapshotManifest;
  try {
    manifest = JSON.parse(await readFile(files.manifest, 'utf8')) as SnapshotManifest;
  } catch {
    return { fallback: 'no snapshot (run npm run build)' };
  }
  if (manifest.format !== 1) return { fallback: 'snapshot format unknown' };
  const pglite = await installedPgliteVersion();
  if (manifest.pglite !== pglite) return { fallback: `snapshot made by PGlite ${manifest.pglite}, this is ${pglite}` };
  if (manifest.migrations !== migrationsDigest(migrations)) return { fallback: 'snapshot made with other migrations' };

  // A folder left empty (or by a crashed unpack) is replaced; one with anything else is PGlite's to judge.
  const existing = await readdir(folder).catch(() => undefined);
  if (existing && existing.length > 0) return { fallback: 'database folder is not empty' };
  const parent = dirname(folder);
  const staging = join(parent, `.${basename(folder)}.unpacking`);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true, mode: 0o700 });
  try {
    await extract({ file: files.archive, cwd: staging, strict: true, preservePaths: false, noChmod: false });
    const version = (await readFile(join(staging, 'PG_VERSION'), 'utf8').catch(() => '')).trim();
    if (version !== manifest.pgVersion) {
      await rm(staging, { recursive: true, force: true });
      return { fallback: `snapshot holds PostgreSQL ${version || '?'}, manifest says ${manifest.pgVersion}` };
    }
    if (existing) await rmdir(folder);
    await rename(staging, folder);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    return { fallback: `snapshot unusable: ${(err as Error).message.split('\n')[0]}` };
  }
  return 'snapshot';
}
