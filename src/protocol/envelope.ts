// Sealed, signed messages from an agent to the server (spec/PROTOCOL.md §Envelope).
//
//   wire   = {"v":1,"header":b64u(H),"enc":b64u(32),"ct":b64u(C),"sig":b64u(64)[,"cred":JWT]}
//   H      = exact UTF-8 bytes of the header JSON (see EnvelopeHeader), sent as is, never re-serialised
//   C      = HPKE Auth mode seal to the server's X25519 key with the agent's static X25519 key:
//            info = "latchkey/1 envelope", aad = H
//   sig    = Ed25519(agent signing key, label("latchkey/1 envelope-signature")
//                    || lp(H) || lp(enc) || lp(C) || lp(cred or ""))
//
// Verification order (cheapest first, no decryption before the signature and replay checks):
// parse → key lookup by header.snd → verifySignature → freshness/replay → open.
import { b64u, fromB64u, fromB64uExact, label, utf8 } from './bytes.js';
import type { ProtocolContext } from './crypto/types.js';
import { ProtocolError } from './errors.js';
import { openAuth, sealAuth } from './hpke.js';
import { onlyKeys, parseJsonObject, str, uint, type JsonObject } from './json.js';
import type { KeySet } from './keys.js';
import { PROTOCOL_VERSION } from './version.js';

/** Message types (never renumber or reuse a name). */
export const MESSAGE_TYPES = ['inventory', 'renew'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];
export const CONTENT_ENCODINGS = ['identity', 'gzip'] as const;
export type ContentEncoding = (typeof CONTENT_ENCODINGS)[number];

const INFO = utf8('latchkey/1 envelope');
/** The receipt binding's label (receipt.ts, spec §10): its hash input frames the signature input. */
const BINDING_LABEL = label('latchkey/1 receipt-envelope');
const SIG_LABEL = label('latchkey/1 envelope-signature');
const MAX_COUNTER = Number.MAX_SAFE_INTEGER;

/** The header: AEAD associated data and first thing the server reads. */
export interface EnvelopeHeader {
  /** Protocol version (1). */
  v: number;
  typ: MessageType;
  /** Sender's Ed25519 key id. */
  snd: string;
  /** Recipient's (server's) X25519 key id. */
  rcp: string;
  /** Message id: b64u of 16 random bytes, unique per sender key forever. */
  mid: string;
  /** Counter, strictly increasing per sender key, 1 ≤ ctr ≤ 2^53 − 1. */
  ctr: number;
  /** Created-at, milliseconds since the Unix epoch (sender's clock). */
  iat: number;
  /** Content type of the plaintext after decoding, e.g. application/json. */
  cty: string;
  /** Content encoding of the plaintext: identity or gzip. */
  cen: ContentEncoding;
}

export interface Envelope {
  v: number;
  header: string;
  enc: string;
  ct: string;
  sig: string;
  cred?: string;
}

/** A parsed envelope: the wire form, its header, and the exact bytes that were signed. */
export interface ParsedEnvelope {
  wire: Envelope;
  header: EnvelopeHeader;
  headerBytes: Uint8Array;
  enc: Uint8Array;
  ct: Uint8Array;
  sig: Uint8Array;
  cred: string | undefined;
}

const HEADER_KEYS = ['v', 'typ', 'snd', 'rcp', 'mid', 'ctr', 'iat', 'cty', 'cen'] as const;
const KID = /^[A-Za-z0-9_-]{22}$/;

/** What the envelope signature covers (spec §8): decoded bytes, never their base64url text. */
export function envelopeSignatureInput(headerBytes: Uint8Array, enc: Uint8Array, ct: Uint8Array, cred: string | undefined): Uint8Array {
  const cred8 = cred === undefined ? EMPTY : utf8(cred);
  const out = new Uint8Array(signatureInputLength(headerBytes, enc, ct, cred8));
  writeSignatureInput(out, 0, headerBytes, enc, ct, cred8);
  return out;
}

const EMPTY = new Uint8Array(0);

const signatureInputLength = (h: Uint8Array, enc: Uint8Array, ct: Uint8Array, cred8: Uint8Array) =>
  SIG_LABEL.length + 16 + h.length + enc.length + ct.length + cred8.length;

/** S8 (above) written at `at` in `out`, each field copied once; returns where it ends. */
function writeSignatureInput(out: Uint8Array, at: number, h: Uint8Array, enc: Uint8Array, ct: Uint8Array, cred8: Uint8Array): number {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out.set(SIG_LABEL, at);
  let o = at + SIG_LABEL.length;
  for (const part of [h, enc, ct, cred8]) {
    view.setUint32(o, part.length);
    out.set(part, o + 4);
    o += 4 + part.length;
  }
  return o;
}

type Framed = Pick<ParsedEnvelope, 'headerBytes' | 'enc' | 'ct' | 'cred' | 'sig'>;

/**
 * The receipt binding's hash input (receipt.ts, spec §10), label || lp(S8) || lp(sig), built in one
 * buffer once per parsed envelope: the signature is verified over the S8 inside it. Remembered only
 * while every field is the very one it was built from (a copy with a field replaced gets its own).
 */
