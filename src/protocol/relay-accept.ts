// A relay's "accepted for forwarding" (spec/PROTOCOL.md §11): a signed object (§9) of type
// "relay-accept", signed by the relay's Ed25519 key, whose body is
//   {"mid":M,"snd":S,"env":E,"rat":ms,"relay":relay signing kid}          (members in this order)
// M and S are the envelope header's texts and E its receipt binding (§10), so the acceptance names
// the exact envelope the relay spooled. It promises only that the relay wrote the envelope durably
// and will forward it; delivery is proven by the server's receipt alone. The agent learns the relay's
// key from the relay's credential (§7), verified with the server key it pinned.
import { ProtocolError } from './errors.js';
import { str, uint } from './json.js';
import { signObject, verifySignedObject, type SignedObject } from './signed.js';
import type { CryptoBackend } from './crypto/types.js';

export const RELAY_ACCEPT_TYPE = 'relay-accept';

export interface RelayAccept {
  mid: string;
  snd: string;
  env: string;
  /** When the relay spooled it, ms since the epoch (the relay's clock). */
  rat: number;
  /** The relay's signing kid (also the signed object's kid). */
  relay: string;
}

export function signRelayAccept(
  c: CryptoBackend,
  relay: { privateKey: Uint8Array; kid: string },
  accept: Omit<RelayAccept, 'relay'>,
): Promise<SignedObject> {
  return signObject(c, relay, RELAY_ACCEPT_TYPE, { mid: accept.mid, snd: accept.snd, env: accept.env, rat: accept.rat, relay: relay.kid });
}

/**
 * Verifies an acceptance with the relay's key (from its verified credential) and that it names the
 * envelope `expect`; anything else is `signature_invalid` (or `envelope_malformed` for a bad shape).
 */
export async function verifyRelayAccept(
  c: CryptoBackend,
  relay: { publicKey: Uint8Array; kid: string },
  input: unknown,
  expect: { mid: string; snd: string; env: string },
): Promise<RelayAccept> {
  const bad = 'envelope_malformed' as const;
  const b = await verifySignedObject(c, relay, RELAY_ACCEPT_TYPE, input);
  const accept: RelayAccept = {
    mid: str(b, 'mid', bad, 64),
    snd: str(b, 'snd', bad, 64),
    env: str(b, 'env', bad, 64),
    rat: uint(b, 'rat', bad),
    relay: str(b, 'relay', bad, 64),
  };
  if (accept.mid !== expect.mid || accept.snd !== expect.snd || accept.env !== expect.env || accept.relay !== relay.kid)
    throw new ProtocolError('signature_invalid', 'the acceptance is for another message');
  return accept;
}
