// Discovery and pinning (spec/PROTOCOL.md §Discovery). GET /.well-known/latchkey answers
//   {"protocol":"latchkey","versions":[1],"fingerprint":F,
//    "keys":{"signing":{"alg":"Ed25519","kid":K1,"publicKey":b64u},"agreement":{"alg":"X25519","kid":K2,"publicKey":b64u}},
//    "previous":[{"fingerprint":F0,"keys":{…}}, …], "endorsements":[…], …}
// `previous` (the key sets still accepted during a rotation, spec §14) and `endorsements` (the chain
// to F, oldest first) appear only once the server has rotated. The agent never trusts the document:
// it recomputes the fingerprint from the keys and compares it with the token's before anything
// secret is sent (a token issued before a rotation pins the previous set it names). A MITM or a
// spoofed DNS answer fails here.
import { b64u, constantTimeEqual, fromB64uExact, utf8 } from './bytes.js';
import { ProtocolError } from './errors.js';
import { fingerprintOf, keyIdOf } from './keys.js';
import type { ServerPublicKeys } from './enrollment.js';
import type { SignedObject } from './signed.js';
import { PROTOCOL_VERSION } from './version.js';

const keysOf = (server: ServerPublicKeys) => ({
  signing: { alg: 'Ed25519', kid: server.signing.kid, publicKey: b64u(server.signing.publicKey) },
  agreement: { alg: 'X25519', kid: server.agreement.kid, publicKey: b64u(server.agreement.publicKey) },
});

export function discoveryDocument(
  server: ServerPublicKeys,
  rotation?: { previous: readonly ServerPublicKeys[]; endorsements: readonly SignedObject[] },
) {
  return {
    protocol: 'latchkey',
    versions: [PROTOCOL_VERSION],
    fingerprint: server.fingerprint,
    keys: keysOf(server),
    ...(rotation && (rotation.previous.length || rotation.endorsements.length)
      ? {
          previous: rotation.previous.map((p) => ({ fingerprint: p.fingerprint, keys: keysOf(p) })),
          endorsements: [...rotation.endorsements],
        }
      : {}),
    jwksUri: '/.well-known/jwks.json',
  };
}

type KeysDoc = { keys?: { signing?: { publicKey?: unknown }; agreement?: { publicKey?: unknown } } };

/**
 * Parses a discovery document and checks it against the expected fingerprint (from the token, or
 * the state dir): the current keys, or one of the `previous` sets. Anything that does not hash to
 * `expectedFingerprint` is `server_key_mismatch`.
 */
export function pinServer(doc: unknown, expectedFingerprint: string): ServerPublicKeys {
  if (typeof doc !== 'object' || doc === null) throw new ProtocolError('server_key_mismatch');
  const d = doc as KeysDoc & { versions?: unknown; previous?: unknown };
  if (!Array.isArray(d.versions) || !d.versions.includes(PROTOCOL_VERSION)) throw new ProtocolError('version_unsupported');
  const candidates: unknown[] = [d, ...(Array.isArray(d.previous) ? d.previous.slice(0, 64) : [])];
  for (const candidate of candidates) {
    const keys = keySetOf(candidate);
    if (keys && constantTimeEqual(utf8(keys.fingerprint), utf8(expectedFingerprint))) return keys;
  }
  throw new ProtocolError('server_key_mismatch');
}

/** The key set a document (or one of its `previous` entries) describes, fingerprint recomputed. */
export function keySetOf(doc: unknown): ServerPublicKeys | undefined {
  try {
    const d = doc as KeysDoc;
    const sig = fromB64uExact(String(d.keys?.signing?.publicKey), 32, 'server_key_mismatch');
    const kx = fromB64uExact(String(d.keys?.agreement?.publicKey), 32, 'server_key_mismatch');
    return {
      signing: { publicKey: sig, kid: keyIdOf('ed25519', sig) },
      agreement: { publicKey: kx, kid: keyIdOf('x25519', kx) },
      fingerprint: fingerprintOf(sig, kx),
    };
  } catch {
    return undefined;
  }
}
