// POST /v1/renew (spec/PROTOCOL.md §12): a renew envelope from the agent's current key; the answer
// is a signed renew-response carrying the new credential. Errors are the envelope's codes (§15).
import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app.js';
import { errorBody, statusFor } from '../errors.js';
import { renew, type RenewalPolicy } from '../services/renewal.js';
import { ErrorSchema, SignedObjectSchema } from './schemas.js';

const route = createRoute({
  method: 'post',
  path: '/v1/renew',
  tags: ['agents'],
  summary: "Replace the agent's keys and credential before they expire",
  request: {
    body: {
      required: true,
      content: {
        'application/json': {
          schema: z
            .object({ v: z.literal(1), header: z.string(), enc: z.string(), ct: z.string(), sig: z.string(), cred: z.string().optional() })
            .openapi('RenewEnvelope', { description: 'An envelope of type renew from the current key; see spec/PROTOCOL.md §12' }),
        },
      },
    },
  },
  responses: {
    200: { description: 'Server-signed renew-response with the new credential', content: { 'application/json': { schema: SignedObjectSchema } } },
    400: { description: 'Malformed, stale, undecryptable, or proofs invalid', content: { 'application/json': { schema: ErrorSchema } } },
    401: { description: 'Unknown, expired, superseded or revoked key; bad signature', content: { 'application/json': { schema: ErrorSchema } } },
    403: { description: 'Agent revoked', content: { 'application/json': { schema: ErrorSchema } } },
    409: { description: 'Replay', content: { 'application/json': { schema: ErrorSchema } } },
    413: { description: 'Too large', content: { 'application/json': { schema: ErrorSchema } } },
  },
});

export function registerRenewRoutes(app: App, policy: RenewalPolicy): void {
  app.openAPIRegistry.registerPath(route);
  app.post('/v1/renew', async (c) => {
    const deps = c.get('deps');
    const body: unknown = await c.req.json().catch(() => undefined); // undefined → envelope_malformed
    const r = await renew({ ...deps, policy }, body, deps.clientAddress(c));
    if (r.ok) return c.json(r.response, 200);
    return c.json({ ...errorBody(r.error.code, r.error.message), ...(r.receipt ? { receipt: r.receipt } : {}) }, statusFor(r.error.code) as 400);
  });
}
