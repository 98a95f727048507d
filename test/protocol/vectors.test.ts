// spec/vectors: (1) a fresh generation equals the checked-in files byte for byte; (2) every vector,
// intermediate values included, verifies through the library's public functions on every backend,
// and the envelope signature is recomputed from the spec's formula by hand; (3) http.json's
// exchanges, negative vectors included, get exactly their status and code from the real server over
// real HTTP, on PGlite and PostgreSQL.
import { readFileSync } from 'node:fs';
import { sha256 } from '@noble/hashes/sha2.js';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateVectors } from '../../spec/generate-vectors.js';
import { agentKeys, agents, enrollmentTokens } from '../../src/db/schema.js';
import { b64u, concatBytes, fromB64u, label, lengthPrefixed, utf8 } from '../../src/protocol/bytes.js';
import { nobleCrypto } from '../../src/protocol/crypto/noble.js';
import { verifyCredential } from '../../src/protocol/credential.js';
import {
  enrollRequestAad,
  enrollTranscript,
  kxProofKey,
  openEnrollRequest,
  parseEnrollRequest,
  verifyEnrollResponse,
} from '../../src/protocol/enrollment.js';
import {
  checkFreshness,
  envelopeSignatureInput,
  openEnvelope,
  parseEnvelope,
  verifyEnvelopeSignature,
} from '../../src/protocol/envelope.js';
import { openBase } from '../../src/protocol/hpke.js';
import { fingerprintOf, keySetFromPrivate } from '../../src/protocol/keys.js';
import { directivesAad, envelopeBinding, verifyReceipt } from '../../src/protocol/receipt.js';
import {
  batchRequestDigest,
  batchResultBytes,
  batchResultDigestInput,
  signBatchReceipts,
  verifyBatchAnswer,
} from '../../src/protocol/batch-receipt.js';
import { relayLayers, verifyLayerSignature, wrapRelayed } from '../../src/protocol/relay.js';
import { signedInput, verifySignedObject } from '../../src/protocol/signed.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import { hashTokenSecret, parseToken } from '../../src/protocol/token.js';
import { deriveIdentity } from '../../src/server/identity.js';
import { startTestServer, type TestServer } from '../helpers/app.js';
import { backends, hex, toHex } from '../helpers/backends.js';
import { dbKinds } from '../helpers/db.js';

const load = (name: string) => JSON.parse(readFileSync(new URL(`../../spec/vectors/${name}`, import.meta.url), 'utf8'));
const keys = load('keys.json');
const token = load('token.json');
const enrollment = load('enrollment.json');
const envelope = load('envelope.json');
const receipt = load('receipt.json');
const relay = load('relay.json');
const batch = load('batch-receipt.json');
const http = load('http.json');

it('a fresh generation equals the checked-in vectors byte for byte', async () => {
  for (const [name, value] of Object.entries(await generateVectors())) {
    expect(`${JSON.stringify(value, null, 2)}\n`, name).toBe(readFileSync(new URL(`../../spec/vectors/${name}`, import.meta.url), 'utf8'));
  }
});

