// Server key rotation (spec/PROTOCOL.md §14). The outgoing signing key endorses the next key set:
// a signed object (§9) of type "server-key-endorsement", signed by the OLD signing key, with body
//   {"from":old fingerprint,"sig":b64u(new Ed25519 pub),"kx":b64u(new X25519 pub),"fp":new fingerprint,"notBefore":ms,"iat":ms}
// The endorsements form a chain from the first key set to the current one. An agent that pinned any
// key set on it walks forward from its pin, verifying each link with the key it already trusts, so an
// agent offline across several rotations catches up; a chain that does not start at its pin, or any
// link that fails, is `server_key_mismatch` and nothing new is pinned.
import { b64u, fromB64u, fromB64uExact } from './bytes.js';
import type { CryptoBackend } from './crypto/types.js';
import type { ServerPublicKeys } from './enrollment.js';
import { ProtocolError } from './errors.js';
import { onlyKeys, parseJsonObject, str, uint, type JsonObject } from './json.js';
import { fingerprintOf, keyIdOf } from './keys.js';
import { signObject, verifySignedObject, type SignedObject } from './signed.js';

export const ENDORSEMENT_TYPE = 'server-key-endorsement';
/** A chain longer than this is refused: far more rotations than any deployment makes. */
export const MAX_ENDORSEMENT_CHAIN = 64;

export interface EndorsementBody {
  from: string;
  sig: string;
  kx: string;
  fp: string;
  notBefore: number;
  iat: number;
}

export function endorseServerKeys(
  c: CryptoBackend,
  current: { privateKey: Uint8Array; kid: string; fingerprint: string },
  next: { signing: Uint8Array; agreement: Uint8Array },
  times: { notBefore: number; iat: number },
): Promise<SignedObject> {
  const body: EndorsementBody = {
    from: current.fingerprint,
    sig: b64u(next.signing),
    kx: b64u(next.agreement),
    fp: fingerprintOf(next.signing, next.agreement),
    notBefore: times.notBefore,
    iat: times.iat,
  };
  return signObject(c, current, ENDORSEMENT_TYPE, body as unknown as JsonObject);
}

/** One link: verified with the key set trusted so far; returns the key set it endorses. */
export async function followEndorsement(c: CryptoBackend, trusted: ServerPublicKeys, link: unknown): Promise<ServerPublicKeys> {
  const bad = 'server_key_mismatch' as const;
  let b: JsonObject;
  try {
    b = await verifySignedObject(c, trusted.signing, ENDORSEMENT_TYPE, link, bad);
  } catch (err) {
    if (err instanceof ProtocolError) throw new ProtocolError(bad, 'endorsement does not verify with the pinned key');
    throw err;
  }
  onlyKeys(b, ['from', 'sig', 'kx', 'fp', 'notBefore', 'iat'], [], bad);
  uint(b, 'notBefore', bad);
  uint(b, 'iat', bad);
  const sig = fromB64uExact(str(b, 'sig', bad, 64), 32, bad);
  const kx = fromB64uExact(str(b, 'kx', bad, 64), 32, bad);
  const fp = fingerprintOf(sig, kx);
  if (b.from !== trusted.fingerprint || b.fp !== fp) throw new ProtocolError(bad, 'endorsement does not chain');
  return {
    signing: { publicKey: sig, kid: keyIdOf('ed25519', sig) },
    agreement: { publicKey: kx, kid: keyIdOf('x25519', kx) },
    fingerprint: fp,
  };
}

/**
 * Walks `chain` (oldest first, as the server publishes it) from the pinned key set to the newest.
 * Links before the pin are skipped by their `from`; when the pin is the newest key set the chain
 * adds nothing and the pin is returned. A pin the chain never mentions is `server_key_mismatch`.
 */
export async function walkEndorsements(c: CryptoBackend, pinned: ServerPublicKeys, chain: readonly unknown[]): Promise<ServerPublicKeys> {
  return (await walkEndorsementPath(c, pinned, chain)).at(-1) ?? pinned;
}

/**
 * The same walk, returning every key set reached after the pin, oldest first (empty when the pin is
 * the newest): a relay keeps the sets it passed, as agents may still hold credentials they issued.
 */
export async function walkEndorsementPath(
  c: CryptoBackend,
  pinned: ServerPublicKeys,
  chain: readonly unknown[],
): Promise<ServerPublicKeys[]> {
  if (chain.length > MAX_ENDORSEMENT_CHAIN) throw new ProtocolError('server_key_mismatch', 'endorsement chain too long');
  const start = chain.findIndex((link) => fromOf(link) === pinned.fingerprint);
  if (start < 0) {
    // Our pin is the newest key set only if the last link endorses it (or there is no chain at all).
    const last = chain.at(-1);
    if (last === undefined || endorsedOf(last) === pinned.fingerprint) return [];
    throw new ProtocolError('server_key_mismatch', 'the endorsement chain does not include the pinned key');
  }
  const path: ServerPublicKeys[] = [];
  let trusted = pinned;
  for (const link of chain.slice(start)) path.push((trusted = await followEndorsement(c, trusted, link)));
  return path;
}

/** Unverified peeks used only to find where to start; every link used is then verified. */
function fromOf(link: unknown): string | undefined {
  return peekBody(link)?.from as string | undefined;
}
function endorsedOf(link: unknown): string | undefined {
  return peekBody(link)?.fp as string | undefined;
}
function peekBody(link: unknown): JsonObject | undefined {
  try {
    const body = (link as { body?: unknown }).body;
    if (typeof body !== 'string') return undefined;
    return parseJsonObject(fromB64u(body, 'server_key_mismatch'), 'server_key_mismatch');
  } catch {
    return undefined;
  }
}
