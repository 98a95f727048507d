// POST /v1/renew (spec/PROTOCOL.md §12): a renew envelope from the agent's current key; the answer
// is a signed renew-response carrying the new credential. Refusals after the envelope's signature
// verified carry a signed receipt, so the agent can believe them.
import { createRoute } from '@hono/zod-openapi';
import type { App } from '../types.js';
import { renew } from '../services/renewal.js';
import { EnvelopeSchema, errorResponses, SignedObjectSchema } from './schemas.js';

export const route = createRoute({
  method: 'post',
  path: '/v1/renew',
  operationId: 'renew',
  tags: ['agents'],
  summary: "Replace the agent's keys and credential before they expire",
  request: {
    body: {
      required: true,
      content: {
        'application/json': {
          // An envelope of type renew from the current key (spec/PROTOCOL.md §12).
          schema: EnvelopeSchema,
        },
      },
    },
  },
  responses: {
    200: {
      description: 'Server-signed renew-response with the new credential',
      content: { 'application/json': { schema: SignedObjectSchema } },
    },
    // In the order of spec/PROTOCOL.md §12.
    ...errorResponses(
      'payload_too_large',
      'envelope_malformed',
      'version_unsupported',
      'payload_invalid',
      'key_unknown',
      'signature_invalid',
      'recipient_mismatch',
      'stale_message',
      'agent_revoked',
      'key_revoked',
      'key_expired',
      'decrypt_failed',
      'replay_detected',
    ),
  },
});

export function registerRenewRoutes(app: App): void {
  app.openAPIRegistry.registerPath(route);
  app.post('/v1/renew', async (c) => {
    const deps = c.get('deps');
    const body: unknown = await c.req.json().catch(() => undefined); // undefined → envelope_malformed
    return c.json(await renew(deps.renewal, body, deps.clientAddress(c)), 200);
  });
}
