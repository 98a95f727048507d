// POST /v1/messages: one envelope or relayed object (spec §11), or a batch {"envelopes":[…]} of
// either (at most 100). One envelope:
// 200 with its signed receipt, or the error's status with {error, receipt?}. A batch: 200 with one
// result per envelope, in order. Receipts are sent only after the inventory is committed.
import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../types.js';
import { errorBodyOf, type ErrorBody } from '../errors.js';
import { fromB64u, fromUtf8 } from '../../protocol/bytes.js';
import { ProtocolError } from '../../protocol/errors.js';
import { requireJson } from '../middleware/json-only.js';
import { ingestOne, type IngestResult } from '../services/ingest.js';
import type { RelayMemo } from '../services/relay-layers.js';
import { EnvelopeSchema, ErrorSchema, errorResponses, RelayedSchema, SignedObjectSchema } from './schemas.js';

export const MAX_BATCH = 100;

const route = createRoute({
  method: 'post',
  path: '/v1/messages',
  operationId: 'submitMessages',
  tags: ['agents'],
  summary: 'Submit one sealed envelope, one relayed object, or a batch of either',
  request: {
    body: {
      required: true,
      content: {
        'application/json': {
          schema: z.union([
            EnvelopeSchema,
            RelayedSchema,
            z
              .object({
                envelopes: z
                  .array(z.union([EnvelopeSchema, RelayedSchema]))
                  .min(1)
                  .max(MAX_BATCH),
              })
              .strict(),
          ]),
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
      'hop_limit_exceeded',
      'relay_not_authorized',
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
      // Each relay key named in the batch is looked up once for the whole request.
      const relays: RelayMemo = new Map();
      // Items of one sender key run one after the other, in order (its counters, its budgets);
      // different senders run side by side, so a relay's batch shares statements and commits.
      const lanes = new Map<string, Promise<unknown>>();
      const results = await Promise.all(
        batch.map((item, i) => {
          const lane = laneOf(item) ?? `#${i}`;
          const run = (lanes.get(lane) ?? Promise.resolve()).then(() => ingestOne(deps, item, source, relays));
          lanes.set(
            lane,
            run.catch(() => undefined),
          );
          return run.then((r) => view(logged(r)));
        }),
      );
      return c.json({ results }, 200);
    }
    const r = logged(await ingestOne(deps, body, source));
    if (r.ok) return c.json(r.receipt, 200);
    throw r.error; // the app's onError answers with its status, body, receipt and Retry-After
  });
}

/**
 * The sender key an item names (its envelope header's `snd`, under any relay layers), read without
 * checking anything; undefined when it cannot be read (the item is then refused on its own).
 */
function laneOf(item: unknown): string | undefined {
  try {
    let cur = item as { inner?: unknown; header?: unknown } | null;
    for (let depth = 0; cur && typeof cur === 'object' && 'inner' in cur && depth <= 4; depth++) cur = cur.inner as typeof cur;
    if (!cur || typeof cur.header !== 'string' || cur.header.length > 2048) return undefined;
    const snd = (JSON.parse(fromUtf8(fromB64u(cur.header))) as { snd?: unknown }).snd;
    return typeof snd === 'string' ? `k:${snd}` : undefined;
  } catch {
    return undefined;
  }
}

/** One batch item: the receipt, or the same body a single envelope's error has. */
function view(r: IngestResult): ErrorBody | { receipt: unknown } {
  return r.ok ? { receipt: r.receipt } : errorBodyOf(r.error);
}
