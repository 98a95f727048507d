// POST /v1/enroll (spec/PROTOCOL.md §Enrollment). The body is the sealed request; its shape is
// checked by the protocol parser, so the OpenAPI schema here documents rather than validates.
import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../app.js';
import { ApiError, errorBody } from '../errors.js';
import { requireJson } from '../middleware/json-only.js';
import { createEnrollmentLimiter, enroll, RateLimitedError, UNAVAILABLE_RETRY_AFTER_SECONDS, type EnrollmentPolicy } from '../services/enrollment.js';
import { ErrorSchema, SignedObjectSchema } from './schemas.js';

const route = createRoute({
  method: 'post',
  path: '/v1/enroll',
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
    400: { description: 'Malformed request or failed decryption', content: { 'application/json': { schema: ErrorSchema } } },
    401: { description: 'Unknown, expired or revoked token', content: { 'application/json': { schema: ErrorSchema } } },
    403: { description: 'Token constraint failed', content: { 'application/json': { schema: ErrorSchema } } },
    409: { description: 'Token already used, or name taken', content: { 'application/json': { schema: ErrorSchema } } },
    415: { description: 'Content-Type is not application/json', content: { 'application/json': { schema: ErrorSchema } } },
    429: { description: 'Too many failures from this source or for this token', content: { 'application/json': { schema: ErrorSchema } } },
    503: { description: 'Infrastructure fault (database); not counted against the caller', content: { 'application/json': { schema: ErrorSchema } } },
  },
});

export function registerEnrollRoutes(app: App, policy: Partial<EnrollmentPolicy> = {}): void {
  const limiter = createEnrollmentLimiter(undefined, policy);
  // Documented from the zod schema; parsed by the protocol core so failures carry protocol codes.
  app.openAPIRegistry.registerPath(route);
  app.post('/v1/enroll', requireJson, async (c) => {
    const deps = c.get('deps');
    const body: unknown = await c.req.json().catch(() => undefined); // undefined → envelope_malformed
    try {
      return c.json(await enroll({ ...deps, limiter }, body, deps.clientAddress(c)), 200);
    } catch (err) {
      if (err instanceof RateLimitedError) {
        return c.json(errorBody('rate_limited', err.message), 429, { 'Retry-After': String(err.retryAfterSeconds) });
      }
      if (err instanceof ApiError && err.code === 'unavailable') {
        return c.json(errorBody('unavailable', err.message), 503, { 'Retry-After': String(UNAVAILABLE_RETRY_AFTER_SECONDS) });
      }
      throw err;
    }
  });
}
