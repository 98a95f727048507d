// Public discovery: the server's keys, their fingerprint and the protocol versions it speaks
// (spec/PROTOCOL.md §Discovery); during a key rotation also the previous key sets still accepted
// and the endorsement chain to the current one (§14). Agents never trust this blindly: they
// recompute the fingerprint from these keys and compare it with the one their token carries, and
// follow the chain only from a key set they already pinned.
import { createRoute, z } from '@hono/zod-openapi';
import { Hono } from 'hono';
import { serverJwk } from '../../protocol/credential.js';
import { discoveryDocument } from '../../protocol/discovery.js';
import type { AppEnv } from '../types.js';
import { errorResponses } from './schemas.js';

/** Their OpenAPI entries (registered by app.ts; the handlers are plain Hono). */
export const wellKnownPaths = [
  createRoute({
    method: 'get',
    path: '/.well-known/latchkey',
    operationId: 'getDiscovery',
    tags: ['discovery'],
    summary: "The server's public keys, fingerprint and protocol versions (spec/PROTOCOL.md §Discovery, §14)",
    responses: {
      200: {
        description: 'Discovery document',
        content: { 'application/json': { schema: z.object({}).passthrough().openapi('Discovery') } },
      },
      ...errorResponses(),
    },
  }),
  createRoute({
    method: 'get',
    path: '/.well-known/jwks.json',
    operationId: 'getJwks',
    tags: ['discovery'],
    summary: 'Every accepted server signing key as a JWK (credentials verify with these)',
    responses: {
      200: {
        description: 'JSON Web Key Set',
        content: { 'application/json': { schema: z.object({ keys: z.array(z.object({}).passthrough()) }).openapi('Jwks') } },
      },
      ...errorResponses(),
    },
  }),
];

export function wellKnownRoutes(): Hono<AppEnv> {
  const r = new Hono<AppEnv>();
  r.get('/.well-known/latchkey', async (c) => {
    const { identity, keys } = c.get('deps');
    const endorsements = await keys.chain();
    c.header('Cache-Control', 'public, max-age=300');
    return c.json(discoveryDocument(identity, { previous: keys.ring.previous, endorsements }));
  });
  r.get('/.well-known/jwks.json', (c) => {
    const { keys } = c.get('deps');
    c.header('Cache-Control', 'public, max-age=300');
    // Every accepted signing key: credentials issued under a previous key set still verify.
    return c.json({ keys: keys.ring.accepted.map((id) => serverJwk(id.signing)) });
  });
  return r;
}
