// A fresh in-memory PGlite runs initdb (a second and a third WebAssembly instance, ~12 s of CPU on the
// loaded 2-core CI machine, ~850 MiB); every database test file needs one. global-setup runs that
// initdb once and keeps the empty cluster as a tar (PGlite's dumpDataDir); each file then opens its
// instance from the tar (~4 s of CPU, ~420 MiB): the same empty cluster, without initdb. The tar is
// cached per PGlite release under node_modules/.cache, so a local re-run skips even the one initdb.
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { installedPgliteVersion } from '../../src/runtime/embedded-snapshot.js';

const CACHE = fileURLToPath(new URL('../../node_modules/.cache/latchkey-tests', import.meta.url));

/** Makes the empty cluster's tar when missing (once per PGlite release); returns its path. */
export async function ensurePgliteSeed(): Promise<string> {
  const file = join(CACHE, `pglite-${await installedPgliteVersion()}.tar`);
  const present = await stat(file).then(
    () => true,
    () => false,
  );
  if (present) return file;
  const pg = await PGlite.create();
  try {
    const tar = await pg.dumpDataDir('none');
    await mkdir(CACHE, { recursive: true });
    const partial = `${file}.${process.pid}.partial`;
    await writeFile(partial, new Uint8Array(await tar.arrayBuffer()));
    await rename(partial, file); // a concurrent run sees a whole tar or none
  } finally {
    await pg.close();
  }
  return file;
}

/** A new in-memory PGlite holding the seed's empty cluster. */
export async function openSeededPglite(seed: string): Promise<PGlite> {
  return PGlite.create({ loadDataDir: new Blob([await readFile(seed)]) });
}
