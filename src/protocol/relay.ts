// Relay layers (spec/PROTOCOL.md §11): a relay forwards an envelope it cannot open, wrapped in a layer
// it signs. Layers nest, outermost = last relay before the server:
//
//   relayed = {"v":1,"layer":b64u(L),"inner":<envelope or relayed>,"sig":b64u(S)}
//   L       = utf8(JSON {"relay":relay Ed25519 kid,"hop":n,"rat":ms,"src"?:address,"cred":relay credential JWT})
//   S       = Ed25519-Sign(relay signing key, label("latchkey/1 relay-signature") || lp(L) || lp(D(inner)))
//   D(envelope) = SHA-256(label("latchkey/1 receipt-envelope") || lp(M) || lp(sig))        (= the receipt's env, §10)
//   D(relayed)  = SHA-256(label("latchkey/1 relay-digest") || lp(L) || lp(D(inner)) || lp(S))
//
// D is defined over bytes the protocol already fixes (no JSON canonicalisation): the signature input M
// and signature of the envelope, and L, D and S of a layer. The innermost layer has hop 1, each outer
// one exactly its inner's hop + 1, at most MAX_RELAY_HOPS layers. Everything here is pure.
import { sha256 } from '@noble/hashes/sha2.js';
import { b64u, concatBytes, fromB64u, fromB64uExact, label, lengthPrefixed, utf8 } from './bytes.js';
import type { CryptoBackend, ProtocolContext } from './crypto/types.js';
import { parseEnvelope, type Envelope, type ParsedEnvelope } from './envelope.js';
import { ProtocolError } from './errors.js';
import { onlyKeys, parseJsonObject, str, uint, type JsonObject } from './json.js';
import { receiptBindingInput } from './receipt.js';
import { PROTOCOL_VERSION } from './version.js';

/** Most relay layers around one envelope; one more is `hop_limit_exceeded`. */
export const MAX_RELAY_HOPS = 4;
/** Limits on a layer's members (characters), checked before decoding (`envelope_malformed`). */
export const RELAY_LIMITS = { layer: 8192, src: 128, cred: 4096 } as const;

const SIG_LABEL = label('latchkey/1 relay-signature');
const DIGEST_LABEL = label('latchkey/1 relay-digest');
const KID = /^[A-Za-z0-9_-]{22}$/;
const LAYER_KEYS = ['v', 'layer', 'inner', 'sig'] as const;
/** An address as text: 1 to 128 printable ASCII characters, no space. */
const SRC = /^[\x21-\x7e]{1,128}$/;

/** A relayed object on the wire. */
export interface Relayed {
  v: number;
  layer: string;
  inner: Envelope | Relayed;
  sig: string;
}

/** The layer body L, parsed. */
export interface RelayLayerBody {
  /** The relay's Ed25519 key id. */
  relay: string;
  /** 1 for the layer next to the envelope, + 1 per layer outwards. */
  hop: number;
  /** When the relay received the inner object, ms since the epoch (relay's clock). */
  rat: number;
  /** The address the relay received the inner object from, as the relay saw it. */
  src?: string;
  /** The relay's credential (§7), as issued by the server. */
  cred: string;
}

/** One verified-shape layer: its body, the exact bytes, and what its signature covers. */
export interface RelayLayer extends RelayLayerBody {
  /** This layer's wire object (its `inner` is the next layer's wire object or the envelope). */
  wire: Relayed;
  /** L, the exact bytes as sent. */
  layerBytes: Uint8Array;
  /** S, 64 bytes. */
  sig: Uint8Array;
  /** D(inner): the digest of what this layer wraps. */
  innerDigest: Uint8Array;
  /** label("latchkey/1 relay-signature") || lp(L) || lp(D(inner)): what S signs. */
  signatureInput: Uint8Array;
  /** D(this relayed object): what the next layer out signs. */
  digest: Uint8Array;
}

/** A relayed object taken apart: layers outer → inner (hop descending), then the envelope. */
export interface RelayPath {
  relayed: Relayed;
  layers: RelayLayer[];
  envelope: ParsedEnvelope;
}

export interface WrapInput {
  /** What to wrap: an envelope or a relayed object (validated here: it must parse). */
  inner: Envelope | Relayed | unknown;
  relayKid: string;
  /** The relay's Ed25519 private key (32-byte seed). */
  relaySigningKey: Uint8Array;
  /** Received-at, ms since the epoch. */
  rat: number;
  src?: string;
  cred: string;
  /**
   * D(inner) when `inner` is an envelope the caller already parsed and checked (a relay's spooled
   * record: admitted, digest kept): it is then carried as given, not parsed again. A relayed `inner`
   * is always parsed (its hop comes from it).
   */
  envelopeDigest?: Uint8Array;
}

