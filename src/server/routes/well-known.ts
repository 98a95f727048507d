// Public discovery: the server's keys, their fingerprint and the protocol versions it speaks
// (spec/PROTOCOL.md §Discovery). Agents never trust this blindly: they recompute the fingerprint
// from these keys and compare it with the one their token carries.
import { Hono } from 'hono';
import { base64url } from 'jose';
import { PROTOCOL_VERSION } from '../../protocol/version.js';
import type { AppEnv } from '../app.js';

export function wellKnownRoutes(): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  r.get('/.well-known/latchkey', (c) => {
    const { identity } = c.get('deps');
    c.header('Cache-Control', 'public, max-age=300');
    return c.json({
      protocol: 'latchkey',
      versions: [PROTOCOL_VERSION],
      fingerprint: identity.fingerprint,
      keys: {
        signing: { alg: 'Ed25519', kid: identity.signing.kid, publicKey: base64url.encode(identity.signing.publicKey) },
        agreement: { alg: 'X25519', kid: identity.agreement.kid, publicKey: base64url.encode(identity.agreement.publicKey) },
      },
      jwksUri: '/.well-known/jwks.json',
    });
  });
  r.get('/.well-known/jwks.json', (c) => {
    const { identity } = c.get('deps');
    c.header('Cache-Control', 'public, max-age=300');
    return c.json({
      keys: [{ kty: 'OKP', crv: 'Ed25519', x: base64url.encode(identity.signing.publicKey), kid: identity.signing.kid, use: 'sig', alg: 'EdDSA' }],
    });
  });
  return r;
}
