// The relay's view of §11 layers: wrap what it forwards, peel what a relay below it sent. The wire
// format itself (wrap, parse, signature input) belongs to src/protocol/relay.ts; this file only
// adapts it to the relay process.
//   relayed = {"v":1,"layer":b64u(L),"inner":<envelope or relayed>,"sig":b64u(S)}
//   L = utf8(JSON {"relay":kid,"hop":n,"rat":ms,"src"?:address,"cred":relay credential})
import { b64u, concatBytes, fromB64u, fromB64uExact, label, lengthPrefixed, utf8 } from '../protocol/bytes.js';
import type { ProtocolContext } from '../protocol/crypto/types.js';
import { ProtocolError } from '../protocol/errors.js';
import { asObject, onlyKeys, parseJsonObject, str, uint } from '../protocol/json.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { PROTOCOL_VERSION } from '../protocol/version.js';

/** The most layers a message may carry (§11): a relay refuses to add a fifth. */
export const MAX_HOPS = 4;
const SIG_LABEL = label('latchkey/1 relay-signature');

export interface Layer {
  relay: string;
  hop: number;
  rat: number;
  src?: string;
  cred: string;
}

export interface PeeledLayer {
  layer: Layer;
  layerBytes: Uint8Array;
  inner: unknown;
  sig: Uint8Array;
}

/** True when `obj` is a relayed object (has a layer) rather than a bare envelope. */
export function isRelayed(obj: unknown): boolean {
  return typeof obj === 'object' && obj !== null && 'layer' in obj;
}

function signatureInput(layerBytes: Uint8Array, inner: unknown): Uint8Array {
  return concatBytes(SIG_LABEL, lengthPrefixed(layerBytes), lengthPrefixed(sha256(utf8(JSON.stringify(inner)))));
}

export async function wrapLayer(
  ctx: ProtocolContext,
  relay: { privateKey: Uint8Array; kid: string; credential: string },
  inner: unknown,
  at: { hop: number; rat: number; src?: string | undefined },
): Promise<unknown> {
  if (at.hop > MAX_HOPS) throw new ProtocolError('hop_limit_exceeded');
  const layer: Layer = { relay: relay.kid, hop: at.hop, rat: at.rat, ...(at.src ? { src: at.src } : {}), cred: relay.credential };
  const layerBytes = utf8(JSON.stringify(layer));
  const sig = await ctx.crypto.ed25519Sign(relay.privateKey, signatureInput(layerBytes, inner));
  return { v: PROTOCOL_VERSION, layer: b64u(layerBytes), inner, sig: b64u(sig) };
}

/** Every layer, outermost first, and the envelope inside; `hop_limit_exceeded` past MAX_HOPS. */
export function peelLayers(obj: unknown): { layers: PeeledLayer[]; envelope: unknown } {
  const bad = 'envelope_malformed' as const;
  const layers: PeeledLayer[] = [];
  let cur = obj;
  while (isRelayed(cur)) {
    if (layers.length >= MAX_HOPS) throw new ProtocolError('hop_limit_exceeded');
    const o = asObject(cur, bad);
    onlyKeys(o, ['v', 'layer', 'inner', 'sig'], [], bad);
    if (o.v !== PROTOCOL_VERSION) throw new ProtocolError('version_unsupported');
    const layerBytes = fromB64u(str(o, 'layer', bad, 8192), bad);
    const l = parseJsonObject(layerBytes, bad);
    const layer: Layer = {
      relay: str(l, 'relay', bad, 32),
      hop: uint(l, 'hop', bad),
      rat: uint(l, 'rat', bad),
      cred: str(l, 'cred', bad, 4096),
    };
    if (l.src !== undefined) layer.src = str(l, 'src', bad, 128);
    layers.push({ layer, layerBytes, inner: o.inner, sig: fromB64uExact(str(o, 'sig', bad, 128), 64, bad) });
    cur = o.inner;
  }
  // hop strictly decreasing inward by one, the innermost layer being hop 1
  layers.forEach((p, i) => {
    if (p.layer.hop !== layers.length - i) throw new ProtocolError(bad, 'layer hops out of order');
  });
  return { layers, envelope: cur };
}

export async function verifyLayer(ctx: ProtocolContext, peeled: PeeledLayer, relaySigningKey: Uint8Array): Promise<void> {
  if (!(await ctx.crypto.ed25519Verify(relaySigningKey, signatureInput(peeled.layerBytes, peeled.inner), peeled.sig)))
    throw new ProtocolError('signature_invalid');
}
