// POST /v1/messages: one envelope or relayed object (spec §11), or a batch {"envelopes":[…]} of
// either (at most 100). One envelope:
// 200 with its signed receipt, or the error's status with {error, receipt?}. A batch: 200 with one
// batch receipt (§10.1) signed once per key set addressed, covering the request's bytes and one
// result per envelope, in order. Receipts are sent only after the inventory is committed.
import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../types.js';
import { errorBody } from '../errors.js';
import type { ServerIdentity } from '../identity.js';
import { b64u, fromB64u, fromUtf8 } from '../../protocol/bytes.js';
import { batchResultBytes, MAX_BATCH_ITEMS, signBatchReceipts, type BatchAnswer } from '../../protocol/batch-receipt.js';
import { ProtocolError } from '../../protocol/errors.js';
import { requireJson } from '../middleware/json-only.js';
import { ingestOne, signDraft, type IngestDeps, type IngestResult } from '../services/ingest.js';
import type { RelayMemo } from '../services/relay-layers.js';
import { ErrorSchema, errorResponses, MessagesBodySchema, SignedObjectSchema } from './schemas.js';

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
          schema: MessagesBodySchema,
        },
      },
    },
  },
  responses: {
    200: {
      description: 'A signed receipt, or a batch answer',
      content: {
        'application/json': {
          schema: z.union([
            SignedObjectSchema,
            z
              .object({
                batchReceipts: z.array(SignedObjectSchema).min(1),
                results: z.array(
                  z.object({
                    result: z.string().openapi({ description: 'b64u of R_i, covered by the batch receipt (spec §10.1)' }),
                    error: ErrorSchema.shape.error.optional().openapi({ description: 'unsigned copy of a refusal, for people' }),
                  }),
                ),
              })
              .openapi('BatchAnswer', { description: 'One batch receipt per server key set addressed (spec §10.1, §17)' }),
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
    // The exact bytes are kept: a batch receipt binds the request it answers (§10.1).
    const raw = new Uint8Array(await c.req.arrayBuffer());
    let body: unknown;
    try {
      body = JSON.parse(fromUtf8(raw, 'envelope_malformed'));
    } catch {
      body = undefined;
    }
    const batch =
      body && typeof body === 'object' && !Array.isArray(body) && 'envelopes' in body
        ? (body as { envelopes: unknown }).envelopes
        : undefined;
    if (batch !== undefined) {
      // The wrapper is exactly {"envelopes":[…]}: an unknown field is refused, never ignored.
      if (Object.keys(body as object).length !== 1) throw new ProtocolError('envelope_malformed', 'a batch has only the field envelopes');
      if (!Array.isArray(batch) || batch.length === 0 || batch.length > MAX_BATCH_ITEMS) {
        throw new ProtocolError('envelope_malformed', `a batch holds 1 to ${MAX_BATCH_ITEMS} envelopes`);
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
          return run.then(logged);
        }),
      );
      return c.json(await batchAnswer(deps, raw, results), 200);
    }
    const r = logged(await ingestOne(deps, body, source));
    if (r.ok) return c.json(await signDraft(deps.ctx, r.receipt), 200);
    const receipt = r.receipt && (await signDraft(deps.ctx, r.receipt));
    // The app's onError answers with its status, body, receipt and Retry-After.
    throw new ProtocolError(r.error.code, r.error.message, { retryAfterSeconds: r.error.retryAfterSeconds, receipt });
  });
}

/**
 * A batch's answer (§10.1): each item's judgement (or, unjudged, its refusal) as a result R_i, and
 * one signature over all of them and the request's bytes per server key set the items addressed
 * (the current one when none was judged). The unsigned `error` beside a result is for people.
 */
async function batchAnswer(deps: IngestDeps, request: Uint8Array, results: IngestResult[]): Promise<BatchAnswer> {
  const rat = deps.ctx.now();
  const signers = new Map<string, ServerIdentity['signing']>();
  const texts = results.map((r, i) => {
    if (r.receipt) signers.set(r.receipt.signer.kid, r.receipt.signer);
    return batchResultBytes(i, r.receipt?.body ?? { status: 'refused', rat, code: r.ok ? 'internal_error' : r.error.code });
  });
  if (signers.size === 0) signers.set(deps.identity.signing.kid, deps.identity.signing);
  const batchReceipts = await signBatchReceipts(deps.ctx.crypto, [...signers.values()], { request, rat, results: texts });
  return {
    batchReceipts,
    results: results.map((r, i) => ({
      result: b64u(texts[i]!),
      ...(r.ok ? {} : { error: errorBody(r.error.code, r.error.message).error }),
    })),
  };
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
