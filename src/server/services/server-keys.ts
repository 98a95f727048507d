// Server key rotation, the database side (spec/PROTOCOL.md §14): endorsements are public and live
// in `server_key_endorsements`; private keys never do (every instance is given its key sets as
// secrets). The chain a server publishes ends at its current key set and is walked back from it.
import { eq } from 'drizzle-orm';
import type { Db } from '../../db/database.js';
import { serverKeyEndorsements } from '../../db/schema.js';
import type { CryptoBackend } from '../../protocol/crypto/types.js';
import { ProtocolError } from '../../protocol/errors.js';
import { ENDORSEMENT_TYPE, MAX_ENDORSEMENT_CHAIN, followEndorsement, walkEndorsements } from '../../protocol/server-key-endorsement.js';
import type { SignedObject } from '../../protocol/signed.js';
import type { ServerIdentity } from '../identity.js';
import { chainFrom, type KeyRing } from '../key-ring.js';
import { appendAudit } from './audit.js';

/** What the services and routes use: the ring, and the published chain (loaded once, then kept). */
export interface ServerKeys {
  ring: KeyRing;
  /** Endorsements ending at the current key set, oldest first. */
  chain(): Promise<readonly SignedObject[]>;
}

/**
 * The chain for one process: read on first use and kept (the current key set, hence its chain, only
 * changes with a restart). A failed read is not kept: the next request tries again.
 */
export function serverKeysOf(ring: KeyRing): { bind(db: Db): ServerKeys } {
  let cached: Promise<readonly SignedObject[]> | undefined;
  return {
    bind: (db) => ({
      ring,
      chain: () => {
        cached ??= loadEndorsementChain(db, ring.current.fingerprint).catch((err: unknown) => {
          cached = undefined;
          throw err;
        });
        return cached;
      },
    }),
  };
}

/** The endorsements leading to `fingerprint`, oldest first (at most MAX_ENDORSEMENT_CHAIN). */
export async function loadEndorsementChain(db: Db, fingerprint: string): Promise<SignedObject[]> {
  const rows = await db.select().from(serverKeyEndorsements);
  const byTarget = new Map(rows.map((r) => [r.toFingerprint, r]));
  const chain: SignedObject[] = [];
  const seen = new Set<string>();
  for (let fp = fingerprint; byTarget.has(fp) && !seen.has(fp) && chain.length < MAX_ENDORSEMENT_CHAIN;) {
    seen.add(fp);
    const row = byTarget.get(fp)!;
    chain.unshift(row.endorsement);
    fp = row.fromFingerprint;
  }
  return chain;
}

/**
 * The links an agent addressing `addressed` needs to reach the current key set (the `serverKey`
 * directive's `endorsements`); undefined when it is the current or the next set.
 */
export async function directiveChain(keys: ServerKeys, addressed: ServerIdentity): Promise<SignedObject[] | undefined> {
  const { ring } = keys;
  if (addressed === ring.current || addressed === ring.next) return undefined;
  const links = chainFrom(await keys.chain(), addressed.fingerprint);
  return links.length ? links : undefined;
}

/**
 * Startup check: every previous key set must chain to the current one through the stored
 * endorsements (each link verified), or agents still on it could never move. Returns what is wrong.
 */
export async function checkKeyRing(crypto: CryptoBackend, ring: KeyRing, chain: readonly SignedObject[]): Promise<string | undefined> {
  for (const prev of ring.previous) {
    const reached = await walkEndorsements(crypto, prev, chain).catch(() => undefined);
    if (reached?.fingerprint !== ring.current.fingerprint) {
      return `no endorsement chain from the previous key set ${prev.fingerprint} to the current one ${ring.current.fingerprint} in the database (run latchkey identity rotate)`;
    }
  }
  return undefined;
}

/**
 * Stores `endorsement` (made by `from`, endorsing `to`) after verifying it, with its audit entry, in
 * one transaction. Storing the same endorsement again is a no-op; another one for `to` is refused.
 */
export async function recordEndorsement(
  db: Db,
  crypto: CryptoBackend,
  from: ServerIdentity,
  to: { fingerprint: string },
  endorsement: SignedObject,
  audit: { at: Date; actor: string },
): Promise<'stored' | 'exists'> {
  const endorsed = await followEndorsement(crypto, from, endorsement);
  if (endorsed.fingerprint !== to.fingerprint || endorsement.typ !== ENDORSEMENT_TYPE)
    throw new ProtocolError('server_key_mismatch', 'the endorsement does not endorse this key set');
  return db.transaction(async (tx) => {
    const [existing] = await tx
      .select()
      .from(serverKeyEndorsements)
      .where(eq(serverKeyEndorsements.toFingerprint, to.fingerprint))
      .limit(1);
    if (existing) {
      if (existing.fromFingerprint === from.fingerprint) return 'exists';
      throw new ProtocolError('server_key_mismatch', `key set ${to.fingerprint} is already endorsed by ${existing.fromFingerprint}`);
    }
    await tx.insert(serverKeyEndorsements).values({ toFingerprint: to.fingerprint, fromFingerprint: from.fingerprint, endorsement });
    await appendAudit(tx, {
      at: audit.at,
      actor: audit.actor,
      action: 'server.key.rotate',
      outcome: 'success',
      details: { from: from.fingerprint, to: to.fingerprint, fromKid: from.signing.kid },
    });
    return 'stored';
  });
}
