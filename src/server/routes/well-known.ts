// Public discovery: the server's keys, their fingerprint and the protocol versions it speaks
// (spec/PROTOCOL.md §Discovery). Agents never trust this blindly: they recompute the fingerprint
// from these keys and compare it with the one their token carries.
import { Hono } from 'hono';
import { serverJwk } from '../../protocol/credential.js';
import { discoveryDocument } from '../../protocol/discovery.js';
import type { AppEnv } from '../types.js';

export function wellKnownRoutes(): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  r.get('/.well-known/latchkey', (c) => {
    const { identity } = c.get('deps');
    c.header('Cache-Control', 'public, max-age=300');
    return c.json(discoveryDocument(identity));
  });
  r.get('/.well-known/jwks.json', (c) => {
    const { identity } = c.get('deps');
    c.header('Cache-Control', 'public, max-age=300');
    return c.json({ keys: [serverJwk(identity.signing)] });
  });
  return r;
}
