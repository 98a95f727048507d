// Enrollment (spec/PROTOCOL.md §Enrollment).
//
// Request, POST /v1/enroll:  {"v":1,"tid":T,"rcp":K,"enc":b64u(32),"ct":b64u(C)}
//   T = token id (in the clear: not secret; lets the server rate-limit and look up before decrypting)
//   K = the server X25519 key id the agent pinned
//   C = HPKE Base mode to the server's X25519 key, info "latchkey/1 enroll-request",
//       aad = lp(utf8(T)) || lp(utf8(K)), plaintext = JSON {tid, secret, fp, name, sig, kx, iat, nonce, pop_sig, pop_kx}
// Proof of possession of both new keys, over the transcript
//   X = label("latchkey/1 enroll-transcript") || lp(utf8(tid)) || lp(utf8(fp)) || lp(sig) || lp(kx)
//       || lp(utf8(name or "")) || u64(iat) || lp(utf8(nonce))     (nonce: its base64url text, not its 16 bytes)
//   pop_sig = Ed25519(new signing key, X)
//   pop_kx  = HMAC-SHA256(HKDF-SHA256(ikm = X25519(new agreement key, server X25519 key), salt = "",
//                                      info = "latchkey/1 enroll-kx-pop", 32), X)
// The token secret exists only inside C: an eavesdropper on plain HTTP sees the token id only.
//
// Response: a signed object of type "enroll-response" (signed.ts) whose body is EnrollResponseBody.
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { b64u, concatBytes, constantTimeEqual, fromB64u, fromB64uExact, label, lengthPrefixed, utf8 } from './bytes.js';
import type { CryptoBackend, ProtocolContext } from './crypto/types.js';
import type { Role } from './credential.js';
import { CryptoError, ProtocolError } from './errors.js';
import { openBase, sealBase } from './hpke.js';
import { onlyKeys, parseJsonObject, str, uint, type JsonObject } from './json.js';
import { acceptAgentPublicKeys } from './agent-keys.js';
import type { KeySet } from './keys.js';
import { signObject, verifySignedObject, type SignedObject } from './signed.js';
import type { EnrollmentToken } from './token.js';
import { PROTOCOL_VERSION } from './version.js';

const INFO = utf8('latchkey/1 enroll-request');
const TRANSCRIPT_LABEL = label('latchkey/1 enroll-transcript');
const KX_POP_INFO = utf8('latchkey/1 enroll-kx-pop');
export const ENROLL_RESPONSE_TYPE = 'enroll-response';

export interface EnrollRequestWire {
  v: number;
  tid: string;
  rcp: string;
  enc: string;
  ct: string;
}

export interface ServerPublicKeys {
  signing: { publicKey: Uint8Array; kid: string };
  agreement: { publicKey: Uint8Array; kid: string };
  fingerprint: string;
}

export interface OpenedEnrollRequest {
  tokenId: string;
  secret: Uint8Array;
  name: string | null;
  signingKey: { publicKey: Uint8Array; kid: string };
  agreementKey: { publicKey: Uint8Array; kid: string };
  iat: number;
  nonce: string;
}

function u64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

/** The proof-of-possession transcript X (spec §6.2). Exported for the vectors. */
export function enrollTranscript(
  tid: string,
  fp: string,
  sig: Uint8Array,
  kx: Uint8Array,
  name: string | null,
  iat: number,
  nonce: string,
): Uint8Array {
  return concatBytes(
    TRANSCRIPT_LABEL,
    lengthPrefixed(utf8(tid)),
    lengthPrefixed(utf8(fp)),
    lengthPrefixed(sig),
    lengthPrefixed(kx),
    lengthPrefixed(utf8(name ?? '')),
    u64(iat),
    lengthPrefixed(utf8(nonce)),
  );
}