describe.each(backends)('vectors through the library on %s', (_name, crypto) => {
  const at = (now: number) => ({
    crypto,
    random: () => {
      throw new Error('no randomness needed');
    },
    now: () => now,
  });

  it('keys: public keys, key ids, fingerprint', async () => {
    const i = keys.inputs;
    const server = await keySetFromPrivate({ crypto }, hex(i.serverEd25519Seed), hex(i.serverX25519Private));
    const agent = await keySetFromPrivate({ crypto }, hex(i.agentEd25519Seed), hex(i.agentX25519Private));
    expect(toHex(server.signing.publicKey)).toBe(keys.outputs.serverEd25519Public);
    expect(server.signing.kid).toBe(keys.outputs.serverSigningKid);
    expect(server.agreement.kid).toBe(keys.outputs.serverAgreementKid);
    expect(agent.signing.kid).toBe(keys.outputs.agentSigningKid);
    expect(agent.agreement.kid).toBe(keys.outputs.agentAgreementKid);
    expect(fingerprintOf(server.signing.publicKey, server.agreement.publicKey)).toBe(keys.outputs.serverFingerprint);
  });

  it('token: parse and stored hash', () => {
    const t = parseToken(token.outputs.token);
    expect(t.tokenId).toBe(b64u(hex(token.inputs.tokenId)));
    expect(toHex(t.secret)).toBe(token.inputs.secret);
    expect(t.serverFingerprint).toBe(token.inputs.serverFingerprint);
    expect(toHex(hashTokenSecret(t.tokenId, t.secret))).toBe(token.outputs.storedSecretHash);
  });

  it('enrollment: the server opens the request; the agent verifies the response and credential', async () => {
    const i = keys.inputs;
    const server = await keySetFromPrivate({ crypto }, hex(i.serverEd25519Seed), hex(i.serverX25519Private));
    const fp = keys.outputs.serverFingerprint;
    const opened = await openEnrollRequest(at(enrollment.inputs.now), parseEnrollRequest(enrollment.outputs.request), {
      agreement: server.agreement,
      fingerprint: fp,
    });
    expect(toHex(opened.secret)).toBe(token.inputs.secret);
    expect(opened.name).toBe('web-01');
    expect(opened.signingKey.kid).toBe(keys.outputs.agentSigningKid);
    const nonce = b64u(hex(enrollment.inputs.randomDraws[0].hex));
    const body = await verifyEnrollResponse(
      crypto,
      { signing: server.signing, agreement: server.agreement, fingerprint: fp },
      enrollment.outputs.response,
      nonce,
    );
    expect(body.labels).toEqual({ env: 'prod' });
    const claims = await verifyCredential(body.credential, server.signing, fp, enrollment.inputs.now);
    expect(claims.cnf.sig_kid).toBe(keys.outputs.agentSigningKid);
  });

  it('envelope: the signature recomputed from the spec formula, then open', async () => {
    const i = keys.inputs;
    const server = await keySetFromPrivate({ crypto }, hex(i.serverEd25519Seed), hex(i.serverX25519Private));
    const agentSig = hex(keys.outputs.agentEd25519Public);
    const w = envelope.outputs.envelope;
    const byHand = concatBytes(
      label('latchkey/1 envelope-signature'),
      lengthPrefixed(fromB64u(w.header)),
      lengthPrefixed(fromB64u(w.enc)),
      lengthPrefixed(fromB64u(w.ct)),
      lengthPrefixed(utf8(w.cred)),
    );
    expect(await crypto.ed25519Verify(agentSig, byHand, fromB64u(w.sig))).toBe(true);
    const env = parseEnvelope(utf8(envelope.outputs.wire));
    expect(env.header).toEqual(envelope.outputs.header);
    await verifyEnvelopeSignature(at(envelope.inputs.now), env, agentSig);
    checkFreshness(env.header, envelope.inputs.now, 0);
    const pt = await openEnvelope(at(envelope.inputs.now), env, server.agreement, hex(keys.outputs.agentX25519Public));
    expect(new TextDecoder().decode(pt)).toBe(envelope.inputs.plaintext);
  });

  it('receipts: accepted with sealed directives, rejected with its code', async () => {
    const i = keys.inputs;
    const server = await keySetFromPrivate({ crypto }, hex(i.serverEd25519Seed), hex(i.serverX25519Private));
    // The binding by hand from §10: SHA-256(label || lp(§8 signature input) || lp(sig)).
    const env = parseEnvelope(envelope.outputs.envelope);
    const sigInput = concatBytes(
      label('latchkey/1 envelope-signature'),
      lengthPrefixed(env.headerBytes),
      lengthPrefixed(env.enc),
      lengthPrefixed(env.ct),
      lengthPrefixed(utf8(env.cred ?? '')),
    );
    const bindingInput = concatBytes(label('latchkey/1 receipt-envelope'), lengthPrefixed(sigInput), lengthPrefixed(env.sig));
    expect(toHex(bindingInput)).toBe(receipt.intermediate.bindingInputHex);
    expect(b64u(sha256(bindingInput))).toBe(receipt.outputs.env);
    expect(envelopeBinding(env)).toBe(receipt.outputs.env);
    const expectMid = { mid: receipt.inputs.mid, snd: receipt.inputs.snd, env: receipt.outputs.env };
    const ok = await verifyReceipt(at(0), server.signing, receipt.outputs.accepted, expectMid, hex(i.agentX25519Private));
    expect(ok.directives).toEqual({ sendIntervalSeconds: 3600 });
    const no = await verifyReceipt(at(0), server.signing, receipt.outputs.rejected, expectMid, hex(i.agentX25519Private));
    expect(no).toMatchObject({ status: 'rejected', code: 'replay_detected', env: receipt.outputs.env });
    // A receipt for a mangled copy of this envelope (same mid and snd, another signature) is not ours.
    const mangled = envelopeBinding({ ...env, sig: env.sig.map((b, k) => (k === 0 ? b ^ 1 : b)) });
    await expect(
      verifyReceipt(at(0), server.signing, receipt.outputs.rejected, { ...expectMid, env: mangled }, hex(i.agentX25519Private)),
    ).rejects.toMatchObject({ code: 'signature_invalid' });
  });
});

