// Nothing in a data dir is for another user: the dir is 0700 and every file under it 0600, whether
// the dir existed before (mkdir's mode does not apply then) and whatever the umask. PGlite's file
// system layer creates its files 0666 whatever the umask, so the tree is tightened after PGlite
// opens and again after it closes; files it creates meanwhile sit inside the 0700 dir.
import { chmod, lstat, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

/** Creates the dir if absent and makes it 0700 either way. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: DIR_MODE });
  const info = await lstat(dir);
  if ((info.mode & 0o777) !== DIR_MODE) await chmod(dir, DIR_MODE);
}

/** Directories 0700 and files 0600 below (and including) root; symlinks are left alone, not followed. */
export async function privatiseTree(root: string): Promise<void> {
  const info = await lstat(root).catch(() => undefined);
  if (!info || info.isSymbolicLink()) return;
  const want = info.isDirectory() ? DIR_MODE : FILE_MODE;
  if ((info.mode & 0o777) !== want) await chmod(root, want);
  if (!info.isDirectory()) return;
  await Promise.all((await readdir(root)).map((name) => privatiseTree(join(root, name))));
}

/**
 * Files this process creates from now on are private unless a mode says otherwise (PGlite's
 * directories follow the umask). Unsupported in worker threads, where the chmod steps still apply.
 */
export function restrictUmask(): void {
  try {
    process.umask(0o077);
  } catch {
    // worker thread
  }
}
