// The relay's spool (spec/PROTOCOL.md §11): one file per accepted envelope, written durably before
// the relay acknowledges it, deleted only once the server's signed receipt for it was verified.
//   <state>/spool/<snd>.<mid>.json     an envelope (or a relayed object) waiting to be forwarded
//   <state>/expired/<snd>.<mid>.json   moved aside: past the server's freshness window, never sent
//   <state>/refused/<snd>.<mid>.json   moved aside: upstream refused it without a receipt
//   <state>/receipts/<snd>.<mid>.json  the server's signed receipt, for the agent to collect
// Durability: each file is written to a temporary name, fsynced, renamed, and the directory fsynced
// once per batch before anyone is told "accepted". A crash between rename and directory fsync loses
// only envelopes nobody was told about. A crash after the server stored a message and before the
// relay deleted its file makes the relay send it again: the server's message-id uniqueness (§8.1)
// refuses the copy with a signed `replay_detected` bound to the same envelope, which ends it.
// Files hold only what travels on the wire (sealed), never plaintext.
import { randomBytes } from 'node:crypto';
import { close, fsync, open as openFd, writeFile as writeFd } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ProtocolError } from '../protocol/errors.js';

export interface SpoolRecord {
  v: 1;
  /** Received at, ms (the relay's clock): the layer's `rat`. */
  rat: number;
  /** Source address the object came from: the layer's `src`. */
  src?: string;
  snd: string;
  mid: string;
  /** The innermost envelope's receipt binding (§10): what the server's receipt must name. */
  env: string;
  /** The innermost envelope's created-at (ms), for the freshness window. */
  iat: number;
  /** The object as received: an envelope, or a relayed object from a relay below us. */
  object: unknown;
}

export interface SpoolEntry {
  key: string;
  record: SpoolRecord;
  bytes: number;
}

const SUBDIRS = ['spool', 'expired', 'refused', 'receipts'] as const;
export const spoolKey = (snd: string, mid: string) => `${snd}.${mid}`;
const KEY = /^[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}$/;

export interface SpoolStats {
  depth: number;
  bytes: number;
  /** ms since the epoch of the oldest spooled envelope (undefined when empty). */
  oldestRat: number | undefined;
  expired: number;
  refused: number;
}

export class Spool {
  private readonly entries = new Map<string, SpoolEntry>();
  private bytes = 0;
  private expiredCount = 0;
  private refusedCount = 0;

  private constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {}