describe.each(backends)('batch receipts through the library on %s', (_name, crypto) => {
  const at = (now: number) => ({
    crypto,
    random: () => {
      throw new Error('no randomness needed');
    },
    now: () => now,
  });
  it('batch-receipt.json: signed again byte for byte; the answer verifies once, the share as a receipt', async () => {
    const i = keys.inputs;
    const server = await keySetFromPrivate({ crypto }, hex(i.serverEd25519Seed), hex(i.serverX25519Private));
    const request = utf8(batch.inputs.requestText);
    expect(toHex(batchRequestDigest(request))).toBe(batch.intermediate.reqHex);
    const results = (batch.intermediate.results as { text: string; hashInputHex: string }[]).map((r, k) => {
      const { i: at, ...body } = JSON.parse(r.text) as Record<string, unknown>;
      expect(at).toBe(k);
      const bytes = batchResultBytes(k, body);
      expect(new TextDecoder().decode(bytes)).toBe(r.text);
      expect(toHex(batchResultDigestInput(bytes))).toBe(r.hashInputHex);
      return bytes;
    });
    const [signed] = await signBatchReceipts(crypto, [server.signing], { request, rat: batch.inputs.rat, results });
    expect(signed).toEqual(batch.outputs.batchReceipt);
    const b = fromB64u(signed!.body);
    expect(new TextDecoder().decode(b)).toBe(batch.intermediate.batchReceipt.bodyText);
    expect(toHex(signedInput('batch-receipt', server.signing.kid, b))).toBe(batch.intermediate.batchReceipt.signatureInputHex);

    const env = parseEnvelope(envelope.outputs.envelope);
    const mine = { mid: env.header.mid, snd: env.header.snd, env: envelopeBinding(env) };
    const verified = await verifyBatchAnswer(crypto, server.signing, batch.outputs.answer, { request, items: [mine, mine, mine] });
    expect(verified.map((r) => [r.status, r.code])).toEqual([
      ['accepted', undefined],
      ['rejected', 'replay_detected'],
      ['refused', 'envelope_malformed'],
    ]);
    const share = await verifyReceipt(at(0), server.signing, batch.outputs.share, mine, hex(i.agentX25519Private));
    expect(share).toMatchObject({ status: 'accepted', rat: batch.inputs.resultRats[0], directives: { sendIntervalSeconds: 3600 } });
    // Another request's bytes: the whole answer is refused.
    await expect(
      verifyBatchAnswer(crypto, server.signing, batch.outputs.answer, {
        request: utf8(`${batch.inputs.requestText} `),
        items: [mine, mine, mine],
      }),
    ).rejects.toMatchObject({ code: 'signature_invalid' });
  });
});

