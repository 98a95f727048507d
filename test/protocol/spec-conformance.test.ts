// An independent implementation of enrollment, envelopes, receipts and batch receipts written from the text of
// spec/PROTOCOL.md alone, on the @noble primitives directly: nothing from src/ is imported. It
// rebuilds the vectors' bytes from their inputs, then opens and verifies them as a server and an
// agent would. If the spec leaves a byte unsaid, this file cannot match the vectors.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';

const load = (name: string) => JSON.parse(readFileSync(new URL(`../../spec/vectors/${name}`, import.meta.url), 'utf8'));
const keys = load('keys.json');
const token = load('token.json');
const enrollment = load('enrollment.json');
const envelope = load('envelope.json');
const receipt = load('receipt.json');
const relay = load('relay.json');
const legacy = load('legacy.json');
const batch = load('batch-receipt.json');
const http = load('http.json');

// §2 Encodings.
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const unb64u = (s: string) => Uint8Array.from(Buffer.from(s, 'base64url'));
const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder('utf-8', { fatal: true }).decode(b);
const cat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
const be = (n: number | bigint, width: number) => {
  const out = new Uint8Array(width);
  let x = BigInt(n);
  for (let i = width - 1; i >= 0; i--, x >>= 8n) out[i] = Number(x & 0xffn);
  return out;
};
const lp = (b: Uint8Array) => cat(be(b.length, 4), b);
const u64 = (n: number) => be(n, 8);
const label = (s: string) => cat(utf8(s), new Uint8Array([0]));
/** An envelope as it travels (§8). */
type Wire = { header: string; enc: string; ct: string; sig: string; cred?: string };
/** §8: the bytes the envelope's signature covers, from the wire form. */
const envelopeSignatureInput = (w: Wire) =>
  cat(label('latchkey/1 envelope-signature'), lp(unb64u(w.header)), lp(unb64u(w.enc)), lp(unb64u(w.ct)), lp(utf8(w.cred ?? '')));
/** §10: D(envelope), the receipt binding: the signature input and the signature as they travelled. */
const envelopeDigest = (w: Wire) => sha256(cat(label('latchkey/1 receipt-envelope'), lp(envelopeSignatureInput(w)), lp(unb64u(w.sig))));

// §4 Identities.
const kid = (alg: 1 | 2, pub: Uint8Array) => b64u(sha256(cat(label('latchkey/1 kid'), new Uint8Array([alg]), pub)).subarray(0, 16));
const fingerprint = (sig: Uint8Array, kx: Uint8Array) => `sha256:${b64u(sha256(cat(label('latchkey/1 fingerprint'), sig, kx)))}`;
function dh(sk: Uint8Array, pk: Uint8Array): Uint8Array {
  const z = x25519.getSharedSecret(sk, pk);
  if (z.every((b) => b === 0)) throw new Error('all-zero X25519 result');
  return z;
}

// RFC 9180, one suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305; single-shot.
const HPKE = {
  kemSuite: cat(utf8('KEM'), be(0x20, 2)),
  suite: cat(utf8('HPKE'), be(0x20, 2), be(1, 2), be(3, 2)),
};
const extract = (salt: Uint8Array, ikm: Uint8Array) => hmac(sha256, salt.length ? salt : new Uint8Array(32), ikm);
const expand = (prk: Uint8Array, info: Uint8Array, length: number) => {
  const out = new Uint8Array(length);
  let t = new Uint8Array(0);
  for (let i = 1, at = 0; at < length; i++, at += 32) {
    t = hmac(sha256, prk, cat(t, info, new Uint8Array([i])));
    out.set(t.subarray(0, Math.min(32, length - at)), at);
  }
  return out;
};
const labeledExtract = (suite: Uint8Array, salt: Uint8Array, l: string, ikm: Uint8Array) =>
  extract(salt, cat(utf8('HPKE-v1'), suite, utf8(l), ikm));
const labeledExpand = (suite: Uint8Array, prk: Uint8Array, l: string, info: Uint8Array, n: number) =>
  expand(prk, cat(be(n, 2), utf8('HPKE-v1'), suite, utf8(l), info), n);
