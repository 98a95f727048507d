// GET /v1/admin/agents/{id}/inventory: the latest inventory as stored (scope `read`).
import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../../types.js';
import { ApiError } from '../../errors.js';
import { requireAdmin } from '../../middleware/admin-auth.js';
import { latestInventory } from '../../services/inventory-store.js';
import { resolveAgentId } from '../../services/agents.js';
import { isValidAgentName } from '../../services/name-rules.js';
import { b64u } from '../../../protocol/bytes.js';
import { errorResponses, RelayHopSchema } from '../schemas.js';

export function registerInventoryRoutes(app: App): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/admin/agents/{id}/inventory',
      tags: ['admin'],
      summary: "An agent's (by id or name) latest inventory",
      security: [{ adminBearer: [] }],
      middleware: [requireAdmin('read')] as const,
      request: {
        params: z.object({
          id: z.string().min(1).max(128).refine(isValidAgentName, 'an agent id or name').openapi({ description: 'agent id or name' }),
        }),
      },
      responses: {
        200: {
          description: 'Latest inventory',
          content: {
            'application/json': {
              schema: z.object({
                agentId: z.string(),
                messageId: z.string(),
                receivedAt: z.string(),
                size: z.number(),
                inventory: z.unknown(),
                path: z.array(RelayHopSchema).openapi({ description: 'The verified relay path, outer → inner (spec §11); [] if direct' }),
              }),
            },
          },
        },
        ...errorResponses('request_invalid', 'unauthorized', 'forbidden', 'not_found'),
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const { db } = c.get('deps').database;
      const row = await latestInventory(db, await resolveAgentId(db, id));
      if (!row) throw new ApiError('not_found', 'no inventory for this agent');
      return c.json(
        {
          agentId: row.agentId,
          messageId: b64u(row.messageId),
          receivedAt: row.receivedAt.toISOString(),
          size: row.size,
          inventory: row.content,
          path: row.path,
        },
        200,
      );
    },
  );
}
