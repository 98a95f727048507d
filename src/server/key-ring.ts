// The server's key ring during a key rotation (spec/PROTOCOL.md §14): the current identity (new
// tokens, the discovery document's keys, admin signatures), previous identities (still accepted,
// announced with their endorsement chain so agents move on) and possibly a next identity (accepted
// before it is announced, so that every instance knows it before any agent uses it). A request is
// answered with the identity it was addressed to, so an agent that has not moved yet can verify it.
import { fromB64u } from '../protocol/bytes.js';
import { parseJsonObject } from '../protocol/json.js';
import type { SignedObject } from '../protocol/signed.js';
import type { ServerIdentity } from './identity.js';

export interface KeyRing {
  current: ServerIdentity;
  previous: readonly ServerIdentity[];
  next: ServerIdentity | undefined;
  /** Current, next, then previous: every identity whose envelopes and credentials are accepted. */
  accepted: readonly ServerIdentity[];
  /** The identity whose X25519 key id is `rcp`, if accepted. */
  byRecipient(rcp: string): ServerIdentity | undefined;
  /** The identity whose Ed25519 key id is `kid` (credentials name their signer so), if accepted. */
  bySigningKid(kid: string): ServerIdentity | undefined;
  byFingerprint(fingerprint: string): ServerIdentity | undefined;
}

export function createKeyRing(current: ServerIdentity, previous: readonly ServerIdentity[] = [], next?: ServerIdentity): KeyRing {
  const accepted: ServerIdentity[] = [];
  for (const id of [current, ...(next ? [next] : []), ...previous]) {
    if (!accepted.some((a) => a.fingerprint === id.fingerprint)) accepted.push(id);
  }
  return {
    current,
    previous: accepted.filter((id) => id !== current && id !== next),
    next: next && next.fingerprint !== current.fingerprint ? next : undefined,
    accepted,
    byRecipient: (rcp) => accepted.find((id) => id.agreement.kid === rcp),
    bySigningKid: (kid) => accepted.find((id) => id.signing.kid === kid),
    byFingerprint: (fp) => accepted.find((id) => id.fingerprint === fp),
  };
}

/**
 * The links an agent pinned to `from` needs to reach the end of `chain` (oldest first): from the
 * link whose `from` is its fingerprint to the last. Empty when `from` is not on the chain.
 */
export function chainFrom(chain: readonly SignedObject[], from: string): SignedObject[] {
  const start = chain.findIndex((link) => endorsementFrom(link) === from);
  return start < 0 ? [] : chain.slice(start);
}

/** `from` of a stored (already verified) endorsement. */
export function endorsementFrom(link: SignedObject): string | undefined {
  try {
    const from = parseJsonObject(fromB64u(link.body), 'server_key_mismatch').from;
    return typeof from === 'string' ? from : undefined;
  } catch {
    return undefined;
  }
}
