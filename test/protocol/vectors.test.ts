// spec/vectors: (1) a fresh generation equals the checked-in files byte for byte; (2) every vector
// verifies through the library's public functions on every backend, and the envelope signature is
// recomputed from the spec's formula by hand.
import { readFileSync } from 'node:fs';
import { sha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import { generateVectors } from '../../spec/generate-vectors.js';
import { b64u, concatBytes, fromB64u, label, lengthPrefixed, utf8 } from '../../src/protocol/bytes.js';
import { verifyCredential } from '../../src/protocol/credential.js';
import { openEnrollRequest, parseEnrollRequest, verifyEnrollResponse } from '../../src/protocol/enrollment.js';
import { checkFreshness, openEnvelope, parseEnvelope, verifyEnvelopeSignature } from '../../src/protocol/envelope.js';
import { fingerprintOf, keySetFromPrivate } from '../../src/protocol/keys.js';
import { envelopeBinding, verifyReceipt } from '../../src/protocol/receipt.js';
import { hashTokenSecret, parseToken } from '../../src/protocol/token.js';
import { backends, hex, toHex } from '../helpers/backends.js';

const load = (name: string) => JSON.parse(readFileSync(new URL(`../../spec/vectors/${name}`, import.meta.url), 'utf8'));
const keys = load('keys.json');
const token = load('token.json');
const enrollment = load('enrollment.json');
const envelope = load('envelope.json');
const receipt = load('receipt.json');

it('a fresh generation equals the checked-in vectors byte for byte', async () => {
  for (const [name, value] of Object.entries(await generateVectors())) {
    expect(`${JSON.stringify(value, null, 2)}\n`, name).toBe(readFileSync(new URL(`../../spec/vectors/${name}`, import.meta.url), 'utf8'));
  }
});

describe.each(backends)('vectors through the library on %s', (_name, crypto) => {
  const at = (now: number) => ({ crypto, random: () => { throw new Error('no randomness needed'); }, now: () => now });

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
    const opened = await openEnrollRequest(at(enrollment.inputs.now), parseEnrollRequest(enrollment.outputs.request), { agreement: server.agreement, fingerprint: fp });
    expect(toHex(opened.secret)).toBe(token.inputs.secret);
    expect(opened.name).toBe('web-01');
    expect(opened.signingKey.kid).toBe(keys.outputs.agentSigningKid);
    const nonce = b64u(hex(enrollment.inputs.randomDraws[0].hex));
    const body = await verifyEnrollResponse(crypto, { signing: server.signing, agreement: server.agreement, fingerprint: fp }, enrollment.outputs.response, nonce);
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
    const sigInput = concatBytes(label('latchkey/1 envelope-signature'), lengthPrefixed(env.headerBytes), lengthPrefixed(env.enc), lengthPrefixed(env.ct), lengthPrefixed(utf8(env.cred ?? '')));
    const bindingInput = concatBytes(label('latchkey/1 receipt-envelope'), lengthPrefixed(sigInput), lengthPrefixed(env.sig));
    expect(toHex(bindingInput)).toBe(receipt.outputs.bindingInput);
    expect(b64u(sha256(bindingInput))).toBe(receipt.outputs.env);
    expect(envelopeBinding(env)).toBe(receipt.outputs.env);
    const expectMid = { mid: receipt.inputs.mid, snd: receipt.inputs.snd, env: receipt.outputs.env };
    const ok = await verifyReceipt(at(0), server.signing, receipt.outputs.accepted, expectMid, hex(i.agentX25519Private));
    expect(ok.directives).toEqual({ sendIntervalSeconds: 3600 });
    const no = await verifyReceipt(at(0), server.signing, receipt.outputs.rejected, expectMid, hex(i.agentX25519Private));
    expect(no).toMatchObject({ status: 'rejected', code: 'replay_detected', env: receipt.outputs.env });
    // A receipt for a mangled copy of this envelope (same mid and snd, another signature) is not ours.
    const mangled = envelopeBinding({ ...env, sig: env.sig.map((b, k) => (k === 0 ? b ^ 1 : b)) });
    await expect(verifyReceipt(at(0), server.signing, receipt.outputs.rejected, { ...expectMid, env: mangled }, hex(i.agentX25519Private))).rejects.toMatchObject({ code: 'signature_invalid' });
  });
});
