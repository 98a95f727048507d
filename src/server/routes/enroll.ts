// POST /v1/enroll (spec/PROTOCOL.md §Enrollment). The body is the sealed request; its shape is
// checked by the protocol parser, so the OpenAPI schema here documents rather than validates.
import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../types.js';
import { requireJson } from '../middleware/json-only.js';
import { enroll } from '../services/enrollment.js';
import { errorResponses, SignedObjectSchema } from './schemas.js';

export const route = createRoute({
  method: 'post',
  path: '/v1/enroll',
  operationId: 'enroll',
  tags: ['agents'],
  summary: 'Enroll a new agent or relay with a one-time token',
  request: {
    body: {
      required: true,
      content: {
        'application/json': {
          schema: z
            .object({ v: z.literal(1), tid: z.string(), rcp: z.string(), enc: z.string(), ct: z.string() })
            .openapi('EnrollRequest', { description: 'HPKE Base-mode sealed request; see spec/PROTOCOL.md §Enrollment' }),
        },
      },
    },
  },
  responses: {
    200: { description: 'Server-signed enrollment response', content: { 'application/json': { schema: SignedObjectSchema } } },
    // In the order of spec/PROTOCOL.md §6.3.
    ...errorResponses(
      'payload_too_large',
      'envelope_malformed',
      'token_malformed',
      'version_unsupported',
      'rate_limited',
      'recipient_mismatch',
      'decrypt_failed',
      'payload_invalid',
      'server_key_mismatch',
      'signature_invalid',
      'token_unknown',
      'token_revoked',
      'token_expired',
      'token_used',
      'name_invalid',
      'token_constraint_failed',
      'name_taken',
      'unsupported_media_type',
      'stale_message',
    ),
  },
});

export function registerEnrollRoutes(app: App): void {
  // Documented from the zod schema; parsed by the protocol core so failures carry protocol codes.
  app.openAPIRegistry.registerPath(route);
  app.post('/v1/enroll', requireJson, async (c) => {
    const deps = c.get('deps');
    const body: unknown = await c.req.json().catch(() => undefined); // undefined → envelope_malformed
    // Failures (rate_limited with its Retry-After included) are thrown to the app's onError.
    return c.json(await enroll(deps.enrollment, body, deps.clientAddress(c)), 200);
  });
}
