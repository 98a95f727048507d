// GET /v1/revocations[?since=VERSION] (spec/PROTOCOL.md §13): the signed revocation list, for relays
// and agents to check without asking. Conditional with ETag / If-None-Match; `since` gives a delta.
import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../types.js';
import { LatchkeyError } from '../errors.js';
import { revocationVersion, signedRevocationList } from '../services/revocation-list.js';
import { errorResponses, SignedObjectSchema } from './schemas.js';

export const route = createRoute({
  method: 'get',
  path: '/v1/revocations',
  operationId: 'getRevocations',
  tags: ['agents'],
  summary: 'The signed list of revoked tokens, keys and agents (ids only)',
  request: { query: z.object({ since: z.string().optional().openapi({ description: 'Only entries after this version' }) }) },
  responses: {
    200: { description: 'Signed object of type revocation-list', content: { 'application/json': { schema: SignedObjectSchema } } },
    304: { description: 'Unchanged since the ETag given in If-None-Match' },
    ...errorResponses('request_invalid'),
  },
});

export function registerRevocationRoutes(app: App): void {
  app.openAPIRegistry.registerPath(route);
  app.get('/v1/revocations', async (c) => {
    const { database, identity, ctx } = c.get('deps');
    const raw = c.req.query('since') ?? '0';
    if (!/^(0|[1-9][0-9]{0,15})$/.test(raw)) throw new LatchkeyError('request_invalid', 'since must be a non-negative integer');
    const since = Number(raw);
    const etagOf = (version: number) => `"rl-${version}-${Math.min(since, version)}"`;
    c.header('Cache-Control', 'no-cache');
    const current = etagOf(await revocationVersion(database.db));
    if (c.req.header('If-None-Match') === current) {
      c.header('ETag', current);
      return c.body(null, 304);
    }
    // The list may be newer than `current` if a revocation committed meanwhile: tag what is sent.
    const { version, list } = await signedRevocationList(database.db, ctx.crypto, identity.signing, since, ctx.now());
    c.header('ETag', etagOf(version));
    return c.json(list, 200);
  });
}
