// POST /v1/admin/agents/import (scope `agents:write`): externally provisioned agents from JSON lines,
// all or nothing (services/provisioning.ts; spec §20.1). `latchkey agents import` is the same.
import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../../types.js';
import { requireAdmin } from '../../middleware/admin-auth.js';
import { importAgents } from '../../services/provisioning.js';
import { errorResponses } from '../schemas.js';

const ImportRequest = z
  .object({
    ndjson: z.string().openapi({
      description:
        'the file: one JSON object a line, {"name","signingKey","agreementKey","role"?,"labels"?,"expiresAt"?,"cidr"?} (public keys base64url)',
    }),
    dryRun: z.boolean().default(false).openapi({ description: 'check everything, write nothing, and report what would change' }),
  })
  .strict()
  .openapi('AgentImport');
const ImportResult = z
  .object({
    dryRun: z.boolean(),
    count: z.number(),
    sha256: z.string().openapi({ description: "hex SHA-256 of the file's UTF-8 bytes, as audited" }),
    agents: z.array(
      z.object({ line: z.number(), name: z.string(), role: z.enum(['agent', 'relay']), sigKid: z.string(), id: z.string().optional() }),
    ),
  })
  .openapi('AgentImportResult');

export function registerImportRoute(app: App): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/admin/agents/import',
      operationId: 'importAgents',
      tags: ['admin'],
      summary: 'Register agents provisioned elsewhere from JSON lines, all or nothing (audited with the count and SHA-256)',
      security: [{ adminBearer: [] }],
      middleware: [requireAdmin('agents:write')] as const,
      request: { body: { required: true, content: { 'application/json': { schema: ImportRequest } } } },
      responses: {
        200: { description: 'Imported (or, with dryRun, what would be)', content: { 'application/json': { schema: ImportResult } } },
        ...errorResponses('request_invalid', 'unauthorized', 'forbidden', 'payload_too_large', 'name_invalid', 'name_taken'),
      },
    }),
    async (c) => {
      const deps = c.get('deps');
      const { ndjson, dryRun } = c.req.valid('json');
      const result = await importAgents(
        { database: deps.database, ctx: deps.ctx, credentialTtlSeconds: deps.renewal.policy.credentialTtlSeconds },
        ndjson,
        c.get('admin').id,
        dryRun,
      );
      return c.json(result, 200);
    },
  );
}
