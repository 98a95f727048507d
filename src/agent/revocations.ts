// The agent's copy of the server's revocation list (spec/PROTOCOL.md §13): fetched as a delta since
// the version held (`GET /v1/revocations?since=HELD`), verified with the pinned server key, refused
// when it would roll back what is held or leave a gap (`stale_message`, nothing changes), and kept in
// the state dir as revocations.json (0600, atomic). Token ids, key ids and agent ids only.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import {
  applyRevocationList,
  emptyRevocations,
  REVOCATION_KINDS,
  verifyRevocationList,
  type HeldRevocations,
  type RevocationEntry,
} from '../protocol/revocation-list.js';
import { writeSecretFile } from '../node/fs-secure.js';
import { endpoint, exchange, HttpError } from './http.js';
import { loadState, StateError } from './state.js';

export const REVOCATIONS_FILE = 'revocations.json';

/** What the state dir holds: the version reached, when the server signed it, and every subject. */
export interface HeldList extends HeldRevocations {
  /** ms since the epoch, from the signed list; 0 when nothing was fetched yet. */
  issuedAt: number;
  /** ms since the epoch, this host's clock: when a list from upstream last verified (0: never). */
  checkedAt: number;
}

export async function loadRevocations(dir: string): Promise<HeldList> {
  const text = await readFile(join(dir, REVOCATIONS_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) return { ...emptyRevocations(), issuedAt: 0, checkedAt: 0 };
  try {
    const o = JSON.parse(text) as { version: number; issuedAt: number; checkedAt?: number; subjects: Record<string, string[]> };
    if (!Number.isSafeInteger(o.version) || o.version < 0) throw new Error('version');
    const held = emptyRevocations();
    for (const kind of REVOCATION_KINDS) held.subjects[kind] = new Set(o.subjects[kind] ?? []);
    return { ...held, version: o.version, issuedAt: o.issuedAt, checkedAt: o.checkedAt ?? 0 };
  } catch {
    throw new StateError('state_invalid', `${dir} holds an unreadable revocation list`);
  }
}

async function saveRevocations(dir: string, held: HeldList): Promise<void> {
  const subjects = Object.fromEntries(REVOCATION_KINDS.map((k) => [k, [...held.subjects[k]].sort()]));
  await writeSecretFile(
    join(dir, REVOCATIONS_FILE),
    `${JSON.stringify({ v: 1, version: held.version, issuedAt: held.issuedAt, checkedAt: held.checkedAt, subjects }, null, 2)}\n`,
  );
}

export interface RevocationRefresh {
  held: HeldList;
  /** The version held before. */
  previousVersion: number;
  /** Entries this refresh added. */
  added: RevocationEntry[];
}

/**
 * Fetches what was revoked since the version held and keeps it. Anything unsigned (an error status,
 * a page that is not a list) is an HttpError and changes nothing; a list that does not verify with
 * the pinned key is refused as the protocol says; a rollback or a gap is `stale_message`.
 */
export async function refreshRevocations(
  ctx: ProtocolContext,
  dir: string,
  opts: { via?: string | undefined } = {},
): Promise<RevocationRefresh> {
  const state = await loadState(ctx.crypto, dir);
  const held = await loadRevocations(dir);
  const url = endpoint(opts.via ?? state.agent.serverUrl, `/v1/revocations?since=${held.version}`);
  const answer = await exchange(url, { method: 'GET' }, { timeoutMs: 60_000 });
  if (answer.status !== 200) {
    throw new HttpError(
      answer.status === 429 ? 'rate_limited' : 'unsigned_answer',
      `HTTP ${answer.status}: no revocation list`,
      answer.status,
      answer.retryAfterSeconds,
    );
  }
  const list = await verifyRevocationList(ctx.crypto, state.server.signing, answer.json);
  const next = applyRevocationList(held, list); // refuses a rollback or a gap before anything is written
  const added = list.entries.filter((e) => !held.subjects[e.kind].has(e.subject));
  const updated: HeldList = { ...next, issuedAt: Math.max(held.issuedAt, list.issuedAt), checkedAt: ctx.now() };
  // Every time (checkedAt): a relay reports how old its list is, after a restart as well (§11.1).
  await saveRevocations(dir, updated);
  return { held: updated, previousVersion: held.version, added };
}
