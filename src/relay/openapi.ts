// The relay's own OpenAPI document (GET /openapi.json on the relay): the agent-facing routes it serves
// in the server's place (spec/PROTOCOL.md §11.1) and its operations routes. Routes forwarded verbatim
// (enroll, renew, revocations) answer what upstream answers, so they reuse the server's definitions;
// the others differ from the server's (202 queued with a relay-accept, 507 relay_full, cred required,
// readiness = upstream answers), so they are declared here. The handlers stay plain Hono (app.ts).
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { openApiRoute } from '../server/routes/docs.js';
import { route as enrollRoute } from '../server/routes/enroll.js';
import { route as renewRoute } from '../server/routes/renew.js';
import { route as revocationsRoute } from '../server/routes/revocations.js';
import { ErrorSchema, errorResponses, MessagesBodySchema, SignedObjectSchema } from '../server/routes/schemas.js';

const RelayAcceptSchema = SignedObjectSchema.openapi({
  description: "Signed object (spec §9) of type relay-accept, signed by the relay's key: body {mid, snd, env, rat, relay}",
});
const QueuedSchema = z
  .object({
    status: z.literal('queued'),
    accept: RelayAcceptSchema,
    credential: z.string().openapi({ description: "The relay's credential (JWT): the agent verifies it with its pinned server key" }),
  })
  .openapi('RelayQueued', { description: 'Spooled durably, not yet answered by the server; collect the receipt later (GET /v1/receipts)' });

/** Codes an envelope can be refused with at the relay (§11.1 admission) or by the server behind it. */
const MESSAGE_CODES = [
  'envelope_malformed',
  'version_unsupported',
  'hop_limit_exceeded',
  'credential_invalid',
  'relay_not_authorized',
  'agent_revoked',
  'key_revoked',
  'key_expired',
  'key_unknown',
  'signature_invalid',
  'stale_message',
  'recipient_mismatch',
  'replay_detected',
  'rate_limited',
  'decrypt_failed',
  'payload_too_large',
  'payload_invalid',
  'unsupported_media_type',
  'relay_full',
] as const;

const json = <T extends z.ZodTypeAny>(schema: T) => ({ 'application/json': { schema } });

export const relayPaths = [
  createRoute({
    method: 'get',
    path: '/healthz',
    operationId: 'getHealth',
    tags: ['operations'],
    summary: 'Liveness: the relay process is up',
    responses: { 200: { description: 'Up', content: json(z.object({ status: z.literal('ok') })) }, ...errorResponses() },
  }),
  createRoute({
    method: 'get',
    path: '/readyz',
    operationId: 'getReadiness',
    tags: ['operations'],
    summary: "Readiness: upstream answers its /healthz (else 503 unavailable); the revocation list's age",
    responses: {
      200: {
        description: 'Ready; a stale revocation list does not stop the relay, it is reported (spec §11.1)',
        content: json(
          z.object({
            status: z.literal('ready'),
            revocations: z.object({
              version: z.number().int(),
              ageSeconds: z.number().int().nullable().openapi({ description: 'since a list from upstream last verified; null: never' }),
              stale: z.boolean().openapi({ description: 'not refreshed for three polling intervals' }),
            }),
          }),
        ),
      },
      ...errorResponses(),
    },
  }),
  createRoute({
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    tags: ['operations'],
    summary: 'Prometheus metrics: spool depth and bytes, oldest age, counts by code, revocation list age',
    responses: {
      200: { description: 'Prometheus text exposition', content: { 'text/plain': { schema: z.string() } } },
      ...errorResponses(),
    },
  }),
  openApiRoute,
  createRoute({
    method: 'get',
    path: '/.well-known/latchkey',
    operationId: 'getDiscovery',
    tags: ['discovery'],
    summary: "Upstream's discovery document (or one built from the relay's pinned keys), plus relay: {kid, credential}",
    responses: {
      200: { description: 'Discovery document with the relay member', content: json(z.object({}).passthrough().openapi('RelayDiscovery')) },
      ...errorResponses(),
    },
  }),
  createRoute({
    method: 'get',
    path: '/.well-known/jwks.json',
    operationId: 'getJwks',
    tags: ['discovery'],
    summary: "Upstream's JWKS, or the server signing keys the relay trusts",
    responses: {
      200: { description: 'JSON Web Key Set', content: json(z.object({ keys: z.array(z.object({}).passthrough()) })) },
      ...errorResponses(),
    },
  }),
  { ...enrollRoute, summary: `${enrollRoute.summary} (forwarded verbatim: sealed to the server)` },
  { ...renewRoute, summary: `${renewRoute.summary} (forwarded verbatim: sealed to the server)` },
  { ...revocationsRoute, summary: `${revocationsRoute.summary} (forwarded; signed by the server)` },
  createRoute({
    method: 'post',
    path: '/v1/messages',
    operationId: 'submitMessages',
    tags: ['agents'],
    summary:
      "Check (without opening), spool durably and forward one envelope or relayed object, or a batch; the server's receipt if it comes in time",
    request: {
      body: {
        required: true,
        content: json(MessagesBodySchema),
      },
    },
    responses: {
      200: {
        description:
          "The server's signed receipt, or for a batch one result per envelope (receipt, queued or error) and the relay's credential",
        content: json(
          z.union([
            SignedObjectSchema,
            z.object({
              results: z.array(
                z.object({
                  receipt: SignedObjectSchema.optional(),
                  error: ErrorSchema.shape.error.optional(),
                  status: z.literal('queued').optional(),
                  accept: RelayAcceptSchema.optional(),
                }),
              ),
              credential: z.string(),
            }),
          ]),
        ),
      },
      202: { description: 'Accepted for forwarding (one envelope): written durably, receipt not yet in', content: json(QueuedSchema) },
      ...errorResponses(...MESSAGE_CODES),
    },
  }),
  createRoute({
    method: 'get',
    path: '/v1/receipts/{snd}/{mid}',
    operationId: 'getReceipt',
    tags: ['agents'],
    summary: "The server's signed receipt of a forwarded message (kept by the relay, else upstream's); 404 while not yet forwarded",
    request: {
      params: z.object({
        snd: z.string().openapi({ description: "The envelope header's snd (sender Ed25519 kid)" }),
        mid: z.string().openapi({ description: "The envelope header's mid (b64u of 16 bytes)" }),
      }),
    },
    responses: {
      200: { description: 'Signed object of type receipt', content: json(SignedObjectSchema) },
      // Upstream refused the message without a receipt: its code, kept with the envelope set aside.
      ...errorResponses('request_invalid', 'not_found', ...MESSAGE_CODES),
    },
  }),
];

/** Registers the relay's routes in `app`'s document and serves it at /openapi.json. */
export function registerRelayDocument(app: OpenAPIHono): void {
  for (const path of relayPaths) app.openAPIRegistry.registerPath(path);
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'Latchkey relay',
      version: '0.1.0',
      description:
        'A relay forwards sealed envelopes it cannot read, spools them durably and proves the path (spec/PROTOCOL.md §11, §11.1). Agents use it as they would the server.',
    },
  });
}