const sharedSecret = (dhs: Uint8Array, kemContext: Uint8Array) =>
  labeledExpand(HPKE.kemSuite, labeledExtract(HPKE.kemSuite, new Uint8Array(0), 'eae_prk', dhs), 'shared_secret', kemContext, 32);
function keySchedule(mode: number, ss: Uint8Array, info: Uint8Array) {
  const ctx = cat(
    new Uint8Array([mode]),
    labeledExtract(HPKE.suite, new Uint8Array(0), 'psk_id_hash', new Uint8Array(0)),
    labeledExtract(HPKE.suite, new Uint8Array(0), 'info_hash', info),
  );
  const secret = labeledExtract(HPKE.suite, ss, 'secret', new Uint8Array(0));
  // Sequence number 0: the nonce is the base nonce.
  return { key: labeledExpand(HPKE.suite, secret, 'key', ctx, 32), nonce: labeledExpand(HPKE.suite, secret, 'base_nonce', ctx, 12) };
}
function sealBase(pkR: Uint8Array, info: Uint8Array, aad: Uint8Array, pt: Uint8Array, skE: Uint8Array) {
  const enc = x25519.getPublicKey(skE);
  const { key, nonce } = keySchedule(0, sharedSecret(dh(skE, pkR), cat(enc, pkR)), info);
  return { enc, ct: chacha20poly1305(key, nonce, aad).encrypt(pt), schedule: { hpkeKeyHex: toHex(key), hpkeBaseNonceHex: toHex(nonce) } };
}
function openBase(enc: Uint8Array, skR: Uint8Array, info: Uint8Array, aad: Uint8Array, ct: Uint8Array) {
  const { key, nonce } = keySchedule(0, sharedSecret(dh(skR, enc), cat(enc, x25519.getPublicKey(skR))), info);
  return chacha20poly1305(key, nonce, aad).decrypt(ct);
}
function sealAuth(pkR: Uint8Array, info: Uint8Array, aad: Uint8Array, pt: Uint8Array, skS: Uint8Array, skE: Uint8Array) {
  const enc = x25519.getPublicKey(skE);
  const ss = sharedSecret(cat(dh(skE, pkR), dh(skS, pkR)), cat(enc, pkR, x25519.getPublicKey(skS)));
  const { key, nonce } = keySchedule(2, ss, info);
  return { enc, ct: chacha20poly1305(key, nonce, aad).encrypt(pt), schedule: { hpkeKeyHex: toHex(key), hpkeBaseNonceHex: toHex(nonce) } };
}
function openAuth(enc: Uint8Array, skR: Uint8Array, info: Uint8Array, aad: Uint8Array, ct: Uint8Array, pkS: Uint8Array) {
  const ss = sharedSecret(cat(dh(skR, enc), dh(skR, pkS)), cat(enc, x25519.getPublicKey(skR), pkS));
  const { key, nonce } = keySchedule(2, ss, info);
  return chacha20poly1305(key, nonce, aad).decrypt(ct);
}

// The parties, from keys.json's inputs.
const server = {
  seed: hex(keys.inputs.serverEd25519Seed),
  kxPriv: hex(keys.inputs.serverX25519Private),
  get sig() {
    return ed25519.getPublicKey(this.seed);
  },
  get kx() {
    return x25519.getPublicKey(this.kxPriv);
  },
};
const agent = {
  seed: hex(keys.inputs.agentEd25519Seed),
  kxPriv: hex(keys.inputs.agentX25519Private),
  get sig() {
    return ed25519.getPublicKey(this.seed);
  },
  get kx() {
    return x25519.getPublicKey(this.kxPriv);
  },
};
const F = fingerprint(server.sig, server.kx);
const serverSigKid = kid(1, server.sig);
const serverKxKid = kid(2, server.kx);
const agentSigKid = kid(1, agent.sig);
const agentKxKid = kid(2, agent.kx);

