// Receipts (spec/PROTOCOL.md §10): the server's signed answer to each message.
// A signed object of type "receipt" whose body is
//   {"mid":M,"snd":S,"env":E,"status":"accepted"|"rejected","code"?:C,"rat":ms,"dir"?:{"enc":b64u,"ct":b64u}}
// E binds the receipt to the exact envelope it answers (not just its id): a mangled copy of an
// envelope gets a receipt whose E the genuine sender does not recognise.
//   E = b64u(SHA-256(label("latchkey/1 receipt-envelope") || lp(S8) || lp(sig)))
// where S8 is the envelope's signature input (§8) and sig its 64 signature bytes, as received.
// `dir` carries directives sealed to the agent's X25519 key (HPKE Base, info "latchkey/1 directives",
// aad = lp(mid) || lp(snd)); only that agent can read them, and the signature covers them.
import { sha256 } from '@noble/hashes/sha2.js';
import { b64u, concatBytes, fromB64u, fromB64uExact, lengthPrefixed, utf8 } from './bytes.js';
import { isBatchProof, verifyBatchProof } from './batch-receipt.js';
import type { CryptoBackend, ProtocolContext } from './crypto/types.js';
import { bindingFrame, type ParsedEnvelope } from './envelope.js';
import { PROTOCOL_ERROR_CODES, ProtocolError, type ProtocolErrorCode } from './errors.js';
import { openBase, sealBase } from './hpke.js';
import { asObject, parseJsonObject, str, uint, type JsonObject } from './json.js';
import { MAX_ENDORSEMENT_CHAIN } from './server-key-endorsement.js';
import { signObject, verifySignedObject, type SignedObject } from './signed.js';

export const RECEIPT_TYPE = 'receipt';
const DIRECTIVES_INFO = utf8('latchkey/1 directives');

type Bound = Pick<ParsedEnvelope, 'headerBytes' | 'enc' | 'ct' | 'cred' | 'sig'>;

/** The hash input of E (above), for the envelope `e` as received. */
export function receiptBindingInput(e: Bound): Uint8Array {
  // Built once per parsed envelope and shared with the signature check (envelope.ts).
  return bindingFrame(e).bytes;
}

/** E (above): what a receipt's `env` must equal for the envelope `e`. */
export function envelopeBinding(e: Bound): string {
  return b64u(sha256(receiptBindingInput(e)));
}

/** What the server may tell an agent to do. Agents act only after verifying the receipt. */
export interface Directives {
  /** Renew keys and credential now (e.g. after a suspected compromise or before expiry). */
  renewNow?: boolean;
  /** New send interval, seconds. */
  sendIntervalSeconds?: number;
  /**
   * The server's current key set, for an agent that addressed a previous one (spec §14), with the
   * endorsements from the key set it addressed to this one, oldest first. The agent pins it only if
   * the chain walks from its pin (walkEndorsements) to exactly these keys.
   */
  serverKey?: { sig: string; kx: string; fp: string; endorsements: SignedObject[] };
}

export interface Receipt {
  mid: string;
  snd: string;
  /** envelopeBinding() of the envelope answered. */
  env: string;
  status: 'accepted' | 'rejected';
  code?: ProtocolErrorCode;
  /** Received-at, ms since the epoch. */
  rat: number;
  directives?: Directives;
}

/** The directives' associated data: lp(utf8(mid)) || lp(utf8(snd)) (spec §10). */
export const directivesAad = (mid: string, snd: string) => concatBytes(lengthPrefixed(utf8(mid)), lengthPrefixed(utf8(snd)));

export async function signReceipt(
  ctx: ProtocolContext,
  server: { privateKey: Uint8Array; kid: string },
  receipt: Receipt,
  agentAgreementKey?: Uint8Array,
): Promise<SignedObject> {
  return signObject(ctx.crypto, server, RECEIPT_TYPE, await receiptBody(ctx, receipt, agentAgreementKey));
}

