// Enrollment request and response, credentials and receipts, end to end through the protocol core.
import { describe, expect, it } from 'vitest';
import { b64u, concatBytes, fromB64u, fromUtf8, lengthPrefixed, utf8 } from '../../src/protocol/bytes.js';
import { openBase, sealBase } from '../../src/protocol/hpke.js';
import { issueCredential, verifyCredential } from '../../src/protocol/credential.js';
import { discoveryDocument, pinServer } from '../../src/protocol/discovery.js';
import {
  openEnrollRequest,
  parseEnrollRequest,
  sealEnrollRequest,
  signEnrollResponse,
  verifyEnrollResponse,
  type ServerPublicKeys,
} from '../../src/protocol/enrollment.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import { fingerprintOf, generateKeySet, type KeySet } from '../../src/protocol/keys.js';
import { parseDirectives, signReceipt, verifyReceipt } from '../../src/protocol/receipt.js';
import { generateToken, parseToken, tokenSecretMatches } from '../../src/protocol/token.js';
import { codeOf, testContext } from '../helpers/protocol.js';

const ctx = testContext();

async function makeServer(): Promise<{ keys: KeySet; pub: ServerPublicKeys }> {
  const keys = await generateKeySet(ctx);
  return {
    keys,
    pub: { signing: keys.signing, agreement: keys.agreement, fingerprint: fingerprintOf(keys.signing.publicKey, keys.agreement.publicKey) },
  };
}

