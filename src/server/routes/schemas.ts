// OpenAPI schemas shared by several routes, and every route's error responses, built from the one
// error table (src/protocol/errors.ts) so the document, the spec and the code cannot disagree.
import { z } from '@hono/zod-openapi';
import { ERROR_CODES, statusFor, type ErrorCode } from '../errors.js';
import { isValidAgentName } from '../services/name-rules.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../services/page.js';
import { MAX_BATCH_ITEMS } from '../../protocol/batch-receipt.js';

/** An agent by its id or its name (ids win), resolved by the server. */
export const AgentRef = z
  .string()
  .min(1)
  .max(128)
  .refine((v) => /^[A-Za-z0-9_-]{1,64}$/.test(v) || isValidAgentName(v), 'an agent id or name');

/** Keyset pagination (services/page.ts): creation order; `next_cursor` is null on the last page. */
export const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(DEFAULT_PAGE_SIZE),
  cursor: z.string().max(256).optional().openapi({ description: 'next_cursor of the previous page (opaque)' }),
});
export const NextCursor = z.string().nullable().openapi({ description: 'pass as ?cursor= for the next page; null when this is the last' });

export const SignedObjectSchema = z
  .object({ v: z.literal(1), typ: z.string(), kid: z.string(), body: z.string(), sig: z.string() })
  .openapi('SignedObject', { description: 'A server-signed object; see spec/PROTOCOL.md §Signed objects' });

/** An envelope (spec/PROTOCOL.md §8), as POST /v1/messages and POST /v1/renew take it. */
export const EnvelopeSchema = z
  .object({ v: z.literal(1), header: z.string(), enc: z.string(), ct: z.string(), sig: z.string(), cred: z.string().optional() })
  .strict()
  .openapi('Envelope', { description: 'Sealed, signed message; see spec/PROTOCOL.md §Envelope' });

/** One verified relay layer of a stored message (spec §11), outer → inner. */
export const RelayHopSchema = z
  .object({
    relay: z.string().openapi({ description: "The relay's Ed25519 key id" }),
    agentId: z.string(),
    name: z.string(),
    hop: z.number(),
    rat: z.number().openapi({ description: "The relay's received-at, ms since the epoch" }),
    src: z.string().optional().openapi({ description: 'The address the relay received the message from' }),
  })
  .openapi('RelayHop');

/** A relayed object (spec §11): an envelope, or another relayed object, wrapped in a relay's signed layer. */
export const RelayedSchema = z
  .object({
    v: z.literal(1),
    layer: z.string().openapi({ description: 'b64u of the layer body L {"relay","hop","rat","src"?,"cred"}' }),
    inner: z
      .union([EnvelopeSchema, z.record(z.string(), z.unknown())])
      .openapi({ description: 'The envelope (hop 1), or the relayed object of the previous relay (hop 2 to 4)' }),
    sig: z.string(),
  })
  .strict()
  .openapi('Relayed', { description: 'An envelope forwarded by relays; see spec/PROTOCOL.md §11' });

export const ErrorSchema = z
  .object({
    error: z.object({ code: z.enum(ERROR_CODES as [ErrorCode, ...ErrorCode[]]).openapi({ example: 'token_used' }), message: z.string() }),
    receipt: SignedObjectSchema.optional().openapi({
      description: 'A signed rejection receipt (POST /v1/messages, when the sender key is registered)',
    }),
  })
  .openapi('Error', { description: 'Every error body; the status of each code is in spec/PROTOCOL.md §15' });

/** OpenAPI extension naming the codes a response status stands for; checked by test/server/error-table.test.ts. */
export const ERROR_CODES_EXTENSION = 'x-error-codes' as const;

/** Every documented route can fail this way: its database unreachable, or a bug. */
const ALWAYS: readonly ErrorCode[] = ['unavailable', 'internal_error'];

/**
 * The error responses of a route that can fail with these codes: one entry per status, the shared
 * Error schema, the codes listed, and `Retry-After` where `rate_limited` can occur.
 */
export function errorResponses(...codes: ErrorCode[]) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set([...codes, ...ALWAYS])) {
    const status = statusFor(code);
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: Record<
    string,
    {
      description: string;
      content: { 'application/json': { schema: typeof ErrorSchema } };
      headers?: Record<string, unknown>;
      [ERROR_CODES_EXTENSION]: ErrorCode[];
    }
  > = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    const retry = list.includes('rate_limited') || list.includes('unavailable');
    responses[status] = {
      description: list.map((c) => `\`${c}\``).join(', '),
      content: { 'application/json': { schema: ErrorSchema } },
      ...(retry
        ? { headers: { 'Retry-After': { description: 'seconds to wait before retrying', schema: { type: 'integer', minimum: 1 } } } }
        : {}),
      [ERROR_CODES_EXTENSION]: list,
    };
  }
  return responses;
}

/** POST /v1/messages, at the server and at a relay: one envelope or relayed object, or a batch of either. */
export const MessagesBodySchema = z.union([
  EnvelopeSchema,
  RelayedSchema,
  z
    .object({
      envelopes: z
        .array(z.union([EnvelopeSchema, RelayedSchema]))
        .min(1)
        .max(MAX_BATCH_ITEMS),
    })
    .strict(),
]);