/** A receipt's body (above), directives sealed: signed alone, or as one result of a batch (§10.1). */
export async function receiptBody(ctx: ProtocolContext, receipt: Receipt, agentAgreementKey?: Uint8Array): Promise<JsonObject> {
  const body: JsonObject = { mid: receipt.mid, snd: receipt.snd, env: receipt.env, status: receipt.status, rat: receipt.rat };
  if (receipt.code) body.code = receipt.code;
  if (receipt.directives && agentAgreementKey) {
    const { enc, ct } = await sealBase(
      ctx.crypto,
      agentAgreementKey,
      DIRECTIVES_INFO,
      directivesAad(receipt.mid, receipt.snd),
      utf8(JSON.stringify(receipt.directives)),
      ctx.random(32),
    );
    body.dir = { enc: b64u(enc), ct: b64u(ct) };
  }
  return body;
}

/**
 * The body of the server's judgement of one envelope, from a signed receipt or from a batch proof
 * (§10.1), after checking the signature with the pinned key and the binding to `expect`.
 */
export async function verifiedReceiptBody(
  c: CryptoBackend,
  server: { publicKey: Uint8Array; kid: string },
  input: unknown,
  expect: { mid: string; snd: string; env: string },
): Promise<JsonObject> {
  if (isBatchProof(input)) return verifyBatchProof(c, server, input, expect);
  const b = await verifySignedObject(c, server, RECEIPT_TYPE, input);
  if (b.mid !== expect.mid || b.snd !== expect.snd || b.env !== expect.env)
    throw new ProtocolError('signature_invalid', 'receipt is for another message');
  return b;
}

/**
 * Agent side: verifies the server's signature (a receipt, or the agent's share of a batch receipt),
 * that the receipt answers `expect` (our message id, key
 * and the binding of the exact envelope we sent), and opens directives with our X25519 key. Nothing
 * in a receipt is used before this returns.
 */
export async function verifyReceipt(
  ctx: ProtocolContext,
  server: { publicKey: Uint8Array; kid: string },
  input: unknown,
  expect: { mid: string; snd: string; env: string },
  agentAgreementPrivateKey: Uint8Array,
): Promise<Receipt> {
  const bad = 'envelope_malformed' as const;
  const b = await verifiedReceiptBody(ctx.crypto, server, input, expect);
  if ((b.status !== 'accepted' && b.status !== 'rejected') || typeof b.rat !== 'number') throw new ProtocolError(bad, 'invalid receipt');
  const receipt: Receipt = { mid: expect.mid, snd: expect.snd, env: expect.env, status: b.status, rat: b.rat };
  if (b.code !== undefined) {
    if (!(PROTOCOL_ERROR_CODES as readonly unknown[]).includes(b.code)) throw new ProtocolError(bad, 'unknown code');
    receipt.code = b.code as ProtocolErrorCode;
  }
  if (b.dir !== undefined) {
    const dir = b.dir as JsonObject;
    const pt = await openBase(
      ctx.crypto,
      fromB64uExact(String(dir.enc), 32, bad),
      agentAgreementPrivateKey,
      DIRECTIVES_INFO,
      directivesAad(expect.mid, expect.snd),
      fromB64u(String(dir.ct), bad),
    );
    receipt.directives = parseDirectives(parseJsonObject(pt, bad));
  }
  return receipt;
}

/**
 * Known directives are type-checked (a wrong type refuses the receipt: `envelope_malformed`);
 * unknown ones are dropped, so a newer server can add directives older agents simply ignore.
 */
export function parseDirectives(obj: JsonObject): Directives {
  const bad = 'envelope_malformed' as const;
  const d: Directives = {};
  if (obj.renewNow !== undefined) {
    if (typeof obj.renewNow !== 'boolean') throw new ProtocolError(bad, 'renewNow must be a boolean');
    d.renewNow = obj.renewNow;
  }
  if (obj.sendIntervalSeconds !== undefined) d.sendIntervalSeconds = uint(obj, 'sendIntervalSeconds', bad);
  if (obj.serverKey !== undefined) {
    const k = asObject(obj.serverKey, bad);
    const links = k.endorsements;
    if (!Array.isArray(links) || links.length === 0 || links.length > MAX_ENDORSEMENT_CHAIN)
      throw new ProtocolError(bad, 'serverKey.endorsements must be a non-empty list');
    d.serverKey = {
      sig: str(k, 'sig', bad, 64),
      kx: str(k, 'kx', bad, 64),
      fp: str(k, 'fp', bad, 128),
      endorsements: links.map((l) => asObject(l, bad) as unknown as SignedObject),
    };
  }
  return d;
}