describe.each(backends)('relay layers through the library on %s', (_name, crypto) => {
  it('relay.json: wrapped again byte for byte, every intermediate value, signatures and credentials verify', async () => {
    const i = keys.inputs;
    const server = await keySetFromPrivate({ crypto }, hex(i.serverEd25519Seed), hex(i.serverX25519Private));
    const ctx = { crypto, random: () => new Uint8Array(0), now: () => 0 };
    let inner: unknown = envelope.outputs.envelope;
    for (const l of relay.inputs.layers as { relay: number; rat: number; src?: string }[]) {
      const r = relay.inputs.relays[l.relay];
      inner = await wrapRelayed(ctx, {
        inner,
        relayKid: r.sigKid,
        relaySigningKey: hex(r.ed25519SeedHex),
        rat: l.rat,
        ...(l.src === undefined ? {} : { src: l.src }),
        cred: r.credential,
      });
    }
    expect(JSON.stringify(inner)).toBe(relay.outputs.wire);
    const { layers, envelope: env } = relayLayers(JSON.parse(relay.outputs.wire));
    expect(env.wire).toEqual(envelope.outputs.envelope);
    const byHop = [...layers].reverse();
    for (const [n, l] of byHop.entries()) {
      const m = relay.intermediate.layers[n];
      expect([new TextDecoder().decode(l.layerBytes), toHex(l.innerDigest), toHex(l.signatureInput), toHex(l.digest)]).toEqual([
        m.layerText,
        m.innerDigestHex,
        m.signatureInputHex,
        m.digestHex,
      ]);
      const r = relay.inputs.relays[n];
      const relayKeys = await keySetFromPrivate({ crypto }, hex(r.ed25519SeedHex), hex(r.x25519PrivateHex));
      await verifyLayerSignature({ crypto }, l, relayKeys.signing.publicKey);
      const fp = fingerprintOf(server.signing.publicKey, server.agreement.publicKey);
      const claims = await verifyCredential(l.cred, server.signing, fp, envelope.inputs.now as number);
      expect([claims.role, claims.sub, claims.cnf.sig_kid]).toEqual(['relay', r.agentId, r.sigKid]);
    }
    expect(b64u(byHop[0]!.innerDigest)).toBe(receipt.outputs.env);
  });
});

