// Relay layers (spec §11): wrapping, parsing, hops, digests and signatures, and every way a relayed
// object can be altered (a byte, a dropped or reordered layer, a fifth layer) refused with its code.
import { sha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import { b64u, concatBytes, fromB64u, label, lengthPrefixed, utf8 } from '../../src/protocol/bytes.js';
import { sealEnvelope, type Envelope } from '../../src/protocol/envelope.js';
import { generateKeySet, type KeySet } from '../../src/protocol/keys.js';
import { envelopeBinding } from '../../src/protocol/receipt.js';
import {
  digestOf,
  envelopeDigest,
  isRelayed,
  MAX_RELAY_HOPS,
  parseRelayed,
  parseRelayPath,
  relayLayers,
  verifyLayerSignature,
  wrapRelayed,
  type Relayed,
} from '../../src/protocol/relay.js';
import { backends } from '../helpers/backends.js';
import { codeOf, testContext } from '../helpers/protocol.js';

describe.each(backends)('relay layers on %s', (_name, crypto) => {
  const ctx = testContext(crypto);
  let agent: KeySet;
  let server: KeySet;
  const relays: KeySet[] = [];

  async function envelope(): Promise<Envelope> {
    agent ??= await generateKeySet(ctx);
    server ??= await generateKeySet(ctx);
    const { envelope } = await sealEnvelope(ctx, {
      sender: agent,
      recipient: server.agreement,
      type: 'inventory',
      contentType: 'application/json',
      contentEncoding: 'identity',
      counter: 1,
      plaintext: utf8('{"x":1}'),
      credential: 'eyJhbGciOiJFZERTQSJ9.e30.c2ln',
    });
    return envelope;
  }

  async function relay(i: number): Promise<KeySet> {
    while (relays.length <= i) relays.push(await generateKeySet(ctx));
    return relays[i]!;
  }

  /** The envelope wrapped by relays 0..n-1 (relay 0 innermost). */
  async function chain(n: number, env?: Envelope): Promise<Relayed> {
    let cur: Envelope | Relayed = env ?? (await envelope());
    for (let i = 0; i < n; i++) {
      const r = await relay(i);
      cur = await wrapRelayed(ctx, {
        inner: cur,
        relayKid: r.signing.kid,
        relaySigningKey: r.signing.privateKey,
        rat: 1_800_000_000_000 + i,
        ...(i === 0 ? { src: '192.0.2.7' } : {}),
        cred: `cred-of-relay-${i}`,
      });
    }
    return cur as Relayed;
  }

  it('wraps up to four layers, hop 1 innermost, and every layer verifies with its relay key', async () => {
    const env = await envelope();
    for (let n = 1; n <= MAX_RELAY_HOPS; n++) {
      const r = await chain(n, env);
      expect(isRelayed(r)).toBe(true);
      const { layers, envelope: inner } = relayLayers(JSON.parse(JSON.stringify(r)));
      expect(layers.map((l) => l.hop)).toEqual(Array.from({ length: n }, (_, i) => n - i));
      expect(inner.wire).toEqual(env);
      for (const [i, l] of layers.entries()) {
        const key = await relay(n - 1 - i);
        expect(l.relay).toBe(key.signing.kid);
        await verifyLayerSignature(ctx, l, key.signing.publicKey);
        expect(await codeOf(verifyLayerSignature(ctx, l, (await relay(9)).signing.publicKey))).toBe('signature_invalid');
      }
      expect(layers.at(-1)!.src).toBe('192.0.2.7');
      expect(layers.at(-1)!.cred).toBe('cred-of-relay-0');
      expect(parseRelayed(utf8(JSON.stringify(r)))).toEqual(r);
    }
    expect(isRelayed(env)).toBe(false);
  });

  it('the digest of an envelope is its receipt binding; of a layer, the labelled hash the spec gives', async () => {
    const env = await envelope();
    const r = await chain(2, env);
    const { layers } = relayLayers(r);
    const inner = layers[1]!;
    expect(b64u(inner.innerDigest)).toBe(envelopeBinding(parseRelayPath(r).envelope));
    const expected = sha256(
      concatBytes(
        label('latchkey/1 relay-digest'),
        lengthPrefixed(inner.layerBytes),
        lengthPrefixed(inner.innerDigest),
        lengthPrefixed(inner.sig),
      ),
    );
    expect(layers[0]!.innerDigest).toEqual(expected);
    expect(layers[0]!.signatureInput).toEqual(
      concatBytes(label('latchkey/1 relay-signature'), lengthPrefixed(layers[0]!.layerBytes), lengthPrefixed(expected)),
    );
    expect(digestOf(r)).toBe(b64u(layers[0]!.digest));
    expect(digestOf(env)).toBe(envelopeBinding(parseRelayPath(r).envelope));
    // Through this backend's own SHA-256 (the server's hot path): the same digests, layer by layer.
    const viaBackend = parseRelayPath(r, crypto);
    expect(viaBackend.layers.map((l) => [l.innerDigest, l.digest])).toEqual(layers.map((l) => [l.innerDigest, l.digest]));
    expect(b64u(envelopeDigest(viaBackend.envelope, crypto))).toBe(envelopeBinding(viaBackend.envelope));
  });

  it('a fifth layer is hop_limit_exceeded, when wrapping and when parsing', async () => {
    const four = await chain(4);
    const r = await relay(4);
    const wrap = { inner: four, relayKid: r.signing.kid, relaySigningKey: r.signing.privateKey, rat: 1, cred: 'c' };
    expect(await codeOf(wrapRelayed(ctx, wrap))).toBe('hop_limit_exceeded');
    // Hand-built: a fifth wrapper is refused before its contents are even looked at.
    const five = { v: 1, layer: 'x', inner: four, sig: 'y' };
    expect(await codeOf(() => parseRelayed(five))).toBe('hop_limit_exceeded');
    // A layer claiming hop 5 on its own.
    const one = await chain(1);
    const body = JSON.parse(new TextDecoder().decode(fromB64u(one.layer))) as Record<string, unknown>;
    const hop5 = { ...one, layer: b64u(utf8(JSON.stringify({ ...body, hop: 5 }))) };
    expect(await codeOf(() => parseRelayed(hop5))).toBe('hop_limit_exceeded');
  });

  it('depth is bounded before recursion: a deeply nested object is refused without a stack overflow', async () => {
    let deep: unknown = await envelope();
    for (let i = 0; i < 100_000; i++) deep = { v: 1, layer: 'a', inner: deep, sig: 'b' };
    expect(await codeOf(() => parseRelayed(deep))).toBe('hop_limit_exceeded');
  });

  it('a dropped or reordered layer breaks the hop sequence (envelope_malformed)', async () => {
    const r = await chain(3);
    const [outer, middle, inner] = relayLayers(r).layers;
    // Drop the middle layer: the outer one now wraps hop 1 directly.
    const dropped = { ...outer!.wire, inner: inner!.wire };
    expect(await codeOf(() => parseRelayed(dropped))).toBe('envelope_malformed');
    // Swap the two inner layers.
    const env = relayLayers(r).envelope.wire;
    const swapped = { ...outer!.wire, inner: { ...inner!.wire, inner: { ...middle!.wire, inner: env } } };
    expect(await codeOf(() => parseRelayed(swapped))).toBe('envelope_malformed');
  });

  it('a layer re-pointed at another inner object (hop preserved) fails its signature', async () => {
    const a = await chain(2);
    const b = await chain(1); // another envelope, same relay 0
    const [outer] = relayLayers(a).layers;
    const forged = { ...outer!.wire, inner: b };
    const path = parseRelayPath(forged);
    expect(await codeOf(verifyLayerSignature(ctx, path.layers[0]!, (await relay(1)).signing.publicKey))).toBe('signature_invalid');
    await verifyLayerSignature(ctx, path.layers[1]!, (await relay(0)).signing.publicKey);
  });

  it('any changed byte of the inner envelope changes every digest, so the layer signatures fail', async () => {
    const r = await chain(2);
    const text = JSON.stringify(r);
    const env = relayLayers(r).envelope.wire;
    const ct = fromB64u(env.ct);
    ct[0]! ^= 1;
    const altered = JSON.parse(text.replace(env.ct, b64u(ct))) as Relayed;
    const path = parseRelayPath(altered);
    for (const [i, l] of path.layers.entries()) {
      expect(await codeOf(verifyLayerSignature(ctx, l, (await relay(1 - i)).signing.publicKey))).toBe('signature_invalid');
    }
  });

  it('closed wrapper and layer body, limits, version', async () => {
    const r = await chain(1);
    const body = JSON.parse(new TextDecoder().decode(fromB64u(r.layer))) as Record<string, unknown>;
    const withBody = (b: unknown) => ({ ...r, layer: b64u(utf8(JSON.stringify(b))) });
    const cases: [unknown, string][] = [
      [{ ...r, extra: 1 }, 'envelope_malformed'],
      [{ v: 1, layer: r.layer, inner: r.inner }, 'envelope_malformed'],
      [{ ...r, v: 2 }, 'version_unsupported'],
      [{ ...r, v: '1' }, 'envelope_malformed'],
      [{ ...r, sig: r.sig.slice(1) }, 'envelope_malformed'],
      [{ ...r, layer: `${r.layer}=` }, 'envelope_malformed'],
      [{ ...r, layer: 'A'.repeat(8196) }, 'envelope_malformed'],
      [{ ...r, inner: { ...r.inner, extra: 1 } }, 'envelope_malformed'],
      [{ ...r, inner: 'x' }, 'envelope_malformed'],
      [withBody({ ...body, extra: 1 }), 'envelope_malformed'],
      [withBody({ ...body, hop: 0 }), 'envelope_malformed'],
      [withBody({ ...body, hop: 2 }), 'envelope_malformed'],
      [withBody({ ...body, relay: 'short' }), 'envelope_malformed'],
      [withBody({ ...body, src: 'x'.repeat(129) }), 'envelope_malformed'],
      [withBody({ ...body, cred: undefined }), 'envelope_malformed'],
      [withBody({ ...body, rat: -1 }), 'envelope_malformed'],
      [withBody([body]), 'envelope_malformed'],
      [await envelope(), 'envelope_malformed'],
      ['not json', 'envelope_malformed'],
    ];
    for (const [input, code] of cases) expect([input, await codeOf(() => parseRelayed(input))]).toEqual([input, code]);
  });
});
