// OpenAPI schemas shared by several routes.
import { z } from '@hono/zod-openapi';

export const ErrorSchema = z
  .object({ error: z.object({ code: z.string().openapi({ example: 'token_used' }), message: z.string() }) })
  .openapi('Error');

export const SignedObjectSchema = z
  .object({ v: z.literal(1), typ: z.string(), kid: z.string(), body: z.string(), sig: z.string() })
  .openapi('SignedObject', { description: 'A server-signed object; see spec/PROTOCOL.md §Signed objects' });