/**
 * Tells a relayed object from an envelope by shape alone: a JSON object with a `layer` member is a
 * relayed object (an envelope never has one); anything else is treated as an envelope.
 */
export function isRelayed(value: unknown): value is Relayed {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.prototype.hasOwnProperty.call(value, 'layer');
}

/** The backend's SHA-256 when it has one (node:crypto on the server's hot path), else noble's. */
type Hashing = Pick<CryptoBackend, 'sha256'> | undefined;
const sha256Of = (crypto: Hashing, data: Uint8Array): Uint8Array => (crypto?.sha256 ?? sha256)(data);

/** D(envelope): the 32 bytes whose b64u is the receipt's `env` (§10). */
export function envelopeDigest(env: ParsedEnvelope, crypto?: Hashing): Uint8Array {
  return sha256Of(crypto, receiptBindingInput(env));
}

/** What a layer's signature covers. */
export function relaySignatureInput(layerBytes: Uint8Array, innerDigest: Uint8Array): Uint8Array {
  return concatBytes(SIG_LABEL, lengthPrefixed(layerBytes), lengthPrefixed(innerDigest));
}

/** D(relayed) for a layer's L, D(inner) and S. */
export function relayedDigestInput(layerBytes: Uint8Array, innerDigest: Uint8Array, sig: Uint8Array): Uint8Array {
  return concatBytes(DIGEST_LABEL, lengthPrefixed(layerBytes), lengthPrefixed(innerDigest), lengthPrefixed(sig));
}

/** The L bytes for a layer body, members in the spec's order (relay, hop, rat, src, cred). */
export function serializeLayerBody(body: RelayLayerBody): Uint8Array {
  const o: JsonObject = { relay: body.relay, hop: body.hop, rat: body.rat };
  if (body.src !== undefined) o.src = body.src;
  o.cred = body.cred;
  return utf8(JSON.stringify(o));
}

/**
 * Wraps `inner` in a layer signed by the relay. The hop is computed (1 around an envelope, inner + 1
 * around a relayed object); a fifth layer is `hop_limit_exceeded`. `inner` is validated first and
 * never modified: it is carried as parsed from the caller's object.
 */
export async function wrapRelayed(ctx: Pick<ProtocolContext, 'crypto'>, input: WrapInput): Promise<Relayed> {
  const bad = 'envelope_malformed' as const;
  let hop: number;
  let innerDigest: Uint8Array;
  let inner: Envelope | Relayed;
  if (isRelayed(input.inner)) {
    const path = parseRelayPath(input.inner, ctx.crypto);
    hop = path.layers[0]!.hop + 1;
    innerDigest = path.layers[0]!.digest;
    inner = path.relayed;
  } else if (input.envelopeDigest !== undefined) {
    if (input.envelopeDigest.length !== 32) throw new ProtocolError(bad, 'invalid envelope digest');
    hop = 1;
    innerDigest = input.envelopeDigest;
    inner = input.inner as Envelope;
  } else {
    const env = parseEnvelope(input.inner);
    hop = 1;
    innerDigest = envelopeDigest(env, ctx.crypto);
    inner = env.wire;
  }
  if (hop > MAX_RELAY_HOPS) throw new ProtocolError('hop_limit_exceeded');
  if (!KID.test(input.relayKid)) throw new ProtocolError(bad, 'invalid relay key id');
  if (!Number.isSafeInteger(input.rat) || input.rat < 0) throw new ProtocolError(bad, 'invalid received-at');
  if (input.src !== undefined && !SRC.test(input.src)) throw new ProtocolError(bad, 'src must be 1 to 128 printable ASCII characters');
  if (input.cred.length > RELAY_LIMITS.cred) throw new ProtocolError(bad, 'credential too long');
  const body: RelayLayerBody = { relay: input.relayKid, hop, rat: input.rat, cred: input.cred };
  if (input.src !== undefined) body.src = input.src;
  const layerBytes = serializeLayerBody(body);
  const sig = await ctx.crypto.ed25519Sign(input.relaySigningKey, relaySignatureInput(layerBytes, innerDigest));
  return { v: PROTOCOL_VERSION, layer: b64u(layerBytes), inner, sig: b64u(sig) };
}

/**
 * Parses and checks the shape of a relayed object (wire bytes, text or a decoded JSON value): closed
 * wrappers and layer bodies, limits, hops, and the innermost envelope (§8 parse). Walks inward
 * without recursion and counts layers before decoding them: a fifth layer is `hop_limit_exceeded`.
 * Signatures are not checked here (verifyLayerSignature). Throws only ProtocolError.
 */
export function parseRelayed(input: Uint8Array | string | unknown): Relayed {
  return parseRelayPath(input).relayed;
}

