// The agent's state dir: its private keys (keys.json, 0600), what enrollment returned (agent.json,
// 0600: ids, credential, the pinned server keys) and the message counter (counter). Directory 0700;
// every write is atomic (temp file, fsync, rename), so a crash never leaves half a key.
import { access, chmod, constants, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { b64u, fromB64uExact } from '../protocol/bytes.js';
import type { CryptoBackend } from '../protocol/crypto/types.js';
import type { Role } from '../protocol/credential.js';
import { keySetFromPrivate, keyIdOf, type KeySet } from '../protocol/keys.js';
import type { ServerPublicKeys } from '../protocol/enrollment.js';
import { writeSecretFile } from '../node/fs-secure.js';
import { failpoint } from './failpoint.js';

export class StateError extends Error {
  constructor(
    readonly code: 'state_missing' | 'state_invalid' | 'state_exists',
    message: string,
  ) {
    super(message);
    this.name = 'StateError';
  }
}

export interface AgentRecord {
  v: 1;
  agentId: string;
  name: string;
  role: Role;
  labels: Record<string, string>;
  serverUrl: string;
  credential: string;
  /** ms since the epoch. */
  expiresAt: number;
  server: { sig: string; sigKid: string; kx: string; kxKid: string; fp: string };
  /** Seconds between sends when the server said so (receipt directive). */
  sendIntervalSeconds?: number;
}

export interface AgentState {
  dir: string;
  keys: KeySet;
  agent: AgentRecord;
  server: ServerPublicKeys;
}

const KEYS = 'keys.json';
const AGENT = 'agent.json';
const COUNTER = 'counter';
/** A renewal in progress (renew.ts): the next keys, made before the request is sent. */
export const PENDING_KEYS = 'pending.json';
/** A verified renewal not yet applied: new keys and record, replaced together on the next load. */
export const RENEWAL_JOURNAL = 'renewed.json';

/**
 * Before enrolling: refuses a dir that already holds an agent (unless forced) and one this user
 * cannot create or write, so a token use is not spent for nothing. Creates nothing: a refused
 * enrollment leaves no state dir behind.
 */
export async function checkStateDir(dir: string, force: boolean): Promise<void> {
  if (!force && (await exists(join(dir, AGENT)))) {
    throw new StateError('state_exists', `${dir} already holds an enrolled agent (use --force to replace it)`);
  }
  let probe = dir;
  for (;;) {
    try {
      await access(probe, constants.W_OK | constants.X_OK);
      return;
    } catch (err) {
      const parent = dirname(probe);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === probe) {
        throw new StateError('state_invalid', `${dir} cannot be created or written by this user`);
      }
      probe = parent;
    }
  }
}

/**
 * Keeps a verified enrollment: the dir (0700) and its files (0600), agent.json last (it is what
 * says "enrolled"). A dir this call created is removed again when a write fails, so a state dir is
 * never left half-made.
 */
export async function saveEnrollment(dir: string, keys: KeySet, agent: AgentRecord): Promise<void> {
  const created = await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    await chmod(dir, 0o700);
    // --force: the old agent (and any renewal of it in progress) is gone before the new keys land.
    for (const old of [AGENT, RENEWAL_JOURNAL, PENDING_KEYS]) await rm(join(dir, old), { force: true });
    await writeSecretFile(
      join(dir, KEYS),
      `${JSON.stringify({ v: 1, signing: b64u(keys.signing.privateKey), agreement: b64u(keys.agreement.privateKey) })}\n`,
    );
    await writeSecretFile(join(dir, AGENT), `${JSON.stringify(agent, null, 2)}\n`);
  } catch (err) {
    if (created !== undefined) await rm(created, { recursive: true, force: true });
    else await rm(join(dir, KEYS), { force: true });
    throw err;
  }
}

export async function saveKeys(dir: string, keys: KeySet): Promise<void> {
  await writeSecretFile(
    join(dir, KEYS),
    `${JSON.stringify({ v: 1, signing: b64u(keys.signing.privateKey), agreement: b64u(keys.agreement.privateKey) })}\n`,
  );
}

export async function saveAgentRecord(dir: string, agent: AgentRecord): Promise<void> {
  await writeSecretFile(join(dir, AGENT), `${JSON.stringify(agent, null, 2)}\n`);
}

/**
 * Finishes a renewal whose verified answer was journaled but not yet applied (a crash between the
 * writes), so keys and credential never disagree. Idempotent.
 */
export async function applyRenewalJournal(crypto: CryptoBackend, dir: string): Promise<void> {
  const text = await readFile(join(dir, RENEWAL_JOURNAL), 'utf8').catch(() => undefined);
  if (text === undefined) return;
  let journal: { keys: { signing: string; agreement: string }; agent: AgentRecord };
  let keys: KeySet;
  try {
    journal = JSON.parse(text) as typeof journal;
    keys = await keySetFromPrivate({ crypto }, fromB64uExact(journal.keys.signing, 32), fromB64uExact(journal.keys.agreement, 32));
  } catch {
    throw new StateError('state_invalid', `${dir} holds an unreadable renewal journal`);
  }
  await saveKeys(dir, keys);
  failpoint('renew:between-files');
  await saveAgentRecord(dir, journal.agent);
  await rm(join(dir, PENDING_KEYS), { force: true });
  await rm(join(dir, RENEWAL_JOURNAL), { force: true });
}

export async function loadState(crypto: CryptoBackend, dir: string): Promise<AgentState> {
  await applyRenewalJournal(crypto, dir);
  let keysText: string;
  let agentText: string;
  try {
    [keysText, agentText] = await Promise.all([readFile(join(dir, KEYS), 'utf8'), readFile(join(dir, AGENT), 'utf8')]);
  } catch {
    throw new StateError('state_missing', `${dir} holds no enrolled agent (run latchkey agent enroll first)`);
  }
  try {
    const k = JSON.parse(keysText) as { signing: string; agreement: string };
    const keys = await keySetFromPrivate({ crypto }, fromB64uExact(k.signing, 32), fromB64uExact(k.agreement, 32));
    const agent = JSON.parse(agentText) as AgentRecord;
    const sig = fromB64uExact(agent.server.sig, 32);
    const kx = fromB64uExact(agent.server.kx, 32);
    const server: ServerPublicKeys = {
      signing: { publicKey: sig, kid: keyIdOf('ed25519', sig) },
      agreement: { publicKey: kx, kid: keyIdOf('x25519', kx) },
      fingerprint: agent.server.fp,
    };
    return { dir, keys, agent, server };
  } catch {
    throw new StateError('state_invalid', `${dir} holds unreadable agent state`);
  }
}

/**
 * The next message counter: strictly greater than every one this state dir handed out, and never
 * below the clock in ms, so even a restored or lost counter file keeps moving forward. Reserved
 * (persisted) before use.
 */
export async function nextCounter(dir: string, nowMs: number): Promise<number> {
  const file = join(dir, COUNTER);
  const last = Number((await readFile(file, 'utf8').catch(() => '0')).trim()) || 0;
  const next = Math.max(last + 1, nowMs);
  await writeSecretFile(file, `${next}\n`);
  return next;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