const frames = new WeakMap<object, { of: Framed; bytes: Uint8Array; s8: Uint8Array }>();

export function bindingFrame(e: Framed): { bytes: Uint8Array; s8: Uint8Array } {
  const hit = frames.get(e);
  if (
    hit &&
    hit.of.headerBytes === e.headerBytes &&
    hit.of.enc === e.enc &&
    hit.of.ct === e.ct &&
    hit.of.cred === e.cred &&
    hit.of.sig === e.sig
  )
    return hit;
  const cred8 = e.cred === undefined ? EMPTY : utf8(e.cred);
  const s8Length = signatureInputLength(e.headerBytes, e.enc, e.ct, cred8);
  const bytes = new Uint8Array(BINDING_LABEL.length + 4 + s8Length + 4 + e.sig.length);
  const view = new DataView(bytes.buffer);
  bytes.set(BINDING_LABEL, 0);
  view.setUint32(BINDING_LABEL.length, s8Length);
  const start = BINDING_LABEL.length + 4;
  const end = writeSignatureInput(bytes, start, e.headerBytes, e.enc, e.ct, cred8);
  view.setUint32(end, e.sig.length);
  bytes.set(e.sig, end + 4);
  const frame = {
    of: { headerBytes: e.headerBytes, enc: e.enc, ct: e.ct, cred: e.cred, sig: e.sig },
    bytes,
    s8: bytes.subarray(start, end),
  };
  frames.set(e, frame);
  return frame;
}

export interface SealInput {
  sender: KeySet;
  recipient: { publicKey: Uint8Array; kid: string };
  type: MessageType;
  contentType: string;
  contentEncoding: ContentEncoding;
  counter: number;
  /**
   * Already encoded per contentEncoding (the caller gzips); or made from the header, for content
   * that must name its own message id (a renew request's proofs, §12).
   */
  plaintext: Uint8Array | ((header: EnvelopeHeader) => Promise<Uint8Array>);
  /** The sender's credential JWT, so relays can verify the signature without the server. */
  credential?: string;
}

export async function sealEnvelope(ctx: ProtocolContext, input: SealInput): Promise<{ envelope: Envelope; header: EnvelopeHeader }> {
  if (!Number.isSafeInteger(input.counter) || input.counter < 1 || input.counter > MAX_COUNTER) {
    throw new ProtocolError('payload_invalid', 'counter out of range');
  }
  const header: EnvelopeHeader = {
    v: PROTOCOL_VERSION,
    typ: input.type,
    snd: input.sender.signing.kid,
    rcp: input.recipient.kid,
    mid: b64u(ctx.random(16)),
    ctr: input.counter,
    iat: ctx.now(),
    cty: input.contentType,
    cen: input.contentEncoding,
  };
  const headerBytes = utf8(JSON.stringify(header));
  const plaintext = typeof input.plaintext === 'function' ? await input.plaintext(header) : input.plaintext;
  const { enc, ct } = await sealAuth(
    ctx.crypto,
    input.recipient.publicKey,
    INFO,
    headerBytes,
    plaintext,
    input.sender.agreement.privateKey,
    ctx.random(32),
    input.sender.agreement.publicKey,
  );
  const sig = await ctx.crypto.ed25519Sign(input.sender.signing.privateKey, envelopeSignatureInput(headerBytes, enc, ct, input.credential));
  const envelope: Envelope = { v: PROTOCOL_VERSION, header: b64u(headerBytes), enc: b64u(enc), ct: b64u(ct), sig: b64u(sig) };
  if (input.credential !== undefined) envelope.cred = input.credential;
  return { envelope, header };
}

/** The exact bytes an envelope travels as. */
export function serializeEnvelope(e: Envelope): Uint8Array {
  return utf8(JSON.stringify(e));
}

/** Parses wire bytes or an already-decoded JSON value. Throws only ProtocolError. */
export function parseEnvelope(input: Uint8Array | string | unknown): ParsedEnvelope {
  const obj =
    input instanceof Uint8Array || typeof input === 'string' ? parseJsonObject(input, 'envelope_malformed') : asEnvelopeObject(input);
  return parseEnvelopeObject(obj);
}

function asEnvelopeObject(value: unknown): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ProtocolError('envelope_malformed', 'not a JSON object');
  return value as JsonObject;
}

function parseEnvelopeObject(obj: JsonObject): ParsedEnvelope {
  const bad = 'envelope_malformed' as const;
  onlyKeys(obj, ['v', 'header', 'enc', 'ct', 'sig'], ['cred'], bad);
  if (obj.v !== PROTOCOL_VERSION) {
    if (typeof obj.v === 'number') throw new ProtocolError('version_unsupported');
    throw new ProtocolError(bad, 'invalid version');
  }
  const headerBytes = fromB64u(str(obj, 'header', bad, 2048), bad);
  const enc = fromB64uExact(str(obj, 'enc', bad, 64), 32, bad);
  const ct = fromB64u(str(obj, 'ct', bad, 1 << 26), bad);
  if (ct.length < 16) throw new ProtocolError(bad, 'ciphertext too short');
  const sig = fromB64uExact(str(obj, 'sig', bad, 128), 64, bad);
  const cred = obj.cred === undefined ? undefined : str(obj, 'cred', bad, 4096);
  const header = parseHeader(headerBytes);
  const wire: Envelope = {
    v: PROTOCOL_VERSION,
    header: obj.header as string,
    enc: obj.enc as string,
    ct: obj.ct as string,
    sig: obj.sig as string,
  };
  if (cred !== undefined) wire.cred = cred;
  return { wire, header, headerBytes, enc, ct, sig, cred };
}

