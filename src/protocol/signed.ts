// Signed objects (spec/PROTOCOL.md §Signed objects): how the server says anything an agent or relay
// must be able to trust (enrollment responses, receipts, revocation lists, key endorsements).
//   wire  = {"v":1,"typ":T,"kid":K,"body":b64u(B),"sig":b64u(S)}      B = the exact UTF-8 JSON bytes
//   S     = Ed25519(signer, label("latchkey/1 signed") || lp(T) || lp(K) || lp(B))
// The type is inside what is signed, so a signature made for one type never verifies as another.
import { b64u, concatBytes, fromB64u, fromB64uExact, label, lengthPrefixed, utf8 } from './bytes.js';
import type { CryptoBackend } from './crypto/types.js';
import { ProtocolError, type ProtocolErrorCode } from './errors.js';
import { asObject, onlyKeys, parseJsonObject, str, type JsonObject } from './json.js';
import { PROTOCOL_VERSION } from './version.js';

const SIGNED_LABEL = label('latchkey/1 signed');

export interface SignedObject {
  v: number;
  typ: string;
  kid: string;
  body: string;
  sig: string;
}

export function signedInput(typ: string, kid: string, body: Uint8Array): Uint8Array {
  return concatBytes(SIGNED_LABEL, lengthPrefixed(utf8(typ)), lengthPrefixed(utf8(kid)), lengthPrefixed(body));
}

export async function signObject(
  c: CryptoBackend,
  signer: { privateKey: Uint8Array; kid: string },
  typ: string,
  body: JsonObject,
): Promise<SignedObject> {
  const bytes = utf8(JSON.stringify(body));
  const sig = await c.ed25519Sign(signer.privateKey, signedInput(typ, signer.kid, bytes));
  return { v: PROTOCOL_VERSION, typ, kid: signer.kid, body: b64u(bytes), sig: b64u(sig) };
}

/**
 * Verifies a signed object of type `typ` from `signer` and returns its body. Malformed input →
 * `malformed`; wrong version → version_unsupported; wrong type, key or signature → signature_invalid.
 */
export async function verifySignedObject(
  c: CryptoBackend,
  signer: { publicKey: Uint8Array; kid: string },
  typ: string,
  input: unknown,
  malformed: ProtocolErrorCode = 'envelope_malformed',
): Promise<JsonObject> {
  const wire = asObject(input, malformed);
  onlyKeys(wire, ['v', 'typ', 'kid', 'body', 'sig'], [], malformed);
  if (wire.v !== PROTOCOL_VERSION) throw new ProtocolError('version_unsupported');
  const t = str(wire, 'typ', malformed, 64);
  const kid = str(wire, 'kid', malformed, 64);
  const body = fromB64u(str(wire, 'body', malformed, 1 << 24), malformed);
  const sig = fromB64uExact(str(wire, 'sig', malformed, 128), 64, malformed);
  if (t !== typ || kid !== signer.kid) throw new ProtocolError('signature_invalid');
  if (!(await c.ed25519Verify(signer.publicKey, signedInput(t, kid, body), sig))) throw new ProtocolError('signature_invalid');
  return parseJsonObject(body, malformed);
}
