// One process at a time on an embedded data dir: PGlite's files belong to one process, and a second
// one (another `serve`, or `admin bootstrap`) would corrupt them or act on a stale view. The lock is
// <data-dir>/latchkey.lock, created atomically with its contents (written to a temp file, then
// hard-linked into place, which fails if the lock exists) and naming the holder's pid.
// A lock whose pid is no longer alive on this host is stale: it is taken over under a short-lived
// guard file, re-read under the guard, so two processes taking over at once cannot both win.
// A lock from another host, or one that cannot be read, is never taken over (fail closed).
import { randomBytes } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { link, open, readFile, rm, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { StartupError } from './startup-error.js';

export interface LockHolder {
  pid: number;
  host: string;
  command: string;
  since: string;
  nonce: string;
}

export class DataDirLockedError extends StartupError {
  constructor(
    readonly lockFile: string,
    readonly holder: LockHolder | undefined,
  ) {
    super(
      holder
        ? `data dir ${dirname(lockFile)} is in use by process ${holder.pid} on ${holder.host} (${holder.command}, since ${holder.since}); stop it first`
        : `data dir ${dirname(lockFile)} is locked by ${lockFile}, which cannot be read; remove it if no latchkey process uses this data dir`,
    );
    this.name = 'DataDirLockedError';
  }
}

export interface DataDirLock {
  release(): Promise<void>;
}

/** Paths this process holds: a second open in the same process is refused too, never taken over. */
const heldHere = new Set<string>();
const GUARD_STALE_MS = 5_000;

export function lockFileOf(dataDir: string): string {
  return join(dataDir, 'latchkey.lock');
}

export async function lockDataDir(dataDir: string, command: string): Promise<DataDirLock> {
  const path = lockFileOf(dataDir);
  const me: LockHolder = {
    pid: process.pid,
    host: hostname(),
    command,
    since: new Date().toISOString(),
    nonce: randomBytes(12).toString('hex'),
  };
  for (let attempt = 0; ; attempt++) {
    if (await tryCreate(path, me)) break;
    const holder = await readHolder(path);
    if (holder === 'absent') continue; // released meanwhile: try again
    if (holder === 'unreadable' || heldHere.has(path) || isAlive(holder) || attempt >= 50) {
      throw new DataDirLockedError(path, holder === 'unreadable' ? undefined : holder);
    }
    await takeOver(path, holder);
  }
  heldHere.add(path);
  // process.exit() skips async cleanup: drop the lock synchronously if we still hold it.
  const onExit = () => removeIfMine(path, me.nonce);
  process.once('exit', onExit);
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      process.off('exit', onExit);
      removeIfMine(path, me.nonce);
      heldHere.delete(path);
    },
  };
}

async function tryCreate(path: string, me: LockHolder): Promise<boolean> {
  const tmp = `${path}.${me.nonce}.tmp`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(me)}\n`, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await rm(tmp, { force: true });
  }
}

async function readHolder(path: string): Promise<LockHolder | 'absent' | 'unreadable'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'absent' : 'unreadable';
  }
  return parseHolder(text) ?? 'unreadable';
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (
      Number.isInteger(v.pid) &&
      v.pid! > 0 &&
      typeof v.host === 'string' &&
      typeof v.command === 'string' &&
      typeof v.since === 'string' &&
      typeof v.nonce === 'string'
    ) {
      return v as LockHolder;
    }
  } catch {
    // fall through
  }
  return undefined;
}

/** Whether the holder may still run. Another host cannot be asked: assume it does. */
function isAlive(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return true;
  // Our own pid in a lock we do not hold: left by an earlier process (a container restarted with the same pid).
  if (holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes a stale lock, but only if it is still the same stale lock once we hold the guard. */
async function takeOver(path: string, stale: LockHolder): Promise<void> {
  const guard = `${path}.takeover`;
  let fh;
  try {
    fh = await open(guard, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // Another process is taking over right now; a guard left by a crash expires.
    const age = await stat(guard).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    if (age > GUARD_STALE_MS) await rm(guard, { force: true });
    else await new Promise((r) => setTimeout(r, 20));
    return;
  }
  try {
    await fh.close();
    const now = await readHolder(path);
    if (typeof now === 'object' && now.nonce === stale.nonce) await unlink(path);
  } finally {
    await rm(guard, { force: true });
  }
}

function removeIfMine(path: string, nonce: string): void {
  try {
    if (parseHolder(readFileSync(path, 'utf8'))?.nonce === nonce) unlinkSync(path);
  } catch {
    // already gone
  }
}
