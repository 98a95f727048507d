// GET /v1/receipts/{snd}/{mid} (spec §11, §17): the signed receipt of a message the server stored, for
// a relay to collect and hand to the agent later. Agent protocol route: no admin credential; budgeted
// per source address. The receipt binds the accepted envelope (`env`), so only its sender can use it.
import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../types.js';
import { storedReceipt } from '../services/stored-receipts.js';
import { errorResponses, SignedObjectSchema } from './schemas.js';

const route = createRoute({
  method: 'get',
  path: '/v1/receipts/{snd}/{mid}',
  operationId: 'getReceipt',
  tags: ['agents'],
  summary: 'The signed receipt of a stored message, by sender key id and message id',
  request: {
    params: z.object({
      snd: z.string().openapi({ description: "The envelope header's snd (sender Ed25519 kid)" }),
      mid: z.string().openapi({ description: "The envelope header's mid (b64u of 16 bytes)" }),
    }),
  },
  responses: {
    200: { description: 'Signed object of type receipt, status accepted', content: { 'application/json': { schema: SignedObjectSchema } } },
    ...errorResponses('request_invalid', 'not_found', 'rate_limited'),
  },
});

export function registerReceiptRoutes(app: App): void {
  app.openAPIRegistry.registerPath(route);
  app.get('/v1/receipts/:snd/:mid', async (c) => {
    const deps = c.get('deps');
    const receipt = await storedReceipt(deps.ingest, c.req.param('snd'), c.req.param('mid'), deps.clientAddress(c) ?? 'unknown');
    c.header('Cache-Control', 'no-store');
    return c.json(receipt, 200);
  });
}
