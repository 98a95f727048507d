// Stored inventories (scope `read`): GET /v1/admin/agents/{id}/inventory (the latest as stored),
// /v1/admin/agents/{id}/inventories (history, a page at a time), /v1/admin/agents/{id}/inventories/{messageId}
// (one), /v1/admin/inventories (every agent's, with content: what `latchkey inventory export` streams).
import { createRoute, z } from '@hono/zod-openapi';
import type { App } from '../../types.js';
import { ApiError } from '../../errors.js';
import { requireAdmin } from '../../middleware/admin-auth.js';
import { inventoryByMessage, latestInventory, listInventories } from '../../services/inventory-store.js';
import { resolveAgentId } from '../../services/agents.js';
import { isValidAgentName } from '../../services/name-rules.js';
import { b64u, fromB64u } from '../../../protocol/bytes.js';
import { AgentRef, errorResponses, NextCursor, PageQuery, RelayHopSchema } from '../schemas.js';

const security = [{ adminBearer: [] }];
const Since = z
  .string()
  .datetime({ offset: true })
  .optional()
  .openapi({ description: 'only inventories received at or after this time (ISO 8601)' });
const Entry = z
  .object({
    agentId: z.string(),
    agentName: z.string(),
    messageId: z.string(),
    receivedAt: z.string(),
    size: z.number(),
    path: z.array(RelayHopSchema).openapi({ description: 'the verified relay path, outer → inner; empty when direct' }),
    inventory: z.unknown().optional(),
    legacy: z
      .object({ id: z.string(), protocol: z.enum(['glpi-json', 'fusion-xml', 'ocs-xml']), cty: z.string() })
      .optional()
      .openapi({ description: "legacy origin (spec §11.2): the legacy agent's id, protocol and body type" }),
    raw: z
      .string()
      .optional()
      .openapi({ description: 'a legacy XML inventory exactly as the agent sent it (`inventory` is its GLPI JSON mapping)' }),
  })
  .openapi('StoredInventory');
const History = z.object({ inventories: z.array(Entry), next_cursor: NextCursor });
const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
/** Export pages carry content (inventories up to a few MB each): smaller pages than listings. */
const ExportQuery = PageQuery.extend({ limit: z.coerce.number().int().min(1).max(200).default(50), since: Since });

export function registerInventoryRoutes(app: App): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/admin/agents/{id}/inventory',
      operationId: 'getAgentInventory',
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
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/admin/agents/{id}/inventories',
      operationId: 'listAgentInventories',
      tags: ['admin'],
      summary: "An agent's stored inventories (history), oldest first, without their content",
      security,
      middleware: [requireAdmin('read')] as const,
      request: {
        params: z.object({ id: AgentRef.openapi({ description: 'agent id or name' }) }),
        query: PageQuery.extend({ since: Since }),
      },
      responses: {
        200: json(History, 'Stored inventories'),
        ...errorResponses('request_invalid', 'unauthorized', 'forbidden', 'not_found'),
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const { since, ...page } = c.req.valid('query');
      const r = await listInventories(c.get('deps').database.db, page, {
        agentRef: id,
        since: since === undefined ? undefined : new Date(since),
        withContent: false,
      });
      return c.json({ inventories: r.inventories, next_cursor: r.nextCursor }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/admin/agents/{id}/inventories/{messageId}',
      operationId: 'getAgentInventoryByMessage',
      tags: ['admin'],
      summary: 'One stored inventory, by its message id',
      security,
      middleware: [requireAdmin('read')] as const,
      request: {
        params: z.object({
          id: AgentRef.openapi({ description: 'agent id or name' }),
          messageId: z
            .string()
            .regex(/^[A-Za-z0-9_-]{22}$/)
            .openapi({ description: 'the message id (base64url, 16 bytes)' }),
        }),
      },
      responses: {
        200: json(Entry, 'The inventory as stored'),
        ...errorResponses('request_invalid', 'unauthorized', 'forbidden', 'not_found'),
      },
    }),
    async (c) => {
      const { id, messageId } = c.req.valid('param');
      let mid: Uint8Array;
      try {
        mid = fromB64u(messageId);
      } catch {
        throw new ApiError('request_invalid', 'messageId is not base64url');
      }
      const row = await inventoryByMessage(c.get('deps').database.db, id, mid);
      if (!row) throw new ApiError('not_found', 'no inventory with this message id for this agent');
      return c.json(
        {
          agentId: row.agentId,
          agentName: row.agentName,
          messageId: b64u(row.messageId),
          receivedAt: row.receivedAt.toISOString(),
          size: row.size,
          path: row.path ?? [],
          inventory: row.content,
          ...(row.legacy ? { legacy: row.legacy } : {}),
          ...(row.raw !== null ? { raw: row.raw } : {}),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/admin/inventories',
      operationId: 'exportInventories',
      tags: ['admin'],
      summary: "Every agent's stored inventories with their content, oldest first (export)",
      security,
      middleware: [requireAdmin('read')] as const,
      request: { query: ExportQuery },
      responses: {
        200: json(History, 'Stored inventories with content'),
        ...errorResponses('request_invalid', 'unauthorized', 'forbidden'),
      },
    }),
    async (c) => {
      const { since, ...page } = c.req.valid('query');
      const r = await listInventories(c.get('deps').database.db, page, {
        since: since === undefined ? undefined : new Date(since),
        withContent: true,
      });
      return c.json({ inventories: r.inventories, next_cursor: r.nextCursor }, 200);
    },
  );
}