  /** `readOnly`: look without touching anything (a running relay may own the directory). */
  static async open(stateDir: string, maxBytes: number, readOnly = false): Promise<Spool> {
    const spool = new Spool(stateDir, maxBytes);
    if (!readOnly) for (const sub of SUBDIRS) await mkdir(join(stateDir, sub), { recursive: true, mode: 0o700 });
    for (const name of await readdir(join(stateDir, 'spool')).catch(() => [] as string[])) {
      const path = join(stateDir, 'spool', name);
      if (name.startsWith('.')) {
        if (!readOnly) await rm(path, { force: true }); // a write a crash interrupted: never acknowledged
        continue;
      }
      const key = name.replace(/\.json$/, '');
      if (!KEY.test(key)) continue;
      const text = await readFile(path, 'utf8').catch(() => undefined);
      if (text === undefined) continue; // forwarded meanwhile (read-only look at a running relay)
      try {
        const record = JSON.parse(text) as SpoolRecord;
        spool.entries.set(key, { key, record, bytes: text.length });
        spool.bytes += text.length;
      } catch {
        if (!readOnly) await rename(path, join(stateDir, 'refused', name)); // unreadable: kept aside, never deleted
      }
    }
    const count = async (sub: string) =>
      (await readdir(join(stateDir, sub)).catch(() => [] as string[])).filter((n) => KEY.test(n.replace(/\.json$/, ''))).length;
    spool.expiredCount = await count('expired');
    spool.refusedCount = await count('refused');
    return spool;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  get(key: string): SpoolEntry | undefined {
    return this.entries.get(key);
  }

  /** Every entry, oldest first. */
  list(): SpoolEntry[] {
    return [...this.entries.values()].sort((a, b) => a.record.rat - b.record.rat);
  }

  stats(): SpoolStats {
    let oldest: number | undefined;
    for (const e of this.entries.values()) if (oldest === undefined || e.record.rat < oldest) oldest = e.record.rat;
    return { depth: this.entries.size, bytes: this.bytes, oldestRat: oldest, expired: this.expiredCount, refused: this.refusedCount };
  }

  /**
   * Writes the records durably (every file fsynced, then the directory once). All or nothing for the
   * bound: `relay_full` (nothing written) when they do not fit. Records already spooled are skipped
   * (an agent's retry, or a relay below resending): the key is (snd, mid).
   */
  async put(records: SpoolRecord[]): Promise<void> {
    const fresh: { key: string; text: string }[] = [];
    const seen = new Set<string>();
    for (const record of records) {
      const key = spoolKey(record.snd, record.mid);
      if (this.entries.has(key) || seen.has(key)) continue;
      seen.add(key);
      fresh.push({ key, text: JSON.stringify(record) });
    }
    const adding = fresh.reduce((n, f) => n + f.text.length, 0);
    if (this.bytes + adding > this.maxBytes) throw new ProtocolError('relay_full', undefined, { retryAfterSeconds: 30 });
    // Reserve before the first await, so concurrent puts cannot overshoot the bound together.
    this.bytes += adding;
    try {
      await Promise.all(fresh.map((f) => writeDurably(join(this.dir, 'spool'), `${f.key}.json`, f.text)));
      await syncDirectory(join(this.dir, 'spool'));
    } catch (err) {
      this.bytes -= adding;
      await Promise.all(fresh.map((f) => rm(join(this.dir, 'spool', `${f.key}.json`), { force: true })));
      throw err;
    }
    for (let i = 0; i < fresh.length; i++) {
      const f = fresh[i]!;
      const record = records.find((r) => spoolKey(r.snd, r.mid) === f.key)!;
      this.entries.set(f.key, { key: f.key, record, bytes: f.text.length });
    }
  }

  /** Keeps the server's signed receipts, then deletes their envelopes (the receipts first: a crash between keeps both). */
  async settle(done: { key: string; receipt: unknown }[]): Promise<void> {
    if (done.length === 0) return;
    await Promise.all(done.map((d) => writeFile(join(this.dir, 'receipts', `${d.key}.json`), JSON.stringify(d.receipt), { mode: 0o600 })));
    await syncDirectory(join(this.dir, 'receipts'));
    await Promise.all(done.map((d) => this.drop(d.key, () => unlinkIfThere(join(this.dir, 'spool', `${d.key}.json`)))));
  }

  /** Moves an envelope aside (`expired` or `refused`): counted and kept, never silently deleted. */
  async moveAside(key: string, folder: 'expired' | 'refused', note?: unknown): Promise<void> {
    await this.drop(key, async () => {
      await rename(join(this.dir, 'spool', `${key}.json`), join(this.dir, folder, `${key}.json`));
      if (note !== undefined) await writeFile(join(this.dir, folder, `${key}.why.json`), JSON.stringify(note), { mode: 0o600 });
    });
    if (folder === 'expired') this.expiredCount++;
    else this.refusedCount++;
  }

  private async drop(key: string, io: () => Promise<void>): Promise<void> {
    const e = this.entries.get(key);
    if (!e) return;
    await io();
    this.entries.delete(key);
    this.bytes -= e.bytes;
  }

  /** A receipt kept for (snd, mid), or undefined. */
  async receipt(key: string): Promise<unknown> {
    if (!KEY.test(key)) return undefined;
    const text = await readFile(join(this.dir, 'receipts', `${key}.json`), 'utf8').catch(() => undefined);
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  }

  /** Why upstream refused (snd, mid) without a receipt, if it did. */
  async refusal(key: string): Promise<{ code: string } | undefined> {
    if (!KEY.test(key)) return undefined;
    const text = await readFile(join(this.dir, 'refused', `${key}.why.json`), 'utf8').catch(() => undefined);
    return text === undefined ? undefined : (JSON.parse(text) as { code: string });
  }

  /** Deletes receipts older than `maxAgeMs` (agents collect theirs well before). */
  async pruneReceipts(nowMs: number, maxAgeMs: number): Promise<number> {
    const dir = join(this.dir, 'receipts');
    let pruned = 0;
    for (const name of await readdir(dir)) {
      const s = await stat(join(dir, name)).catch(() => undefined);
      if (s && nowMs - s.mtimeMs > maxAgeMs) {
        await rm(join(dir, name), { force: true });
        pruned++;
      }
    }
    return pruned;
  }
}

/** Reads the spool of a state dir without a running relay (`latchkey relay status`). */
export async function readSpoolStats(stateDir: string): Promise<SpoolStats> {
  const spool = await Spool.open(stateDir, Number.MAX_SAFE_INTEGER, true);
  return spool.stats();
}

// Plain file descriptors rather than fs/promises FileHandles: the same syscalls, without a
// FileHandle object (and its transferable machinery) per envelope, which the relay's profile showed.
const openP = promisify(openFd);
const writeP = promisify(writeFd) as (fd: number, data: string, encoding: BufferEncoding) => Promise<void>;
const fsyncP = promisify(fsync);
const closeP = promisify(close);

async function writeDurably(dir: string, name: string, text: string): Promise<void> {
  const tmp = join(dir, `.${randomBytes(6).toString('hex')}.tmp`);
  const fd = await openP(tmp, 'wx', 0o600);
  try {
    await writeP(fd, text, 'utf8');
    await fsyncP(fd);
  } finally {
    await closeP(fd);
  }
  await rename(tmp, join(dir, name));
}

async function syncDirectory(dir: string): Promise<void> {
  const fd = await openP(dir, 'r');
  try {
    await fsyncP(fd);
  } finally {
    await closeP(fd);
  }
}

/** Deletes a file; one already gone is fine (rm's force, without its lstat). */
async function unlinkIfThere(path: string): Promise<void> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}