// §9 Signed objects.
const signedInput = (typ: string, k: string, body: Uint8Array) => cat(label('latchkey/1 signed'), lp(utf8(typ)), lp(utf8(k)), lp(body));
function signObject(typ: string, body: unknown) {
  const B = utf8(JSON.stringify(body));
  return { v: 1, typ, kid: serverSigKid, body: b64u(B), sig: b64u(ed25519.sign(signedInput(typ, serverSigKid, B), server.seed)) };
}
function verifySigned(o: { v: number; typ: string; kid: string; body: string; sig: string }, typ: string) {
  expect(Object.keys(o).sort()).toEqual(['body', 'kid', 'sig', 'typ', 'v']);
  expect([o.v, o.typ, o.kid]).toEqual([1, typ, serverSigKid]);
  const B = unb64u(o.body);
  expect(ed25519.verify(unb64u(o.sig), signedInput(o.typ, o.kid, B), server.sig)).toBe(true);
  return JSON.parse(text(B));
}

describe('an implementation from spec/PROTOCOL.md alone reproduces the vectors', () => {
  it('§4, §5: keys, kids, fingerprint, token, stored hash', () => {
    expect([toHex(server.sig), toHex(server.kx), toHex(agent.sig), toHex(agent.kx)]).toEqual([
      keys.outputs.serverEd25519Public,
      keys.outputs.serverX25519Public,
      keys.outputs.agentEd25519Public,
      keys.outputs.agentX25519Public,
    ]);
    expect([serverSigKid, serverKxKid, agentSigKid, agentKxKid, F]).toEqual([
      keys.outputs.serverSigningKid,
      keys.outputs.serverAgreementKid,
      keys.outputs.agentSigningKid,
      keys.outputs.agentAgreementKid,
      keys.outputs.serverFingerprint,
    ]);
    const id = hex(token.inputs.tokenId);
    const secret = hex(token.inputs.secret);
    const fp = unb64u(F.slice('sha256:'.length));
    const checksum = sha256(cat(label('latchkey/1 token-checksum'), id, secret, fp)).subarray(0, 4);
    expect(`lk1_${b64u(cat(id, secret, fp, checksum))}`).toBe(token.outputs.token);
    expect(toHex(sha256(cat(label('latchkey/1 token-secret'), id, secret)))).toBe(token.outputs.storedSecretHash);
  });

  it('§6.1, §7: the discovery document and the JWKS entry; the agent pins by recomputing the fingerprint', () => {
    const doc = {
      protocol: 'latchkey',
      versions: [1],
      fingerprint: F,
      keys: {
        signing: { alg: 'Ed25519', kid: serverSigKid, publicKey: b64u(server.sig) },
        agreement: { alg: 'X25519', kid: serverKxKid, publicKey: b64u(server.kx) },
      },
      jwksUri: '/.well-known/jwks.json',
    };
    expect(JSON.stringify(doc)).toBe(JSON.stringify(keys.outputs.discovery));
    const d = keys.outputs.discovery;
    expect(fingerprint(unb64u(d.keys.signing.publicKey), unb64u(d.keys.agreement.publicKey))).toBe(token.inputs.serverFingerprint);
    const jwk = { kty: 'OKP', crv: 'Ed25519', x: b64u(server.sig), kid: serverSigKid, use: 'sig', alg: 'EdDSA' };
    expect(JSON.stringify({ keys: [jwk] })).toBe(JSON.stringify(keys.outputs.jwks));
  });

  it('§6.2: the enrollment request, byte for byte; the server opens it and checks both proofs', () => {
    const T = b64u(hex(token.inputs.tokenId));
    const N = enrollment.inputs.name as string;
    const iat = enrollment.inputs.now as number;
    const [nonceDraw, ephemeral] = enrollment.inputs.randomDraws.map((d: { hex: string }) => hex(d.hex));
    const nonce = b64u(nonceDraw!);
    const X = cat(
      label('latchkey/1 enroll-transcript'),
      lp(utf8(T)),
      lp(utf8(F)),
      lp(agent.sig),
      lp(agent.kx),
      lp(utf8(N)),
      u64(iat),
      lp(utf8(nonce)),
    );
    expect(toHex(X)).toBe(enrollment.intermediate.transcriptHex);
    const popSig = b64u(ed25519.sign(X, agent.seed));
    const kPop = hkdf(sha256, dh(agent.kxPriv, server.kx), new Uint8Array(0), utf8('latchkey/1 enroll-kx-pop'), 32);
    const popKx = b64u(hmac(sha256, kPop, X));
    const P = utf8(
      JSON.stringify({
        tid: T,
        secret: b64u(hex(token.inputs.secret)),
        fp: F,
        name: N,
        sig: b64u(agent.sig),
        kx: b64u(agent.kx),
        iat,
        nonce,
        pop_sig: popSig,
        pop_kx: popKx,
      }),
    );
    expect([popSig, toHex(kPop), popKx, text(P)]).toEqual([
      enrollment.intermediate.popSig,
      enrollment.intermediate.kxPopKeyHex,
      enrollment.intermediate.popKx,
      enrollment.intermediate.plaintext,
    ]);
    const aad = cat(lp(utf8(T)), lp(utf8(serverKxKid)));
    const { enc, ct, schedule } = sealBase(server.kx, utf8('latchkey/1 enroll-request'), aad, P, ephemeral!);
    expect(toHex(aad)).toBe(enrollment.intermediate.aadHex);
    expect(schedule).toEqual({
      hpkeKeyHex: enrollment.intermediate.hpkeKeyHex,
      hpkeBaseNonceHex: enrollment.intermediate.hpkeBaseNonceHex,
    });
    const request = { v: 1, tid: T, rcp: serverKxKid, enc: b64u(enc), ct: b64u(ct) };
    expect(request).toEqual(enrollment.outputs.request);
    expect(JSON.stringify(request)).toBe(enrollment.outputs.wire);

    // Server side.
    const w = JSON.parse(enrollment.outputs.wire);
    expect(w.rcp).toBe(serverKxKid);
    const p = JSON.parse(
      text(openBase(unb64u(w.enc), server.kxPriv, utf8('latchkey/1 enroll-request'), cat(lp(utf8(w.tid)), lp(utf8(w.rcp))), unb64u(w.ct))),
    );
    expect([p.tid, p.fp]).toEqual([w.tid, F]);
    const x = cat(
      label('latchkey/1 enroll-transcript'),
      lp(utf8(p.tid)),
      lp(utf8(p.fp)),
      lp(unb64u(p.sig)),
      lp(unb64u(p.kx)),
      lp(utf8(p.name ?? '')),
      u64(p.iat),
      lp(utf8(p.nonce)),
    );
    expect(ed25519.verify(unb64u(p.pop_sig), x, unb64u(p.sig))).toBe(true);
    const serverKPop = hkdf(sha256, dh(server.kxPriv, unb64u(p.kx)), new Uint8Array(0), utf8('latchkey/1 enroll-kx-pop'), 32);
    expect(b64u(hmac(sha256, serverKPop, x))).toBe(p.pop_kx);
    expect(toHex(sha256(cat(label('latchkey/1 token-secret'), unb64u(p.tid), unb64u(p.secret))))).toBe(token.outputs.storedSecretHash);
  });

  it('§6.4, §7: the credential and the enroll-response, byte for byte; the agent verifies both with the pinned key', () => {
    const i = enrollment.inputs;
    const iat = Math.floor(i.now / 1000);
    const exp = iat + 30 * 86400;
    const header = { alg: 'EdDSA', kid: serverSigKid, typ: 'latchkey-credential+jwt' };
    const claims = {
      role: 'agent',
      cnf: { sig_kid: agentSigKid, kx_kid: agentKxKid, sig: b64u(agent.sig), kx: b64u(agent.kx) },
      ver: 1,
      iss: F,
      sub: i.agentId,
      iat,
      exp,
      jti: i.credentialJti,
    };
    const signingInput = `${b64u(utf8(JSON.stringify(header)))}.${b64u(utf8(JSON.stringify(claims)))}`;
    const credential = `${signingInput}.${b64u(ed25519.sign(utf8(signingInput), server.seed))}`;
    expect(credential).toBe(enrollment.outputs.credential);
    const nonce = b64u(hex(i.randomDraws[0].hex));
    const body = {
      agentId: i.agentId,
      name: i.name,
      role: 'agent',
      labels: i.labels,
      credential,
      expiresAt: exp * 1000,
      nonce,
      server: { sig: b64u(server.sig), sigKid: serverSigKid, kx: b64u(server.kx), kxKid: serverKxKid, fp: F },
      iat: i.now,
    };
    expect(signObject('enroll-response', body)).toEqual(enrollment.outputs.response);

    // Agent side: pinned key only.
    const got = verifySigned(enrollment.outputs.response, 'enroll-response');
    expect([got.nonce, got.server.fp]).toEqual([nonce, F]);
    const [h, c, s] = got.credential.split('.');
    expect(JSON.parse(text(unb64u(h)))).toEqual(header);
    expect(ed25519.verify(unb64u(s), utf8(`${h}.${c}`), server.sig)).toBe(true);
    const cl = JSON.parse(text(unb64u(c)));
    expect([cl.iss, cl.sub, cl.cnf.sig_kid, cl.cnf.kx_kid, cl.exp * 1000]).toEqual([
      F,
      got.agentId,
      agentSigKid,
      agentKxKid,
      got.expiresAt,
    ]);
  });

  it('§8: identity and gzip envelopes, byte for byte; the server verifies and opens them', () => {
    for (const v of [envelope, envelope.gzip]) {
      const i = v.inputs;
      const [midDraw, ephemeral] = i.randomDraws.map((d: { hex: string }) => hex(d.hex));
      const header = {
        v: 1,
        typ: i.type,
        snd: agentSigKid,
        rcp: serverKxKid,
        mid: b64u(midDraw!),
        ctr: i.counter,
        iat: i.now,
        cty: i.contentType,
        cen: i.contentEncoding,
      };
      const H = utf8(JSON.stringify(header));
      // Any valid gzip will do for the protocol; the vector fixes one to reproduce its bytes.
      const content = i.contentEncoding === 'gzip' ? hex(v.intermediate.gzipHex) : utf8(i.plaintext);
      const { enc, ct, schedule } = sealAuth(server.kx, utf8('latchkey/1 envelope'), H, content, agent.kxPriv, ephemeral!);
      expect([text(H), schedule]).toEqual([
        v.intermediate.headerText,
        { hpkeKeyHex: v.intermediate.hpkeKeyHex, hpkeBaseNonceHex: v.intermediate.hpkeBaseNonceHex },
      ]);
      const cred = enrollment.outputs.credential as string;
      const sigInput = cat(label('latchkey/1 envelope-signature'), lp(H), lp(enc), lp(ct), lp(utf8(cred)));
      expect(toHex(sigInput)).toBe(v.intermediate.signatureInputHex);
      const env = { v: 1, header: b64u(H), enc: b64u(enc), ct: b64u(ct), sig: b64u(ed25519.sign(sigInput, agent.seed)), cred };
      expect(JSON.stringify(env)).toBe(v.outputs.wire);

      // Server side: the signature over the decoded bytes, then Auth-mode open with the registered key.
      const w = JSON.parse(v.outputs.wire);
      const h = unb64u(w.header);
      const hdr = JSON.parse(text(h));
      expect(ed25519.verify(unb64u(w.sig), envelopeSignatureInput(w), agent.sig)).toBe(true);
      const pt = openAuth(unb64u(w.enc), server.kxPriv, utf8('latchkey/1 envelope'), h, unb64u(w.ct), agent.kx);
      expect(text(hdr.cen === 'gzip' ? new Uint8Array(gunzipSync(pt)) : pt)).toBe(i.plaintext);
    }
  });

  it('§10: receipts bound to their envelope, with sealed directives, byte for byte; the agent verifies and opens them', () => {
    const i = receipt.inputs;
    // env: the hash of the answered envelope's signature input and signature, as they travelled.
    const w = JSON.parse(envelope.outputs.wire);
    const bound = b64u(envelopeDigest(w));
    expect(bound).toBe(receipt.outputs.env);
    const aad = cat(lp(utf8(i.mid)), lp(utf8(i.snd)));
    const { enc, ct, schedule } = sealBase(
      agent.kx,
      utf8('latchkey/1 directives'),
      aad,
      utf8(JSON.stringify(i.directives)),
      hex(i.randomDraws[0].hex),
    );
    expect([toHex(aad), schedule]).toEqual([receipt.intermediate.accepted.directivesAadHex, receipt.intermediate.accepted.directives]);
    expect(
      signObject('receipt', { mid: i.mid, snd: i.snd, env: bound, status: 'accepted', rat: i.rat, dir: { enc: b64u(enc), ct: b64u(ct) } }),
    ).toEqual(receipt.outputs.accepted);
    expect(
      signObject('receipt', { mid: i.mid, snd: i.snd, env: bound, status: 'rejected', rat: i.rejected.rat, code: i.rejected.code }),
    ).toEqual(receipt.outputs.rejected);

    const got = verifySigned(receipt.outputs.accepted, 'receipt');
    expect([got.mid, got.snd, got.env]).toEqual([i.mid, i.snd, bound]);
    expect(JSON.parse(text(openBase(unb64u(got.dir.enc), agent.kxPriv, utf8('latchkey/1 directives'), aad, unb64u(got.dir.ct))))).toEqual(
      i.directives,
    );
  });

  it("§11.2: a relay's legacy-origin envelope, byte for byte; the server opens it and finds the legacy agent", () => {
    const i = legacy.inputs;
    const r = relay.inputs.relays[0];
    const seed = hex(r.ed25519SeedHex);
    const kxPriv = hex(r.x25519PrivateHex);
    const [midDraw, ephemeral] = i.randomDraws.map((d: { hex: string }) => hex(d.hex));
    // The content: members origin, id, protocol, cty, body (b64u of the agent's bytes), compact JSON.
    const content = utf8(JSON.stringify({ origin: 'legacy', id: i.legacyId, protocol: i.protocol, cty: i.cty, body: b64u(utf8(i.body)) }));
    expect(text(content)).toBe(legacy.intermediate.contentText);
    const header = {
      v: 1,
      typ: 'inventory',
      snd: kid(1, ed25519.getPublicKey(seed)),
      rcp: serverKxKid,
      mid: b64u(midDraw!),
      ctr: i.counter,
      iat: i.now,
      cty: 'application/vnd.latchkey.legacy+json',
      cen: 'identity',
    };
    const H = utf8(JSON.stringify(header));
    expect(text(H)).toBe(legacy.intermediate.headerText);
    const { enc, ct, schedule } = sealAuth(server.kx, utf8('latchkey/1 envelope'), H, content, kxPriv, ephemeral!);
    expect(schedule).toEqual({ hpkeKeyHex: legacy.intermediate.hpkeKeyHex, hpkeBaseNonceHex: legacy.intermediate.hpkeBaseNonceHex });
    const cred = r.credential as string;
    const sigInput = cat(label('latchkey/1 envelope-signature'), lp(H), lp(enc), lp(ct), lp(utf8(cred)));
    expect(toHex(sigInput)).toBe(legacy.intermediate.signatureInputHex);
    const env = { v: 1, header: b64u(H), enc: b64u(enc), ct: b64u(ct), sig: b64u(ed25519.sign(sigInput, seed)), cred };
    expect(JSON.stringify(env)).toBe(legacy.outputs.wire);

    // Server side: the sender's credential says role relay (only a relay may send this cty), then open.
    const claims = JSON.parse(text(unb64u(cred.split('.')[1]!)));
    expect(claims.role).toBe('relay');
    const pt = openAuth(enc, server.kxPriv, utf8('latchkey/1 envelope'), H, ct, x25519.getPublicKey(kxPriv));
    const o = JSON.parse(text(pt));
    expect(Object.keys(o)).toEqual(['origin', 'id', 'protocol', 'cty', 'body']);
    expect(text(unb64u(o.body))).toBe(i.body);
    // The legacy agent: "legacy-" + b64u(first 16 bytes of SHA-256(label("latchkey/1 legacy-agent") || utf8(id))).
    const idInput = cat(label('latchkey/1 legacy-agent'), utf8(o.id));
    expect(toHex(idInput)).toBe(legacy.intermediate.legacyAgentIdInputHex);
    expect(`legacy-${b64u(sha256(idInput).subarray(0, 16))}`).toBe(legacy.outputs.legacyAgentId);
  });

  it('§10.1: a batch receipt over the request and every result, byte for byte; a relay verifies the answer once, an agent its share', () => {
    const i = batch.inputs;
    const w = JSON.parse(envelope.outputs.wire);
    const bound = b64u(envelopeDigest(w));
    const h = JSON.parse(text(unb64u(w.header)));
    const aad = cat(lp(utf8(h.mid)), lp(utf8(h.snd)));
    const { enc, ct } = sealBase(
      agent.kx,
      utf8('latchkey/1 directives'),
      aad,
      utf8(JSON.stringify(i.directives)),
      hex(i.randomDraws[0].hex),
    );
    // R_i: the index, then the receipt body's members in their order (§10), or an unjudged refusal.
    const R = [
      { i: 0, mid: h.mid, snd: h.snd, env: bound, status: 'accepted', rat: i.resultRats[0], dir: { enc: b64u(enc), ct: b64u(ct) } },
      { i: 1, mid: h.mid, snd: h.snd, env: bound, status: 'rejected', rat: i.resultRats[1], code: 'replay_detected' },
      { i: 2, status: 'refused', rat: i.resultRats[2], code: 'envelope_malformed' },
    ].map((r) => utf8(JSON.stringify(r)));
    const hashOf = (r: Uint8Array) => sha256(cat(label('latchkey/1 batch-result'), lp(r)));
    expect(R.map(text)).toEqual(batch.intermediate.results.map((r: { text: string }) => r.text));
    const request = utf8(i.requestText);
    const req = sha256(cat(label('latchkey/1 batch-request'), request));
    expect(toHex(req)).toBe(batch.intermediate.reqHex);
    const B = signObject('batch-receipt', { req: b64u(req), rat: i.rat, results: R.map((r) => b64u(hashOf(r))) });
    expect(B).toEqual(batch.outputs.batchReceipt);
    expect(batch.outputs.answer).toEqual({ batchReceipts: [B], results: R.map((r) => ({ result: b64u(r) })) });

    // The relay that sent `request`: once, the signature, req, the count, then each result in order.
    const a = batch.outputs.answer;
    const body = verifySigned(
      a.batchReceipts.find((o: { kid: string }) => o.kid === serverSigKid),
      'batch-receipt',
    );
    expect(body.req).toBe(b64u(sha256(cat(label('latchkey/1 batch-request'), request))));
    const sent = JSON.parse(i.requestText).envelopes as unknown[];
    expect([body.results.length, a.results.length]).toEqual([sent.length, sent.length]);
    a.results.forEach((r: { result: string }, k: number) => {
      const bytes = unb64u(r.result);
      expect(b64u(hashOf(bytes))).toBe(body.results[k]);
      const got = JSON.parse(text(bytes));
      expect(got.i).toBe(k);
      if (got.status !== 'refused') expect([got.mid, got.snd, got.env]).toEqual([h.mid, h.snd, bound]);
    });
    // Any reordering fails: result 1 at position 0 has another hash and another index.
    expect(b64u(hashOf(unb64u(a.results[1].result)))).not.toBe(body.results[0]);

    // The agent, from its share alone: B with its pinned key, h(R_i) at R_i's index, then §10's checks.
    const share = batch.outputs.share;
    const sb = verifySigned(
      share.batchReceipts.find((o: { kid: string }) => o.kid === serverSigKid),
      'batch-receipt',
    );
    const mine = unb64u(share.result);
    const got = JSON.parse(text(mine));
    expect(sb.results[got.i]).toBe(b64u(hashOf(mine)));
    expect([got.status, got.mid, got.snd, got.env]).toEqual(['accepted', h.mid, h.snd, bound]);
    expect(JSON.parse(text(openBase(unb64u(got.dir.enc), agent.kxPriv, utf8('latchkey/1 directives'), aad, unb64u(got.dir.ct))))).toEqual(
      i.directives,
    );
  });

  it('§11: relay layers, byte for byte; the server verifies them outside in', () => {
    // D(envelope) = the receipt binding of §10, over the envelope as it travels.
    const w = JSON.parse(envelope.outputs.wire);
    let digest = envelopeDigest(w);
    let inner: unknown = w;
    const built: unknown[] = [];
    for (const [n, l] of (relay.inputs.layers as { relay: number; hop: number; rat: number; src?: string }[]).entries()) {
      const r = relay.inputs.relays[l.relay];
      const seed = hex(r.ed25519SeedHex);
      expect(kid(1, ed25519.getPublicKey(seed))).toBe(r.sigKid);
      // L: members relay, hop, rat, src (when present), cred, compact JSON.
      const body: Record<string, unknown> = { relay: r.sigKid, hop: l.hop, rat: l.rat };
      if (l.src !== undefined) body.src = l.src;
      body.cred = r.credential;
      const L = utf8(JSON.stringify(body));
      const S8 = cat(label('latchkey/1 relay-signature'), lp(L), lp(digest));
      const S = ed25519.sign(S8, seed);
      const mid = relay.intermediate.layers[n];
      expect([text(L), toHex(digest), toHex(S8)]).toEqual([mid.layerText, mid.innerDigestHex, mid.signatureInputHex]);
      const wire = { v: 1, layer: b64u(L), inner, sig: b64u(S) };
      const dIn = cat(label('latchkey/1 relay-digest'), lp(L), lp(digest), lp(S));
      digest = sha256(dIn);
      expect([toHex(dIn), toHex(digest)]).toEqual([mid.digestInputHex, mid.digestHex]);
      built.push(wire);
      inner = wire;
    }
    expect(built[0]).toEqual(relay.outputs.hop1);
    expect(built[1]).toEqual(relay.outputs.relayed);
    expect(JSON.stringify(built[1])).toBe(relay.outputs.wire);

    // The server's walk: outside in, hops descending by one to 1, each S over D of what it wraps.
    const layers: { L: Uint8Array; S: Uint8Array; body: { relay: string; hop: number } }[] = [];
    let cur = JSON.parse(relay.outputs.wire);
    while (cur.layer !== undefined) {
      const L = unb64u(cur.layer);
      layers.push({ L, S: unb64u(cur.sig), body: JSON.parse(text(L)) });
      cur = cur.inner;
    }
    expect(layers.map((l) => l.body.hop)).toEqual([2, 1]);
    let d = envelopeDigest(cur);
    const ok: boolean[] = [];
    for (const l of [...layers].reverse()) {
      const r = relay.inputs.relays.find((x: { sigKid: string }) => x.sigKid === l.body.relay);
      const pub = ed25519.getPublicKey(hex(r.ed25519SeedHex));
      ok.push(ed25519.verify(l.S, cat(label('latchkey/1 relay-signature'), lp(l.L), lp(d)), pub));
      // The wrong digest (another envelope's, say) does not verify.
      ok.push(!ed25519.verify(l.S, cat(label('latchkey/1 relay-signature'), lp(l.L), lp(sha256(d))), pub));
      d = sha256(cat(label('latchkey/1 relay-digest'), lp(l.L), lp(d), lp(l.S)));
    }
    expect(ok).toEqual([true, true, true, true]);
  });

  it("http.json's negative message vectors fail the spec's checks where it says they do", () => {
    const now = http.inputs.now as number;
    const step = (name: string) => JSON.parse(http.messages.steps.find((s: { name: string }) => s.name === name).body);
    const signatureOk = (w: Wire) => ed25519.verify(unb64u(w.sig), envelopeSignatureInput(w), agent.sig);
    const headerOf = (w: { header: string }) => JSON.parse(text(unb64u(w.header)));
    expect(signatureOk(step('tampered-ciphertext'))).toBe(false);
    expect(signatureOk(step('tampered-header'))).toBe(false);
    const foreign = step('foreign-agreement-key');
    expect(signatureOk(foreign)).toBe(true);
    expect(() =>
      openAuth(unb64u(foreign.enc), server.kxPriv, utf8('latchkey/1 envelope'), unb64u(foreign.header), unb64u(foreign.ct), agent.kx),
    ).toThrow();
    expect(headerOf(step('wrong-recipient')).rcp).not.toBe(serverKxKid);
    expect(headerOf(step('stale-iat')).iat).toBe(now - 7 * 24 * 3600_000 - 1);
    expect(headerOf(step('future-iat')).iat).toBe(now + 5 * 60_000 + 1);
    expect(headerOf(step('unknown-content-encoding')).cen).toBe('br');
    expect(headerOf(step('stale-counter')).ctr).toBe(10_000 - 4096);
  });
});
