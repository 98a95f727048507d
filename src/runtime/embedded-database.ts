// Opening the embedded database (PGlite in <data-dir>/pglite) for any command: the data dir is made
// private (data-dir-modes.ts) and locked to this process (data-dir-lock.ts) first; a data dir without
// a database gets the build's snapshot (embedded-snapshot.ts), so a first start is a restart; closing
// tightens the modes of what PGlite created meanwhile and releases the lock.
import { openDatabase, type Database } from '../db/client.js';
import { readMigrations } from '../db/migrations-fs.js';
import { dataDirLayout } from './config.js';
import { lockDataDir } from './data-dir-lock.js';
import { ensurePrivateDir, privatiseTree, restrictUmask } from './data-dir-modes.js';
import { seedEmbeddedDatabase, type SeedOutcome } from './embedded-snapshot.js';

/**
 * `command` names this process in the lock, for the message another process shows; `onSeed` hears
 * how the database folder was found or made (a restart, the snapshot, or PGlite's own initdb and why).
 */
export async function openEmbeddedDatabase(dataDir: string, command: string, onSeed?: (outcome: SeedOutcome) => void): Promise<Database> {
  await ensurePrivateDir(dataDir);
  const lock = await lockDataDir(dataDir, command);
  const folder = dataDirLayout(dataDir).embeddedDatabase;
  let database: Database;
  try {
    restrictUmask();
    onSeed?.(await seedEmbeddedDatabase(folder, await readMigrations()));
    database = await openDatabase({ dataDir: folder });
    await privatiseTree(folder);
  } catch (err) {
    await lock.release();
    throw err;
  }
  const opened = database;
  return {
    ...opened,
    close: async () => {
      try {
        await opened.close();
        await privatiseTree(folder);
      } finally {
        await lock.release();
      }
    },
  };
}