function parseHeader(bytes: Uint8Array): EnvelopeHeader {
  const bad = 'envelope_malformed' as const;
  const h = parseJsonObject(bytes, bad);
  onlyKeys(h, HEADER_KEYS, [], bad);
  if (h.v !== PROTOCOL_VERSION) {
    if (typeof h.v === 'number') throw new ProtocolError('version_unsupported');
    throw new ProtocolError(bad, 'invalid header version');
  }
  const typ = str(h, 'typ', bad, 32);
  if (!(MESSAGE_TYPES as readonly string[]).includes(typ)) throw new ProtocolError(bad, 'unknown message type');
  const snd = str(h, 'snd', bad, 32);
  const rcp = str(h, 'rcp', bad, 32);
  if (!KID.test(snd) || !KID.test(rcp)) throw new ProtocolError(bad, 'invalid key id');
  const mid = str(h, 'mid', bad, 32);
  fromB64uExact(mid, 16, bad);
  const ctr = uint(h, 'ctr', bad);
  if (ctr < 1) throw new ProtocolError(bad, 'counter must be positive');
  const iat = uint(h, 'iat', bad);
  const cty = str(h, 'cty', bad, 128);
  const cen = str(h, 'cen', bad, 16);
  if (!(CONTENT_ENCODINGS as readonly string[]).includes(cen)) throw new ProtocolError(bad, 'unknown content encoding');
  return { v: PROTOCOL_VERSION, typ: typ as MessageType, snd, rcp, mid, ctr, iat, cty, cen: cen as ContentEncoding };
}

/** Checks the sender's Ed25519 signature over the whole envelope; `signature_invalid` otherwise. */
export async function verifyEnvelopeSignature(ctx: ProtocolContext, env: ParsedEnvelope, senderSigningKey: Uint8Array): Promise<void> {
  const ok = await ctx.crypto.ed25519Verify(senderSigningKey, bindingFrame(env).s8, env.sig);
  if (!ok) throw new ProtocolError('signature_invalid');
}

/**
 * Opens the ciphertext with the server's X25519 key, authenticating the sender's registered X25519
 * key (Auth mode). `recipient_mismatch` when the header names another server key; otherwise every
 * failure is `decrypt_failed`.
 */
export async function openEnvelope(
  ctx: ProtocolContext,
  env: ParsedEnvelope,
  recipient: { privateKey: Uint8Array; publicKey: Uint8Array; kid: string },
  senderAgreementKey: Uint8Array,
): Promise<Uint8Array> {
  if (env.header.rcp !== recipient.kid) throw new ProtocolError('recipient_mismatch');
  return openAuth(ctx.crypto, env.enc, recipient.privateKey, INFO, env.headerBytes, env.ct, senderAgreementKey, recipient.publicKey);
}

/** Freshness policy (spec §Replay and freshness). */
export interface FreshnessPolicy {
  /** How far in the future created-at may be (clock skew). */
  maxFutureMs: number;
  /** How old a message may be (covers relay buffering). */
  maxAgeMs: number;
  /** How far below the highest accepted counter an unseen message may still be (relay reordering). */
  counterWindow: number;
}

export const DEFAULT_FRESHNESS: FreshnessPolicy = {
  maxFutureMs: 5 * 60_000,
  maxAgeMs: 7 * 24 * 3600_000,
  counterWindow: 4096,
};

/**
 * The counter window (§8.1): a counter is still acceptable while ctr > M − W, M being the highest
 * counter accepted from the key. The storing statement applies the same rule in SQL
 * (server/services/sender-rules.ts), tested against this function in PostgreSQL.
 */
export function counterInWindow(ctr: number, highestCounter: number, counterWindow: number): boolean {
  return ctr > highestCounter - counterWindow;
}

/**
 * `stale_message` when created-at is outside [now − maxAge, now + maxFuture] or the counter is at or
 * below highestCounter − counterWindow. (Message-id uniqueness is checked by the store, atomically.)
 */
export function checkFreshness(
  header: EnvelopeHeader,
  now: number,
  highestCounter: number,
  policy: FreshnessPolicy = DEFAULT_FRESHNESS,
): void {
  if (header.iat > now + policy.maxFutureMs) throw new ProtocolError('stale_message', 'created-at is in the future');
  if (header.iat < now - policy.maxAgeMs) throw new ProtocolError('stale_message', 'message is too old');
  if (!counterInWindow(header.ctr, highestCounter, policy.counterWindow))
    throw new ProtocolError('stale_message', 'counter is below the window');
}