describe.each(backends)('intermediate values through the library on %s', (_name, crypto) => {
  const serverKeys = () => keySetFromPrivate({ crypto }, hex(keys.inputs.serverEd25519Seed), hex(keys.inputs.serverX25519Private));

  it('enrollment: transcript X, pop_sig, pop_kx, plaintext P, associated data, response signature input', async () => {
    const server = await serverKeys();
    const im = enrollment.intermediate;
    const r = enrollment.outputs.request;
    const P = JSON.parse(im.plaintext);
    expect(im.nonce).toBe(b64u(hex(enrollment.inputs.randomDraws[0].hex)));
    const x = enrollTranscript(
      r.tid,
      keys.outputs.serverFingerprint,
      hex(keys.outputs.agentEd25519Public),
      hex(keys.outputs.agentX25519Public),
      enrollment.inputs.name,
      enrollment.inputs.now,
      im.nonce,
    );
    expect(toHex(x)).toBe(im.transcriptHex);
    expect(await crypto.ed25519Verify(hex(keys.outputs.agentEd25519Public), x, fromB64u(im.popSig))).toBe(true);
    expect(toHex(await crypto.x25519(hex(keys.inputs.agentX25519Private), server.agreement.publicKey))).toBe(im.kxPopSharedSecretHex);
    // Both sides derive the same key: the agent from its private key, the server from its own.
    expect(toHex(await kxProofKey(crypto, hex(keys.inputs.agentX25519Private), server.agreement.publicKey))).toBe(im.kxPopKeyHex);
    expect(toHex(await kxProofKey(crypto, server.agreement.privateKey, hex(keys.outputs.agentX25519Public)))).toBe(im.kxPopKeyHex);
    expect(toHex(enrollRequestAad(r.tid, r.rcp))).toBe(im.aadHex);
    const pt = await openBase(crypto, fromB64u(r.enc), server.agreement.privateKey, utf8(im.hpkeInfo), hex(im.aadHex), fromB64u(r.ct));
    expect(new TextDecoder().decode(pt)).toBe(im.plaintext);
    // The key schedule's output alone opens the ciphertext (sequence number 0: the base nonce).
    expect(await crypto.aeadOpen(hex(im.hpkeKeyHex), hex(im.hpkeBaseNonceHex), hex(im.aadHex), fromB64u(r.ct))).toEqual(pt);
    expect([P.pop_sig, P.pop_kx, P.nonce, P.iat]).toEqual([im.popSig, im.popKx, im.nonce, enrollment.inputs.now]);
    expect(JSON.stringify(enrollment.outputs.request)).toBe(enrollment.outputs.wire);
    const resp = enrollment.outputs.response;
    expect(new TextDecoder().decode(fromB64u(resp.body))).toBe(im.response.bodyText);
    expect(toHex(signedInput(resp.typ, resp.kid, fromB64u(resp.body)))).toBe(im.response.signatureInputHex);
    expect(await crypto.ed25519Verify(server.signing.publicKey, hex(im.response.signatureInputHex), fromB64u(resp.sig))).toBe(true);
    const [h, c, sig] = enrollment.outputs.credential.split('.');
    expect([new TextDecoder().decode(fromB64u(h)), new TextDecoder().decode(fromB64u(c)), `${h}.${c}`]).toEqual([
      im.credentialHeader,
      im.credentialClaims,
      im.credentialSigningInput,
    ]);
    expect(await crypto.ed25519Verify(server.signing.publicKey, utf8(im.credentialSigningInput), fromB64u(sig))).toBe(true);
  });

  it('envelopes (identity and gzip): header text, associated data, signature input, HPKE plaintext', async () => {
    const server = await serverKeys();
    for (const v of [envelope, envelope.gzip]) {
      const w = v.outputs.envelope;
      const env = parseEnvelope(utf8(v.outputs.wire));
      expect(new TextDecoder().decode(env.headerBytes)).toBe(v.intermediate.headerText);
      expect(JSON.parse(v.intermediate.headerText)).toEqual(v.outputs.header);
      expect(toHex(env.headerBytes)).toBe(v.intermediate.aadHex);
      expect(toHex(envelopeSignatureInput(env.headerBytes, env.enc, env.ct, w.cred))).toBe(v.intermediate.signatureInputHex);
      expect(await crypto.ed25519Verify(hex(keys.outputs.agentEd25519Public), hex(v.intermediate.signatureInputHex), fromB64u(w.sig))).toBe(
        true,
      );
      const pt = await openEnvelope(
        { crypto, random: () => new Uint8Array(0), now: () => v.inputs.now },
        env,
        server.agreement,
        hex(keys.outputs.agentX25519Public),
      );
      expect(toHex(pt)).toBe(v.intermediate.hpkePlaintextHex);
      expect(await crypto.aeadOpen(hex(v.intermediate.hpkeKeyHex), hex(v.intermediate.hpkeBaseNonceHex), env.headerBytes, env.ct)).toEqual(
        pt,
      );
      const content = v.outputs.header.cen === 'gzip' ? new Uint8Array(gunzipSync(pt)) : pt;
      expect(new TextDecoder().decode(content)).toBe(v.inputs.plaintext);
    }
    expect(envelope.gzip.intermediate.gzipHex).toBe(envelope.gzip.intermediate.hpkePlaintextHex);
  });

  it('receipts: body text, signature input, directives associated data and plaintext', async () => {
    const server = await serverKeys();
    for (const [name, o] of [
      ['accepted', receipt.outputs.accepted],
      ['rejected', receipt.outputs.rejected],
    ] as const) {
      const im = receipt.intermediate[name];
      expect(new TextDecoder().decode(fromB64u(o.body))).toBe(im.bodyText);
      expect(toHex(signedInput(o.typ, o.kid, fromB64u(o.body)))).toBe(im.signatureInputHex);
      expect(await crypto.ed25519Verify(server.signing.publicKey, hex(im.signatureInputHex), fromB64u(o.sig))).toBe(true);
    }
    const im = receipt.intermediate.accepted;
    expect(toHex(directivesAad(receipt.inputs.mid, receipt.inputs.snd))).toBe(im.directivesAadHex);
    const dir = JSON.parse(im.bodyText).dir;
    const pt = await openBase(
      crypto,
      fromB64u(dir.enc),
      hex(keys.inputs.agentX25519Private),
      utf8(im.directivesInfo),
      hex(im.directivesAadHex),
      fromB64u(dir.ct),
    );
    expect(new TextDecoder().decode(pt)).toBe(im.directivesPlaintext);
    expect(
      await crypto.aeadOpen(hex(im.directives.hpkeKeyHex), hex(im.directives.hpkeBaseNonceHex), hex(im.directivesAadHex), fromB64u(dir.ct)),
    ).toEqual(pt);
  });
});