/** The pop_kx MAC key: HKDF-SHA256 of the X25519 result, empty salt, info without a zero byte (spec §6.2). */
export async function kxProofKey(c: CryptoBackend, ownKx: Uint8Array, peerKx: Uint8Array): Promise<Uint8Array> {
  return hkdf(sha256, await c.x25519(ownKx, peerKx), new Uint8Array(0), KX_POP_INFO, 32);
}

async function kxProof(c: CryptoBackend, ownKx: Uint8Array, peerKx: Uint8Array, x: Uint8Array): Promise<Uint8Array> {
  return hmac(sha256, await kxProofKey(c, ownKx, peerKx), x);
}

/** The HPKE associated data of an enrollment request: lp(utf8(tid)) || lp(utf8(rcp)). */
export const enrollRequestAad = (tid: string, rcp: string) => concatBytes(lengthPrefixed(utf8(tid)), lengthPrefixed(utf8(rcp)));

/**
 * Agent side: seals an enrollment request to a server whose keys were already checked against the
 * token's fingerprint (see pinServer). Returns the wire object and the nonce the response must echo.
 */
export async function sealEnrollRequest(
  ctx: ProtocolContext,
  token: EnrollmentToken,
  server: ServerPublicKeys,
  agent: KeySet,
  name: string | null,
): Promise<{ request: EnrollRequestWire; nonce: string }> {
  const iat = ctx.now();
  const nonce = b64u(ctx.random(16));
  const x = enrollTranscript(token.tokenId, server.fingerprint, agent.signing.publicKey, agent.agreement.publicKey, name, iat, nonce);
  const plaintext: JsonObject = {
    tid: token.tokenId,
    secret: b64u(token.secret),
    fp: server.fingerprint,
    name,
    sig: b64u(agent.signing.publicKey),
    kx: b64u(agent.agreement.publicKey),
    iat,
    nonce,
    pop_sig: b64u(await ctx.crypto.ed25519Sign(agent.signing.privateKey, x)),
    pop_kx: b64u(await kxProof(ctx.crypto, agent.agreement.privateKey, server.agreement.publicKey, x)),
  };
  const { enc, ct } = await sealBase(
    ctx.crypto,
    server.agreement.publicKey,
    INFO,
    enrollRequestAad(token.tokenId, server.agreement.kid),
    utf8(JSON.stringify(plaintext)),
    ctx.random(32),
  );
  return { request: { v: PROTOCOL_VERSION, tid: token.tokenId, rcp: server.agreement.kid, enc: b64u(enc), ct: b64u(ct) }, nonce };
}

/** Parses the outer request (cheap, before any decryption): token id and recipient key id. */
export function parseEnrollRequest(input: unknown): EnrollRequestWire {
  const bad = 'envelope_malformed' as const;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new ProtocolError(bad, 'not a JSON object');
  const o = input as JsonObject;
  onlyKeys(o, ['v', 'tid', 'rcp', 'enc', 'ct'], [], bad);
  if (o.v !== PROTOCOL_VERSION) throw new ProtocolError(typeof o.v === 'number' ? 'version_unsupported' : bad);
  const tid = str(o, 'tid', 'token_malformed', 32);
  fromB64uExact(tid, 16, 'token_malformed');
  return { v: PROTOCOL_VERSION, tid, rcp: str(o, 'rcp', bad, 32), enc: str(o, 'enc', bad, 64), ct: str(o, 'ct', bad, 16384) };
}

/**
 * Server side: opens the request and checks both proofs of possession. Errors: recipient_mismatch
 * (another server key), decrypt_failed, server_key_mismatch (the agent pinned another fingerprint),
 * payload_invalid (plaintext shape), signature_invalid (either proof fails).
 */
