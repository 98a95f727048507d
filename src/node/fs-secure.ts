// Writing secrets to disk: mode 0600 from the first byte, atomically (temp file, fsync, rename, fsync
// of the directory), so a crash never leaves a half-written key and no other user can read one. In src/node/ (Node-only
// helpers that import nothing of ours) because the agent, the CLI and the server runtime all need it,
// and the agent does not depend on the server runtime.
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export async function writeSecretFile(path: string, contents: string, opts: { exclusive?: boolean } = {}): Promise<void> {
  const tmp = join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(contents, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    if (opts.exclusive) {
      // Fails when the file appeared meanwhile (another process won): keep theirs.
      const { link } = await import('node:fs/promises');
      await link(tmp, path);
      await rm(tmp);
    } else {
      await rename(tmp, path);
    }
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDirectory(dirname(path));
}

/** fsync the directory, so the rename itself survives a power cut (not only the file's bytes). */
async function syncDirectory(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