/** The layers of a relayed object (outer → inner) and its envelope; see parseRelayed. */
export function relayLayers(relayed: Relayed | Uint8Array | string | unknown): { layers: RelayLayer[]; envelope: ParsedEnvelope } {
  const { layers, envelope } = parseRelayPath(relayed);
  return { layers, envelope };
}

/**
 * parseRelayed and relayLayers at once: the validated wire object, its layers and its envelope.
 * `crypto` only chooses the SHA-256 the digests are computed with.
 */
export function parseRelayPath(input: Uint8Array | string | unknown, crypto?: Hashing): RelayPath {
  const bad = 'envelope_malformed' as const;
  const root = input instanceof Uint8Array || typeof input === 'string' ? parseJsonObject(input, bad) : input;
  if (!isRelayed(root)) throw new ProtocolError(bad, 'not a relayed object');
  // Outer → inner: wrappers first (cheap, bounded), so depth is refused before any decoding.
  const wrappers: JsonObject[] = [];
  let cur: unknown = root;
  while (isRelayed(cur)) {
    if (wrappers.length === MAX_RELAY_HOPS) throw new ProtocolError('hop_limit_exceeded');
    const obj = cur as unknown as JsonObject;
    onlyKeys(obj, LAYER_KEYS, [], bad);
    if (obj.v !== PROTOCOL_VERSION) {
      if (typeof obj.v === 'number') throw new ProtocolError('version_unsupported');
      throw new ProtocolError(bad, 'invalid version');
    }
    wrappers.push(obj);
    cur = obj.inner;
  }
  const envelope = parseEnvelope(cur);
  // Inner → outer: hops and digests.
  const layers: RelayLayer[] = [];
  let innerDigest = envelopeDigest(envelope, crypto);
  let inner: Envelope | Relayed = envelope.wire;
  for (let i = wrappers.length - 1; i >= 0; i--) {
    const obj = wrappers[i]!;
    const layerBytes = fromB64u(str(obj, 'layer', bad, RELAY_LIMITS.layer), bad);
    const sig = fromB64uExact(str(obj, 'sig', bad, 128), 64, bad);
    const body = parseLayerBody(layerBytes);
    const expectedHop = wrappers.length - i;
    if (body.hop !== expectedHop) throw new ProtocolError(bad, 'hops must be 1 innermost and grow by one outwards');
    const wire: Relayed = { v: PROTOCOL_VERSION, layer: obj.layer as string, inner, sig: obj.sig as string };
    const digest = sha256Of(crypto, relayedDigestInput(layerBytes, innerDigest, sig));
    layers.push({ ...body, wire, layerBytes, sig, innerDigest, signatureInput: relaySignatureInput(layerBytes, innerDigest), digest });
    innerDigest = digest;
    inner = wire;
  }
  layers.reverse();
  return { relayed: layers[0]!.wire, layers, envelope };
}

function parseLayerBody(bytes: Uint8Array): RelayLayerBody {
  const bad = 'envelope_malformed' as const;
  const o = parseJsonObject(bytes, bad);
  onlyKeys(o, ['relay', 'hop', 'rat', 'cred'], ['src'], bad);
  const relay = str(o, 'relay', bad, 32);
  if (!KID.test(relay)) throw new ProtocolError(bad, 'invalid relay key id');
  const hop = uint(o, 'hop', bad);
  if (hop > MAX_RELAY_HOPS) throw new ProtocolError('hop_limit_exceeded');
  if (hop < 1) throw new ProtocolError(bad, 'hop must be at least 1');
  const rat = uint(o, 'rat', bad);
  const cred = str(o, 'cred', bad, RELAY_LIMITS.cred);
  const body: RelayLayerBody = { relay, hop, rat, cred };
  if (o.src !== undefined) {
    const src = str(o, 'src', bad, RELAY_LIMITS.src);
    if (!SRC.test(src)) throw new ProtocolError(bad, 'src must be printable ASCII');
    body.src = src;
  }
  return body;
}

/** Checks a layer's signature with the relay's registered Ed25519 key; `signature_invalid` otherwise. */
export async function verifyLayerSignature(ctx: Pick<ProtocolContext, 'crypto'>, layer: RelayLayer, publicKey: Uint8Array): Promise<void> {
  if (!(await ctx.crypto.ed25519Verify(publicKey, layer.signatureInput, layer.sig))) throw new ProtocolError('signature_invalid');
}

/** b64u(D(x)) for an envelope or relayed object (e.g. a relay's spool name for it). */
export function digestOf(value: Envelope | Relayed | unknown): string {
  if (isRelayed(value)) return b64u(parseRelayPath(value).layers[0]!.digest);
  return b64u(envelopeDigest(parseEnvelope(value)));
}