describe.each(backends)("http.json's negative vectors through the protocol functions on %s", (_name, crypto) => {
  // The stateless checks of §8, in the server's order; the stateful ones (replay, counter window,
  // content type, budgets) are decided by the server and checked over HTTP below.
  const stateless = new Set([
    'signature_invalid',
    'decrypt_failed',
    'recipient_mismatch',
    'stale_message',
    'envelope_malformed',
    'version_unsupported',
    'key_unknown',
  ]);
  const steps = (http.messages.steps as HttpStep[]).filter(
    (s) => s.expect.code && stateless.has(s.expect.code) && s.name !== 'stale-counter' && !s.body.startsWith('{"envelopes"'),
  );

  it.each(steps.map((s) => [s.name, s] as const))('%s', async (_n, step) => {
    const server = await keySetFromPrivate({ crypto }, hex(keys.inputs.serverEd25519Seed), hex(keys.inputs.serverX25519Private));
    const ctx = { crypto, random: () => new Uint8Array(0), now: () => http.inputs.now as number };
    const verdict = async () => {
      const env = parseEnvelope(utf8(step.body));
      if (env.header.snd !== keys.outputs.agentSigningKid) throw new ProtocolError('key_unknown');
      await verifyEnvelopeSignature(ctx, env, hex(keys.outputs.agentEd25519Public));
      if (env.header.rcp !== server.agreement.kid) throw new ProtocolError('recipient_mismatch');
      checkFreshness(env.header, ctx.now(), 0);
      await openEnvelope(ctx, env, server.agreement, hex(keys.outputs.agentX25519Public));
    };
    await expect(verdict()).rejects.toMatchObject({ code: step.expect.code });
  });

  const enrollSteps = (http.enrollment.steps as HttpStep[]).filter(
    (s) => s.expect.code === 'recipient_mismatch' || s.expect.code === 'decrypt_failed',
  );
  it.each(enrollSteps.map((s) => [s.name, s] as const))('%s', async (_n, step) => {
    const server = await keySetFromPrivate({ crypto }, hex(keys.inputs.serverEd25519Seed), hex(keys.inputs.serverX25519Private));
    const ctx = { crypto, random: () => new Uint8Array(0), now: () => http.inputs.now as number };
    const open = async () =>
      openEnrollRequest(ctx, parseEnrollRequest(JSON.parse(step.body)), {
        agreement: server.agreement,
        fingerprint: keys.outputs.serverFingerprint,
      });
    await expect(open()).rejects.toMatchObject({ code: step.expect.code });
  });
});

interface HttpStep {
  name: string;
  body: string;
  path: string;
  expect: {
    status: number;
    code?: string;
    receipt?: 'accepted' | 'rejected';
    results?: { receipt: 'accepted' | 'rejected'; code?: string }[];
  };
}