describe('enrollment', () => {
  it('pins the server from the token, carries the secret only inside the ciphertext, proves both keys', async () => {
    const server = await makeServer();
    const issued = generateToken(ctx.random, server.pub.fingerprint);
    const token = parseToken(issued.token);
    const pinned = pinServer(discoveryDocument(server.pub), token.serverFingerprint);
    const agent = await generateKeySet(ctx);
    const { request, nonce } = await sealEnrollRequest(ctx, token, pinned, agent, 'web-01');
    const wire = JSON.stringify(request);
    for (const form of [b64u(token.secret), Buffer.from(token.secret).toString('hex'), issued.token]) expect(wire).not.toContain(form);

    const opened = await openEnrollRequest(ctx, parseEnrollRequest(JSON.parse(wire)), {
      agreement: server.keys.agreement,
      fingerprint: server.pub.fingerprint,
    });
    expect(opened.tokenId).toBe(issued.tokenId);
    expect(tokenSecretMatches(opened.tokenId, opened.secret, issued.secretHash)).toBe(true);
    expect(opened.signingKey.kid).toBe(agent.signing.kid);
    expect(opened.agreementKey.kid).toBe(agent.agreement.kid);
    expect(opened.name).toBe('web-01');

    const now = Math.floor(ctx.now() / 1000);
    const credential = await issueCredential(server.keys.signing, server.pub.fingerprint, {
      agentId: 'a1',
      role: 'agent',
      signingKey: opened.signingKey,
      agreementKey: opened.agreementKey,
      issuedAt: now,
      expiresAt: now + 3600,
      jti: 'j1',
    });
    const response = await signEnrollResponse(ctx.crypto, server.keys.signing, {
      agentId: 'a1',
      name: 'web-01',
      role: 'agent',
      labels: {},
      credential,
      expiresAt: (now + 3600) * 1000,
      nonce,
      server: {
        sig: b64u(server.keys.signing.publicKey),
        sigKid: server.keys.signing.kid,
        kx: b64u(server.keys.agreement.publicKey),
        kxKid: server.keys.agreement.kid,
        fp: server.pub.fingerprint,
      },
      iat: ctx.now(),
    });
    const body = await verifyEnrollResponse(ctx.crypto, pinned, JSON.parse(JSON.stringify(response)), nonce);
    expect(body.agentId).toBe('a1');
    const claims = await verifyCredential(body.credential, server.keys.signing, server.pub.fingerprint, ctx.now());
    expect(claims.cnf.sig_kid).toBe(agent.signing.kid);
    expect(claims.role).toBe('agent');
    expect(await codeOf(verifyCredential(body.credential, server.keys.signing, server.pub.fingerprint, ctx.now() + 3601_000))).toBe(
      'credential_invalid',
    );
    expect(await codeOf(verifyEnrollResponse(ctx.crypto, pinned, response, 'another-nonce'))).toBe('signature_invalid');
  });

  it('refuses a server whose keys differ from the token fingerprint before anything is sent', async () => {
    const a = await makeServer();
    const b = await makeServer();
    const token = parseToken(generateToken(ctx.random, a.pub.fingerprint).token);
    expect(await codeOf(() => pinServer(discoveryDocument(b.pub), token.serverFingerprint))).toBe('server_key_mismatch');
    // A server that claims A's fingerprint but serves B's keys fails too.
    expect(await codeOf(() => pinServer({ ...discoveryDocument(b.pub), fingerprint: a.pub.fingerprint }, token.serverFingerprint))).toBe(
      'server_key_mismatch',
    );
  });

  it('the server refuses requests for another server, with a wrong pin, or with a forged proof', async () => {
    const a = await makeServer();
    const b = await makeServer();
    const agent = await generateKeySet(ctx);
    const token = parseToken(generateToken(ctx.random, a.pub.fingerprint).token);
    const { request } = await sealEnrollRequest(ctx, token, a.pub, agent, null);
    expect(await codeOf(openEnrollRequest(ctx, request, { agreement: b.keys.agreement, fingerprint: b.pub.fingerprint }))).toBe(
      'recipient_mismatch',
    );
    expect(
      await codeOf(
        openEnrollRequest(ctx, { ...request, rcp: b.keys.agreement.kid }, { agreement: b.keys.agreement, fingerprint: b.pub.fingerprint }),
      ),
    ).toBe('decrypt_failed');
    // Sealed to A's key but naming another fingerprint: the agent pinned someone else.
    const wrongPin = await sealEnrollRequest(
      ctx,
      { ...token, serverFingerprint: b.pub.fingerprint },
      { ...a.pub, fingerprint: b.pub.fingerprint },
      agent,
      null,
    );
    expect(await codeOf(openEnrollRequest(ctx, wrongPin.request, { agreement: a.keys.agreement, fingerprint: a.pub.fingerprint }))).toBe(
      'server_key_mismatch',
    );
    // The tid in the clear is associated data: changed on the wire, the ciphertext does not open.
    expect(
      await codeOf(
        openEnrollRequest(
          ctx,
          { ...request, tid: b64u(new Uint8Array(16)) },
          { agreement: a.keys.agreement, fingerprint: a.pub.fingerprint },
        ),
      ),
    ).toBe('decrypt_failed');
  });

  it('the server refuses a request whose sealed tid differs from the tid in the clear, all else valid', async () => {
    const a = await makeServer();
    const agent = await generateKeySet(ctx);
    const outer = parseToken(generateToken(ctx.random, a.pub.fingerprint).token);
    const inner = parseToken(generateToken(ctx.random, a.pub.fingerprint).token);
    const { request } = await sealEnrollRequest(ctx, outer, a.pub, agent, null);
    // Re-seal the same plaintext (proofs over the outer tid, which the server's transcript uses) with
    // only its tid changed, under the associated data of the outer tid (spec: aad = lp(tid) || lp(rcp)).
    const info = utf8('latchkey/1 enroll-request');
    const aad = concatBytes(lengthPrefixed(utf8(request.tid)), lengthPrefixed(utf8(request.rcp)));
    const plaintext = JSON.parse(
      fromUtf8(await openBase(ctx.crypto, fromB64u(request.enc), a.keys.agreement.privateKey, info, aad, fromB64u(request.ct))),
    );
    expect(plaintext.tid).toBe(outer.tokenId);
    const resealed = await sealBase(
      ctx.crypto,
      a.keys.agreement.publicKey,
      info,
      aad,
      utf8(JSON.stringify({ ...plaintext, tid: inner.tokenId })),
      ctx.random(32),
    );
    const forged = { ...request, enc: b64u(resealed.enc), ct: b64u(resealed.ct) };
    const server = { agreement: a.keys.agreement, fingerprint: a.pub.fingerprint };
    expect(await codeOf(openEnrollRequest(ctx, forged, server))).toBe('payload_invalid');
    // The control: the same re-sealing with the tid left alone opens.
    const control = await sealBase(ctx.crypto, a.keys.agreement.publicKey, info, aad, utf8(JSON.stringify(plaintext)), ctx.random(32));
    expect(await codeOf(openEnrollRequest(ctx, { ...request, enc: b64u(control.enc), ct: b64u(control.ct) }, server))).toBe('ok');
  });

  it('receipts: signed, bound to the message, directives readable only by the agent', async () => {
    const server = await makeServer();
    const agent = await generateKeySet(ctx);
    const other = await generateKeySet(ctx);
    const env = 'E'.repeat(43);
    const receipt = await signReceipt(
      ctx,
      server.keys.signing,
      { mid: 'm1', snd: agent.signing.kid, env, status: 'accepted', rat: 5, directives: { sendIntervalSeconds: 600 } },
      agent.agreement.publicKey,
    );
    expect(JSON.stringify(receipt)).not.toContain('600');
    const r = await verifyReceipt(
      ctx,
      server.keys.signing,
      receipt,
      { mid: 'm1', snd: agent.signing.kid, env },
      agent.agreement.privateKey,
    );
    expect(r.directives).toEqual({ sendIntervalSeconds: 600 });
    expect(
      await codeOf(
        verifyReceipt(ctx, server.keys.signing, receipt, { mid: 'm2', snd: agent.signing.kid, env }, agent.agreement.privateKey),
      ),
    ).toBe('signature_invalid');
    expect(
      await codeOf(
        verifyReceipt(ctx, server.keys.signing, receipt, { mid: 'm1', snd: agent.signing.kid, env }, other.agreement.privateKey),
      ),
    ).toBe('decrypt_failed');
    // The same message id and key, but another envelope (a mangled copy): not this envelope's receipt.
    expect(
      await codeOf(
        verifyReceipt(
          ctx,
          server.keys.signing,
          receipt,
          { mid: 'm1', snd: agent.signing.kid, env: 'F'.repeat(43) },
          agent.agreement.privateKey,
        ),
      ),
    ).toBe('signature_invalid');
    const forged = { ...receipt, body: b64u(utf8(JSON.stringify({ mid: 'm1', snd: agent.signing.kid, env, status: 'accepted', rat: 6 }))) };
    expect(
      await codeOf(verifyReceipt(ctx, server.keys.signing, forged, { mid: 'm1', snd: agent.signing.kid, env }, agent.agreement.privateKey)),
    ).toBe('signature_invalid');
  });

  it('directives: known ones type-checked, unknown ones ignored', () => {
    expect(parseDirectives({ renewNow: true, sendIntervalSeconds: 900, future: { x: 1 } })).toEqual({
      renewNow: true,
      sendIntervalSeconds: 900,
    });
    for (const bad of [
      { renewNow: 'yes' },
      { sendIntervalSeconds: -1 },
      { sendIntervalSeconds: 1.5 },
      { sendIntervalSeconds: '60' },
      { serverKey: 'k' },
      { serverKey: { sig: 1 } },
    ]) {
      expect(() => parseDirectives(bad), JSON.stringify(bad)).toThrow(ProtocolError);
    }
  });
});