export async function openEnrollRequest(
  ctx: ProtocolContext,
  wire: EnrollRequestWire,
  server: { agreement: { privateKey: Uint8Array; publicKey: Uint8Array; kid: string }; fingerprint: string },
): Promise<OpenedEnrollRequest> {
  if (wire.rcp !== server.agreement.kid) throw new ProtocolError('recipient_mismatch');
  const enc = fromB64uExact(wire.enc, 32, 'envelope_malformed');
  const ct = fromB64u(wire.ct, 'envelope_malformed');
  // The server's public key is at hand: not derived again from the private key on every request.
  const pt = await openBase(
    ctx.crypto,
    enc,
    server.agreement.privateKey,
    INFO,
    enrollRequestAad(wire.tid, wire.rcp),
    ct,
    server.agreement.publicKey,
  );
  const bad = 'payload_invalid' as const;
  const p = parseJsonObject(pt, bad);
  onlyKeys(p, ['tid', 'secret', 'fp', 'name', 'sig', 'kx', 'iat', 'nonce', 'pop_sig', 'pop_kx'], [], bad);
  if (str(p, 'tid', bad, 32) !== wire.tid) throw new ProtocolError(bad, 'token id mismatch');
  const fp = str(p, 'fp', bad, 64);
  if (fp !== server.fingerprint) throw new ProtocolError('server_key_mismatch');
  const secret = fromB64uExact(str(p, 'secret', bad, 64), 32, bad);
  const name = p.name === null ? null : str(p, 'name', bad, 256);
  const sig = fromB64uExact(str(p, 'sig', bad, 64), 32, bad);
  const kx = fromB64uExact(str(p, 'kx', bad, 64), 32, bad);
  const iat = uint(p, 'iat', bad);
  const nonce = str(p, 'nonce', bad, 32);
  fromB64uExact(nonce, 16, bad);
  const popSig = fromB64uExact(str(p, 'pop_sig', bad, 128), 64, bad);
  const popKx = fromB64uExact(str(p, 'pop_kx', bad, 64), 32, bad);

  // The one rule for agent keys (agent-keys.ts); a key it refuses could not prove possession either.
  const keys = acceptAgentPublicKeys(sig, kx);
  if (!keys) throw new ProtocolError('signature_invalid');
  const x = enrollTranscript(wire.tid, fp, sig, kx, name, iat, nonce);
  if (!(await ctx.crypto.ed25519Verify(sig, x, popSig))) throw new ProtocolError('signature_invalid');
  let expected: Uint8Array;
  try {
    expected = await kxProof(ctx.crypto, server.agreement.privateKey, kx, x);
  } catch (err) {
    // A low-order agent X25519 key cannot prove anything.
    if (err instanceof CryptoError) throw new ProtocolError('signature_invalid');
    throw err;
  }
  if (!constantTimeEqual(expected, popKx)) throw new ProtocolError('signature_invalid');
  return {
    tokenId: wire.tid,
    secret,
    name,
    ...keys,
    iat,
    nonce,
  };
}

export interface EnrollResponseBody {
  agentId: string;
  name: string;
  role: Role;
  labels: Record<string, string>;
  credential: string;
  /** Key and credential expiry, ms since the epoch. */
  expiresAt: number;
  /** The request nonce, echoed: binds this response to that request. */
  nonce: string;
  server: { sig: string; sigKid: string; kx: string; kxKid: string; fp: string };
  iat: number;
}

export function signEnrollResponse(
  c: CryptoBackend,
  server: { privateKey: Uint8Array; kid: string },
  body: EnrollResponseBody,
): Promise<SignedObject> {
  return signObject(c, server, ENROLL_RESPONSE_TYPE, body as unknown as JsonObject);
}

/** Agent side: verifies the response with the pinned server key and that it answers our request. */
export async function verifyEnrollResponse(
  c: CryptoBackend,
  server: ServerPublicKeys,
  input: unknown,
  nonce: string,
): Promise<EnrollResponseBody> {
  const body = (await verifySignedObject(c, server.signing, ENROLL_RESPONSE_TYPE, input)) as unknown as EnrollResponseBody;
  if (
    body.nonce !== nonce ||
    body.server?.fp !== server.fingerprint ||
    typeof body.agentId !== 'string' ||
    typeof body.credential !== 'string'
  ) {
    throw new ProtocolError('signature_invalid', 'response does not answer this request');
  }
  return body;
}
