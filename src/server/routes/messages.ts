// POST /v1/messages: one envelope, or a batch {"envelopes":[…]} (at most 100). One envelope:
// 200 with its signed receipt, or the error's status with {error, receipt?}. A batch: 200 with one
// result per envelope, in order. Receipts are sent only after the inventory is committed.
import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app.js';
import { errorBody, statusFor } from '../errors.js';
import { createIngestLimits, DEFAULT_INGEST_POLICY, ingestOne, type IngestDeps, type IngestPolicy, type IngestResult } from '../services/ingest.js';
import { SenderKeyCache } from '../services/sender-keys.js';
import { ErrorSchema, SignedObjectSchema } from './schemas.js';

export const MAX_BATCH = 100;

const Envelope = z
  .object({ v: z.literal(1), header: z.string(), enc: z.string(), ct: z.string(), sig: z.string(), cred: z.string().optional() })
  .strict()
  .openapi('Envelope', { description: 'Sealed, signed message; see spec/PROTOCOL.md §Envelope' });

const route = createRoute({
  method: 'post',
  path: '/v1/messages',
  tags: ['agents'],
  summary: 'Submit one sealed envelope or a batch',
  request: { body: { required: true, content: { 'application/json': { schema: z.union([Envelope, z.object({ envelopes: z.array(Envelope).min(1).max(MAX_BATCH) }).strict()]) } } } },
  responses: {
    200: { description: 'Signed receipt(s)', content: { 'application/json': { schema: z.union([SignedObjectSchema, z.object({ results: z.array(z.object({ receipt: SignedObjectSchema.optional(), error: ErrorSchema.shape.error.optional() })) })]) } } },
    400: { description: 'Malformed, undecryptable or invalid', content: { 'application/json': { schema: ErrorSchema } } },
    401: { description: 'Unknown, expired or revoked key; bad signature; invalid credential', content: { 'application/json': { schema: ErrorSchema } } },
    409: { description: 'Replay', content: { 'application/json': { schema: ErrorSchema } } },
    413: { description: 'Too large', content: { 'application/json': { schema: ErrorSchema } } },
    429: { description: "Budget exceeded: the agent's (messages or stored bytes), or the source address's (refused messages, unknown-key lookups)", content: { 'application/json': { schema: ErrorSchema } } },
  },
});

export function registerMessageRoutes(app: App, policy: IngestPolicy = DEFAULT_INGEST_POLICY): void {
  const limits = createIngestLimits(policy);
  const senderKeys = new SenderKeyCache();
  app.openAPIRegistry.registerPath(route);
  app.post('/v1/messages', async (c) => {
    const deps: IngestDeps = { ...c.get('deps'), policy, limits, senderKeys };
    const source = c.get('deps').clientAddress(c);
    const body: unknown = await c.req.json().catch(() => undefined);
    const batch = body && typeof body === 'object' && !Array.isArray(body) && 'envelopes' in body ? (body as { envelopes: unknown }).envelopes : undefined;
    if (batch !== undefined) {
      // The wrapper is exactly {"envelopes":[…]}: an unknown field is refused, never ignored.
      if (Object.keys(body as object).length !== 1) return c.json(errorBody('envelope_malformed', 'a batch has only the field envelopes'), 400);
      if (!Array.isArray(batch) || batch.length === 0 || batch.length > MAX_BATCH) {
        return c.json(errorBody('envelope_malformed', `a batch holds 1 to ${MAX_BATCH} envelopes`), 400);
      }
      const results: { receipt?: unknown; error?: { code: string; message: string } }[] = [];
      // In order, one at a time: a batch from one agent keeps its counter order.
      for (const item of batch) results.push(view(await ingestOne(deps, item, source)));
      return c.json({ results }, 200);
    }
    const r = await ingestOne(deps, body, source);
    if (r.ok) return c.json(r.receipt, 200);
    const headers: Record<string, string> = r.retryAfterSeconds ? { 'Retry-After': String(r.retryAfterSeconds) } : {};
    return c.json({ ...errorBody(r.code, r.message), ...(r.receipt ? { receipt: r.receipt } : {}) }, statusFor(r.code) as 400, headers);
  });
}

function view(r: IngestResult): { receipt?: unknown; error?: { code: string; message: string } } {
  if (r.ok) return { receipt: r.receipt };
  return { error: { code: r.code, message: r.message }, ...(r.receipt ? { receipt: r.receipt } : {}) };
}
