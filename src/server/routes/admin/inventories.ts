// GET /v1/admin/agents/{id}/inventory: the latest inventory as stored (scope `read`).
import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../../types.js';
import { ApiError } from '../../errors.js';
import { requireAdmin } from '../../middleware/admin-auth.js';
import { latestInventory } from '../../services/inventory-store.js';
import { b64u } from '../../../protocol/bytes.js';
import { errorResponses } from '../schemas.js';

export function registerInventoryRoutes(app: App): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/admin/agents/{id}/inventory',
      operationId: 'getAgentInventory',
      tags: ['admin'],
      summary: "An agent's latest inventory",
      security: [{ adminBearer: [] }],
      middleware: [requireAdmin('read')] as const,
      request: {
        params: z.object({
          id: z
            .string()
            .min(1)
            .max(64)
            .regex(/^[A-Za-z0-9_-]+$/),
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
              }),
            },
          },
        },
        ...errorResponses('request_invalid', 'unauthorized', 'forbidden', 'not_found'),
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const row = await latestInventory(c.get('deps').database.db, id);
      if (!row) throw new ApiError('not_found', 'no inventory for this agent');
      return c.json(
        {
          agentId: row.agentId,
          messageId: b64u(row.messageId),
          receivedAt: row.receivedAt.toISOString(),
          size: row.size,
          inventory: row.content,
        },
        200,
      );
    },
  );
}
