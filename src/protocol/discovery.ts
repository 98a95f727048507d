// Discovery and pinning (spec/PROTOCOL.md §Discovery). GET /.well-known/latchkey answers
//   {"protocol":"latchkey","versions":[1],"fingerprint":F,
//    "keys":{"signing":{"alg":"Ed25519","kid":K1,"publicKey":b64u},"agreement":{"alg":"X25519","kid":K2,"publicKey":b64u}}, …}
// The agent never trusts it: it recomputes the fingerprint from the keys and compares it with the
// token's before anything secret is sent. A MITM or a spoofed DNS answer fails here.
import { b64u, constantTimeEqual, fromB64uExact, utf8 } from './bytes.js';
import { ProtocolError } from './errors.js';
import { fingerprintOf, keyIdOf } from './keys.js';
import type { ServerPublicKeys } from './enrollment.js';
import { PROTOCOL_VERSION } from './version.js';

export function discoveryDocument(server: ServerPublicKeys) {
  return {
    protocol: 'latchkey',
    versions: [PROTOCOL_VERSION],
    fingerprint: server.fingerprint,
    keys: {
      signing: { alg: 'Ed25519', kid: server.signing.kid, publicKey: b64u(server.signing.publicKey) },
      agreement: { alg: 'X25519', kid: server.agreement.kid, publicKey: b64u(server.agreement.publicKey) },
    },
    jwksUri: '/.well-known/jwks.json',
  };
}

/**
 * Parses a discovery document and checks it against the expected fingerprint (from the token, or
 * the state dir). Anything that does not hash to `expectedFingerprint` is `server_key_mismatch`.
 */
export function pinServer(doc: unknown, expectedFingerprint: string): ServerPublicKeys {
  try {
    const d = doc as { versions?: unknown; keys?: { signing?: { publicKey?: unknown }; agreement?: { publicKey?: unknown } } };
    if (!Array.isArray(d.versions) || !d.versions.includes(PROTOCOL_VERSION)) throw new ProtocolError('version_unsupported');
    const sig = fromB64uExact(String(d.keys?.signing?.publicKey), 32, 'server_key_mismatch');
    const kx = fromB64uExact(String(d.keys?.agreement?.publicKey), 32, 'server_key_mismatch');
    const fingerprint = fingerprintOf(sig, kx);
    if (!constantTimeEqual(utf8(fingerprint), utf8(expectedFingerprint))) throw new ProtocolError('server_key_mismatch');
    return {
      signing: { publicKey: sig, kid: keyIdOf('ed25519', sig) },
      agreement: { publicKey: kx, kid: keyIdOf('x25519', kx) },
      fingerprint,
    };
  } catch (err) {
    if (err instanceof ProtocolError && err.code === 'version_unsupported') throw err;
    throw new ProtocolError('server_key_mismatch');
  }
}
