// Opening the embedded database (PGlite in <data-dir>/pglite) for any command: the data dir is made
// private (data-dir-modes.ts) and locked to this process (data-dir-lock.ts) first; closing tightens
// the modes of what PGlite created meanwhile and releases the lock.
import { openDatabase, type Database } from '../db/client.js';
import { dataDirLayout } from './config.js';
import { lockDataDir } from './data-dir-lock.js';
import { ensurePrivateDir, privatiseTree, restrictUmask } from './data-dir-modes.js';

/** `command` names this process in the lock, for the message another process shows. */
export async function openEmbeddedDatabase(dataDir: string, command: string): Promise<Database> {
  await ensurePrivateDir(dataDir);
  const lock = await lockDataDir(dataDir, command);
  const folder = dataDirLayout(dataDir).embeddedDatabase;
  let database: Database;
  try {
    restrictUmask();
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
