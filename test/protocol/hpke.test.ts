// RFC 9180 official vectors for DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305,
// Base and Auth modes: key derivation, every sequential encryption, every export; on each backend.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { deriveKeyPair, setupAuthR, setupAuthS, setupBaseR, setupBaseS, openAuth, openBase, sealAuth } from '../../src/protocol/hpke.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import { backends, hex, toHex } from '../helpers/backends.js';

interface Vector {
  mode: number;
  info: string;
  ikmR: string;
  ikmE: string;
  ikmS?: string;
  skRm: string;
  skEm: string;
  skSm?: string;
  pkRm: string;
  pkSm?: string;
  enc: string;
  encryptions: { aad: string; ct: string; nonce: string; pt: string }[];
  exports: { exporter_context: string; L: number; exported_value: string }[];
}

const vectors = JSON.parse(readFileSync(new URL('../fixtures/vectors/rfc9180_x25519_chacha.json', import.meta.url), 'utf8')) as Vector[];
const vectorOfMode = (mode: number): Vector => {
  const v = vectors.find((x) => Number(x.mode) === mode);
  if (!v) throw new Error(`the RFC 9180 fixture has no mode ${mode} vector`);
  return v;
};
const baseVector = vectorOfMode(0);
const authVector = vectorOfMode(2);

describe.each(backends)('RFC 9180 vectors on %s', (_name, c) => {
  it('a ciphertext opens only in the mode it was sealed in: the Base vector not as Auth, the Auth vector not as Base', async () => {
    const decryptFailed = (e: unknown) => e instanceof ProtocolError && e.code === 'decrypt_failed';
    const sender = hex(authVector.pkSm!);
    for (const v of [baseVector, authVector]) {
      const r = await deriveKeyPair(c, hex(v.ikmR));
      const [enc, info, first] = [hex(v.enc), hex(v.info), v.encryptions[0]!];
      const [aad, ct] = [hex(first.aad), hex(first.ct)];
      const asBase = () => openBase(c, enc, r.privateKey, info, aad, ct);
      const asAuth = () => openAuth(c, enc, r.privateKey, info, aad, ct, sender);
      // The mode it was sealed in opens it; the other must not: an Auth receiver that accepted a Base
      // ciphertext would accept a sender who proved nothing.
      const [right, wrong] = v === baseVector ? [asBase, asAuth] : [asAuth, asBase];
      expect(toHex(await right())).toBe(first.pt);
      await expect(wrong()).rejects.toSatisfy(decryptFailed);
    }
  });

  for (const v of vectors) {
    const mode = Number(v.mode);
    it(`mode ${mode}: DeriveKeyPair, ${v.encryptions.length} encryptions, ${v.exports.length} exports`, async () => {
      const r = await deriveKeyPair(c, hex(v.ikmR));
      expect(toHex(r.privateKey)).toBe(v.skRm);
      expect(toHex(r.publicKey)).toBe(v.pkRm);
      const e = await deriveKeyPair(c, hex(v.ikmE));
      expect(toHex(e.privateKey)).toBe(v.skEm);
      const info = hex(v.info);
      const sender =
        mode === 0
          ? await setupBaseS(c, r.publicKey, info, e.privateKey)
          : await setupAuthS(c, r.publicKey, info, hex(v.skSm!), e.privateKey);
      expect(toHex(sender.enc)).toBe(v.enc);
      const receiver =
        mode === 0
          ? await setupBaseR(c, sender.enc, r.privateKey, info)
          : await setupAuthR(c, sender.enc, r.privateKey, info, hex(v.pkSm!));
      for (const enc of v.encryptions) {
        expect(toHex(await sender.ctx.seal(hex(enc.aad), hex(enc.pt)))).toBe(enc.ct);
        expect(toHex(await receiver.open(hex(enc.aad), hex(enc.ct)))).toBe(enc.pt);
      }
      for (const x of v.exports) {
        expect(toHex(sender.ctx.export(hex(x.exporter_context), x.L))).toBe(x.exported_value);
        expect(toHex(receiver.export(hex(x.exporter_context), x.L))).toBe(x.exported_value);
      }
    });
  }

  it('Auth mode refuses a different sender key and a low-order ephemeral key with decrypt_failed', async () => {
    const r = await deriveKeyPair(c, new Uint8Array(32).fill(1));
    const s = await deriveKeyPair(c, new Uint8Array(32).fill(2));
    const other = await deriveKeyPair(c, new Uint8Array(32).fill(3));
    const info = new TextEncoder().encode('t');
    const { enc, ct } = await sealAuth(
      c,
      r.publicKey,
      info,
      new Uint8Array(0),
      new Uint8Array([1, 2, 3]),
      s.privateKey,
      new Uint8Array(32).fill(9),
    );
    await expect(openAuth(c, enc, r.privateKey, info, new Uint8Array(0), ct, other.publicKey)).rejects.toSatisfy(
      (e) => e instanceof ProtocolError && e.code === 'decrypt_failed',
    );
    await expect(openAuth(c, new Uint8Array(32), r.privateKey, info, new Uint8Array(0), ct, s.publicKey)).rejects.toSatisfy(
      (e) => e instanceof ProtocolError && e.code === 'decrypt_failed',
    );
    expect(await openAuth(c, enc, r.privateKey, info, new Uint8Array(0), ct, s.publicKey)).toEqual(new Uint8Array([1, 2, 3]));
  });
});