describe.each(dbKinds)('http.json through the real server on %s', (kind) => {
  const now = http.inputs.now as number;
  const serverPub = {
    signing: { publicKey: hex(keys.outputs.serverEd25519Public), kid: keys.outputs.serverSigningKid },
    agreement: { publicKey: hex(keys.outputs.serverX25519Public), kid: keys.outputs.serverAgreementKid },
    fingerprint: keys.outputs.serverFingerprint,
  };
  let server: TestServer;
  beforeAll(async () => {
    const identity = await deriveIdentity(nobleCrypto, hex(keys.inputs.serverEd25519Seed), hex(keys.inputs.serverX25519Private));
    server = await startTestServer(kind, { identity, now: () => now });
  });
  afterAll(() => server.close());

  const post = (s: HttpStep) =>
    fetch(`${server.url}${s.path}`, { method: 'POST', body: s.body, headers: { 'content-type': 'application/json' } });
  /** A signed receipt from the vector server answering this envelope, with the expected status and code. */
  async function checkReceipt(r: unknown, envelopeJson: unknown, status: 'accepted' | 'rejected', code: string | undefined) {
    const body = await verifySignedObject(nobleCrypto, serverPub.signing, 'receipt', r);
    const header = parseEnvelope(envelopeJson).header;
    expect({ mid: body.mid, snd: body.snd, status: body.status, code: body.code }).toEqual({
      mid: header.mid,
      snd: header.snd,
      status,
      code,
    });
  }

  it('enrollment steps, in order', async () => {
    const t = http.enrollment.state.token;
    await server.database.db.insert(enrollmentTokens).values({
      id: t.id,
      secretHash: hashTokenSecret(t.id, hex(token.inputs.secret)),
      role: t.role,
      usesTotal: t.usesLeft,
      usesLeft: t.usesLeft,
      expiresAt: new Date(t.expiresAt),
      labels: t.labels,
    });
    for (const step of http.enrollment.steps as HttpStep[]) {
      const res = await post(step);
      const answer = (await res.json()) as { error?: { code: string } };
      expect({ step: step.name, status: res.status, code: answer.error?.code }).toEqual({
        step: step.name,
        status: step.expect.status,
        code: step.expect.code,
      });
      if (step.expect.status === 200) {
        const body = await verifyEnrollResponse(nobleCrypto, serverPub, answer, enrollment.intermediate.nonce);
        const claims = await verifyCredential(body.credential, serverPub.signing, serverPub.fingerprint, now);
        expect([body.name, claims.sub, claims.cnf.sig_kid, claims.cnf.kx_kid]).toEqual([
          'web-01',
          body.agentId,
          keys.outputs.agentSigningKid,
          keys.outputs.agentAgreementKid,
        ]);
      }
    }
  });

  it('message steps, negative vectors included, in order', async () => {
    const { agent, key } = http.messages.state;
    await server.database.db
      .insert(agents)
      .values({ id: agent.id, name: `${agent.name}-${kind}`, role: agent.role, labels: agent.labels, status: agent.status });
    // The enrollment test above registered these keys under another agent id: replace them.
    await server.database.db.delete(agentKeys);
    await server.database.db.insert(agentKeys).values({
      agentId: agent.id,
      sigKid: key.sigKid,
      sigPub: hex(keys.outputs.agentEd25519Public),
      kxKid: key.kxKid,
      kxPub: hex(keys.outputs.agentX25519Public),
      status: key.status,
      expiresAt: new Date(key.expiresAt),
      maxCounter: key.maxCounter,
    });
    for (const step of http.messages.steps as HttpStep[]) {
      const res = await post(step);
      const answer = (await res.json()) as {
        error?: { code: string };
        receipt?: unknown;
        results?: { result?: string; error?: { code: string } }[];
      };
      const sent = JSON.parse(step.body);
      if (step.expect.results) {
        expect(res.status, step.name).toBe(200);
        expect(
          answer.results?.map((r) => r.error?.code),
          step.name,
        ).toEqual(step.expect.results.map((r) => r.code));
        // One batch receipt (§10.1) for the bytes sent, every result bound to its envelope.
        const items = (sent.envelopes as unknown[]).map((e) => {
          const p = parseEnvelope(e);
          return { mid: p.header.mid, snd: p.header.snd, env: envelopeBinding(p) };
        });
        const verified = await verifyBatchAnswer(nobleCrypto, serverPub.signing, answer, { request: utf8(step.body), items });
        expect(
          verified.map((r) => [r.status, r.code]),
          step.name,
        ).toEqual(step.expect.results.map((r) => [r.receipt, r.code]));
        continue;
      }
      expect({ step: step.name, status: res.status, code: answer.error?.code }).toEqual({
        step: step.name,
        status: step.expect.status,
        code: step.expect.code,
      });
      const signed = step.expect.status === 200 ? answer : answer.receipt;
      if (step.expect.receipt) await checkReceipt(signed, sent, step.expect.receipt, step.expect.code);
      else expect(signed, step.name).toBeUndefined();
    }
  });
});
