// Renewal (spec/PROTOCOL.md §12): an agent replaces its keys and credential before they expire,
// proving the current key (the envelope's signature and HPKE Auth) and the new keys (two proofs).
//
// Request: an envelope (§8) of type "renew" from the CURRENT key, cty "application/json", content
//   {"sig":b64u(new Ed25519 pub),"kx":b64u(new X25519 pub),"pop_sig":b64u(64),"pop_kx":b64u(32)}
//   R       = label("latchkey/1 renew-transcript") || lp(utf8(current sig kid)) || lp(utf8(mid))
//             || lp(new sig pub) || lp(new kx pub)
//   pop_sig = Ed25519-Sign(new signing key, R)
//   pop_kx  = HMAC-SHA256(HKDF-SHA256(ikm = X25519(new kx private, server kx public), salt = "",
//                                     info = "latchkey/1 renew-kx-pop", L = 32), R)
// Binding the current kid and the message id makes each proof good for one request of one lineage.
//
// Response: a signed object (§9) of type "renew-response" whose body is RenewResponseBody.
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { b64u, concatBytes, constantTimeEqual, fromB64uExact, label, lengthPrefixed, utf8 } from './bytes.js';
import type { CryptoBackend, ProtocolContext } from './crypto/types.js';
import { CryptoError, ProtocolError } from './errors.js';
import { onlyKeys, parseJsonObject, str, type JsonObject } from './json.js';
import { acceptAgentPublicKeys } from './agent-keys.js';
import type { KeySet } from './keys.js';
import { signObject, verifySignedObject, type SignedObject } from './signed.js';

export const RENEW_MESSAGE_TYPE = 'renew';
export const RENEW_RESPONSE_TYPE = 'renew-response';
const TRANSCRIPT_LABEL = label('latchkey/1 renew-transcript');
const KX_POP_INFO = utf8('latchkey/1 renew-kx-pop');

/** What the server learns from a valid renewal request: the agent's next keys. */
export interface RenewRequest {
  signingKey: { publicKey: Uint8Array; kid: string };
  agreementKey: { publicKey: Uint8Array; kid: string };
}

export function renewTranscript(currentSigKid: string, mid: string, sig: Uint8Array, kx: Uint8Array): Uint8Array {
  return concatBytes(
    TRANSCRIPT_LABEL,
    lengthPrefixed(utf8(currentSigKid)),
    lengthPrefixed(utf8(mid)),
    lengthPrefixed(sig),
    lengthPrefixed(kx),
  );
}

async function kxProof(c: CryptoBackend, privateKey: Uint8Array, peer: Uint8Array, r: Uint8Array): Promise<Uint8Array> {
  const key = hkdf(sha256, await c.x25519(privateKey, peer), new Uint8Array(0), KX_POP_INFO, 32);
  return hmac(sha256, key, r);
}

/** Agent side: the content of a renew envelope whose header names `currentSigKid` and `mid`. */
export async function renewContent(
  c: CryptoBackend,
  currentSigKid: string,
  mid: string,
  next: KeySet,
  serverAgreementKey: Uint8Array,
): Promise<Uint8Array> {
  const r = renewTranscript(currentSigKid, mid, next.signing.publicKey, next.agreement.publicKey);
  const content: JsonObject = {
    sig: b64u(next.signing.publicKey),
    kx: b64u(next.agreement.publicKey),
    pop_sig: b64u(await c.ed25519Sign(next.signing.privateKey, r)),
    pop_kx: b64u(await kxProof(c, next.agreement.privateKey, serverAgreementKey, r)),
  };
  return utf8(JSON.stringify(content));
}

/**
 * Server side, after the envelope itself was verified and opened: checks the content's shape
 * (`payload_invalid`) and both proofs (`signature_invalid`). A low-order new X25519 key proves
 * nothing and is refused the same way.
 */
export async function openRenewContent(
  c: CryptoBackend,
  content: Uint8Array,
  header: { snd: string; mid: string },
  serverAgreementPrivateKey: Uint8Array,
): Promise<RenewRequest> {
  const bad = 'payload_invalid' as const;
  const p = parseJsonObject(content, bad);
  onlyKeys(p, ['sig', 'kx', 'pop_sig', 'pop_kx'], [], bad);
  const sig = fromB64uExact(str(p, 'sig', bad, 64), 32, bad);
  const kx = fromB64uExact(str(p, 'kx', bad, 64), 32, bad);
  const popSig = fromB64uExact(str(p, 'pop_sig', bad, 128), 64, bad);
  const popKx = fromB64uExact(str(p, 'pop_kx', bad, 64), 32, bad);
  // The one rule for agent keys (agent-keys.ts); a key it refuses could not prove possession either.
  const keys = acceptAgentPublicKeys(sig, kx);
  if (!keys) throw new ProtocolError('signature_invalid');
  const r = renewTranscript(header.snd, header.mid, sig, kx);
  if (!(await c.ed25519Verify(sig, r, popSig))) throw new ProtocolError('signature_invalid');
  let expected: Uint8Array;
  try {
    expected = await kxProof(c, serverAgreementPrivateKey, kx, r);
  } catch (err) {
    if (err instanceof CryptoError) throw new ProtocolError('signature_invalid');
    throw err;
  }
  if (!constantTimeEqual(expected, popKx)) throw new ProtocolError('signature_invalid');
  if (keys.signingKey.kid === header.snd) throw new ProtocolError(bad, 'the new signing key is the current one');
  return keys;
}

export interface RenewResponseBody {
  agentId: string;
  /** The request this answers: the renew envelope's message id and sender kid. */
  mid: string;
  snd: string;
  /** The new keys' ids; the credential names the same keys in `cnf`. */
  sigKid: string;
  kxKid: string;
  credential: string;
  /** New key and credential expiry, ms since the epoch. */
  expiresAt: number;
  /** Until when the current (now superseded) key is still accepted, ms since the epoch. */
  supersededUntil: number;
  iat: number;
}

export function signRenewResponse(
  c: CryptoBackend,
  server: { privateKey: Uint8Array; kid: string },
  body: RenewResponseBody,
): Promise<SignedObject> {
  return signObject(c, server, RENEW_RESPONSE_TYPE, body as unknown as JsonObject);
}

/**
 * Agent side: verifies the response with the pinned server key and that it answers our request
 * (message id, current kid) with our new keys. Anything else is `signature_invalid`: an unproven
 * answer never makes the agent switch keys.
 */
export async function verifyRenewResponse(
  ctx: ProtocolContext,
  server: { publicKey: Uint8Array; kid: string },
  input: unknown,
  expect: { mid: string; snd: string; next: { signing: { kid: string }; agreement: { kid: string } } },
): Promise<RenewResponseBody> {
  const b = await verifySignedObject(ctx.crypto, server, RENEW_RESPONSE_TYPE, input);
  const ok =
    b.mid === expect.mid &&
    b.snd === expect.snd &&
    b.sigKid === expect.next.signing.kid &&
    b.kxKid === expect.next.agreement.kid &&
    typeof b.agentId === 'string' &&
    typeof b.credential === 'string' &&
    typeof b.expiresAt === 'number' &&
    typeof b.supersededUntil === 'number' &&
    typeof b.iat === 'number';
  if (!ok) throw new ProtocolError('signature_invalid', 'response does not answer this request');
  return b as unknown as RenewResponseBody;
}
