// GET /v1/admin/forward (scope `read`): each GLPI forwarding target's backlog, the age of its oldest
// undelivered inventory and its last error, read from the database (every instance answers the same).
import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../../types.js';
import { requireAdmin } from '../../middleware/admin-auth.js';
import { forwardStatus } from '../../services/forward-outbox.js';
import { errorResponses } from '../schemas.js';

const Target = z
  .object({
    id: z.string(),
    url: z.string().openapi({ description: 'without credentials' }),
    active: z.boolean().openapi({ description: 'false: no longer configured (its undelivered rows were dropped)' }),
    backlog: z.number().int(),
    oldestUndeliveredSeconds: z.number().nullable(),
    deliveredTotal: z.number().int(),
    lastDeliveredAt: z.string().nullable(),
    lastError: z.string().nullable(),
    lastErrorAt: z.string().nullable(),
  })
  .openapi('ForwardTarget');

export function registerForwardRoutes(app: App): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/admin/forward',
      operationId: 'getForwardStatus',
      tags: ['admin'],
      summary: 'GLPI forwarding: backlog, oldest undelivered age and last error per target',
      security: [{ adminBearer: [] }],
      middleware: [requireAdmin('read')] as const,
      responses: {
        200: { description: 'Forwarding targets', content: { 'application/json': { schema: z.object({ targets: z.array(Target) }) } } },
        ...errorResponses('request_invalid', 'unauthorized', 'forbidden'),
      },
    }),
    async (c) => {
      const { database, ctx } = c.get('deps');
      return c.json({ targets: await forwardStatus(database.db, ctx.now()) }, 200);
    },
  );
}
