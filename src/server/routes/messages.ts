// POST /v1/messages: one envelope, or a batch {"envelopes":[…]} (at most 100). One envelope:
// 200 with its signed receipt, or the error's status with {error, receipt?}. A batch: 200 with one
// result per envelope, in order. Receipts are sent only after the inventory is committed.
import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../types.js';
import { errorBodyOf, type ErrorBody } from '../errors.js';
import { ProtocolError } from '../../protocol/errors.js';
import { requireJson } from '../middleware/json-only.js';
import { ingestOne, type IngestResult } from '../services/ingest.js';
import { EnvelopeSchema, ErrorSchema, errorResponses, SignedObjectSchema } from './schemas.js';

export const MAX_BATCH = 100;

const route = createRoute({
  method: 'post',
  path: '/v1/messages',
  operationId: 'submitMessages',
  tags: ['agents'],
  summary: 'Submit one sealed envelope or a batch',
  request: {
    body: {
      required: true,
      content: {
        'application/json': {
          schema: z.union([EnvelopeSchema, z.object({ envelopes: z.array(EnvelopeSchema).min(1).max(MAX_BATCH) }).strict()]),
        },
      },
    },
  },
  responses: {
    200: {
      description: 'Signed receipt(s)',
      content: {
        'application/json': {
          schema: z.union([
            SignedObjectSchema,
            z.object({ results: z.array(z.object({ receipt: SignedObjectSchema.optional(), error: ErrorSchema.shape.error.optional() })) }),
          ]),
        },
      },
    },
    ...errorResponses(
      'envelope_malformed',
      'version_unsupported',
      'key_unknown',
      'agent_revoked',
      'key_revoked',
      'key_expired',
      'replay_detected',
      'signature_invalid',
      'recipient_mismatch',
      'stale_message',
      'rate_limited',
      'decrypt_failed',
      'payload_too_large',
      'payload_invalid',
      'credential_invalid',
      'unsupported_media_type',
    ),
  },
});

export function registerMessageRoutes(app: App): void {
  app.openAPIRegistry.registerPath(route);
  app.post('/v1/messages', requireJson, async (c) => {
    const deps = c.get('deps').ingest;
    const source = c.get('deps').clientAddress(c);
    const { logger } = c.get('deps');
    // Every refusal at info with its code and the sender's address: never the envelope or its contents.
    const logged = (r: IngestResult): IngestResult => {
      if (!r.ok) logger.info({ code: r.error.code, source }, 'message refused');
      return r;
    };
    const body: unknown = await c.req.json().catch(() => undefined);
    const batch =
      body && typeof body === 'object' && !Array.isArray(body) && 'envelopes' in body
        ? (body as { envelopes: unknown }).envelopes
        : undefined;
    if (batch !== undefined) {
      // The wrapper is exactly {"envelopes":[…]}: an unknown field is refused, never ignored.
      if (Object.keys(body as object).length !== 1) throw new ProtocolError('envelope_malformed', 'a batch has only the field envelopes');
      if (!Array.isArray(batch) || batch.length === 0 || batch.length > MAX_BATCH) {
        throw new ProtocolError('envelope_malformed', `a batch holds 1 to ${MAX_BATCH} envelopes`);
      }
      const results: (ErrorBody | { receipt: unknown })[] = [];
      // In order, one at a time: a batch from one agent keeps its counter order.
      for (const item of batch) results.push(view(logged(await ingestOne(deps, item, source))));
      return c.json({ results }, 200);
    }
    const r = logged(await ingestOne(deps, body, source));
    if (r.ok) return c.json(r.receipt, 200);
    throw r.error; // the app's onError answers with its status, body, receipt and Retry-After
  });
}

/** One batch item: the receipt, or the same body a single envelope's error has. */
function view(r: IngestResult): ErrorBody | { receipt: unknown } {
  return r.ok ? { receipt: r.receipt } : errorBodyOf(r.error);
}
