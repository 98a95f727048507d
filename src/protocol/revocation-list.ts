// Revocation lists (spec/PROTOCOL.md §13): what relays and agents check without asking the server.
// A signed object (§9) of type "revocation-list" whose body is
//   {"version":n,"since":m,"issuedAt":ms,"entries":[{"seq":s,"kind":"token"|"key"|"agent","subject":id,"at":ms}]}
// `version` is the highest revocation sequence number the server has; `entries` are those with
// since < seq ≤ version, ascending (since = 0: every entry). Subjects are token ids, signing key ids
// and agent ids — never names or labels. A consumer refuses a list older than the one it holds
// (rollback) and a delta that does not start at or before its version (a gap).
import { ProtocolError } from './errors.js';
import { asObject, onlyKeys, str, uint, type JsonObject } from './json.js';
import { signObject, verifySignedObject, type SignedObject } from './signed.js';
import type { CryptoBackend } from './crypto/types.js';

export const REVOCATION_LIST_TYPE = 'revocation-list';
export const REVOCATION_KINDS = ['token', 'key', 'agent'] as const;
export type RevocationKind = (typeof REVOCATION_KINDS)[number];

export interface RevocationEntry {
  seq: number;
  kind: RevocationKind;
  subject: string;
  at: number;
}

export interface RevocationList {
  version: number;
  since: number;
  issuedAt: number;
  entries: RevocationEntry[];
}

export function signRevocationList(
  c: CryptoBackend,
  server: { privateKey: Uint8Array; kid: string },
  list: RevocationList,
): Promise<SignedObject> {
  return signObject(c, server, REVOCATION_LIST_TYPE, list as unknown as JsonObject);
}

/** Verifies the signature with the pinned key, then the shape (`envelope_malformed`). */
export async function verifyRevocationList(
  c: CryptoBackend,
  server: { publicKey: Uint8Array; kid: string },
  input: unknown,
): Promise<RevocationList> {
  const bad = 'envelope_malformed' as const;
  const b = await verifySignedObject(c, server, REVOCATION_LIST_TYPE, input);
  onlyKeys(b, ['version', 'since', 'issuedAt', 'entries'], [], bad);
  const list: RevocationList = {
    version: uint(b, 'version', bad),
    since: uint(b, 'since', bad),
    issuedAt: uint(b, 'issuedAt', bad),
    entries: [],
  };
  if (!Array.isArray(b.entries) || list.since > list.version) throw new ProtocolError(bad, 'invalid revocation list');
  let last = list.since;
  for (const raw of b.entries) {
    const e = asObject(raw, bad);
    onlyKeys(e, ['seq', 'kind', 'subject', 'at'], [], bad);
    const seq = uint(e, 'seq', bad);
    const kind = str(e, 'kind', bad, 16);
    if (seq <= last || seq > list.version || !(REVOCATION_KINDS as readonly string[]).includes(kind))
      throw new ProtocolError(bad, 'invalid revocation entry');
    last = seq;
    list.entries.push({ seq, kind: kind as RevocationKind, subject: str(e, 'subject', bad, 64), at: uint(e, 'at', bad) });
  }
  return list;
}

/** What a consumer keeps: the version it has reached and every revoked subject by kind. */
export interface HeldRevocations {
  version: number;
  subjects: Record<RevocationKind, Set<string>>;
}

export function emptyRevocations(): HeldRevocations {
  return { version: 0, subjects: { token: new Set(), key: new Set(), agent: new Set() } };
}

/**
 * Applies a verified list to what is held. A lower version is a rollback and a delta starting after
 * the held version leaves a gap: both `stale_message`, and nothing held changes.
 */
export function applyRevocationList(held: HeldRevocations, list: RevocationList): HeldRevocations {
  if (list.version < held.version) throw new ProtocolError('stale_message', 'revocation list older than the one held');
  if (list.since > held.version) throw new ProtocolError('stale_message', 'revocation list delta leaves a gap');
  const subjects = { token: new Set(held.subjects.token), key: new Set(held.subjects.key), agent: new Set(held.subjects.agent) };
  for (const e of list.entries) subjects[e.kind].add(e.subject);
  return { version: list.version, subjects };
}
