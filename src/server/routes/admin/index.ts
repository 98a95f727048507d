// The admin API under /v1/admin/, every route behind an admin bearer credential with a scope.
// Routes are declared with zod schemas, from which /openapi.json is generated.
import { createRoute, z } from '@hono/zod-openapi';
import type { Db } from '../../../db/database.js';
import type { App, AppDeps } from '../../types.js';
import { requireAdmin } from '../../middleware/admin-auth.js';
import { createAdminKey, listAdminKeys, revokeAdminKey } from '../../services/admin-keys.js';
import {
  adoptLegacyAgent,
  deleteAgent,
  getAgent,
  listAgents,
  listKeys,
  requestRenewal,
  revokeAgent,
  revokeKey,
} from '../../services/agents.js';
import { NAME_PATTERN } from '../../services/name-rules.js';
import { MAX_CREDENTIAL_TTL_SECONDS, MIN_CREDENTIAL_TTL_SECONDS } from '../../lifetimes.js';
import { DEFAULT_TOKEN_TTL_SECONDS, MAX_TOKEN_TTL_SECONDS, MAX_TOKEN_USES, MIN_TOKEN_TTL_SECONDS } from '../../token-limits.js';
import { verifyAuditChain } from '../../services/audit.js';
import { currentAuditHead, signAuditHead, verifyAuditHead, type AuditHead } from '../../services/audit-head.js';
import { b64u } from '../../../protocol/bytes.js';
import { createToken, listTokens, revokeToken } from '../../services/tokens.js';
import { listAudit } from '../../services/audit-read.js';
import type { ErrorCode } from '../../errors.js';
import { AgentRef, errorResponses, NextCursor, PageQuery, RelayHopSchema } from '../schemas.js';
import { isStorableText } from '../../services/storable.js';
import { isValidLabels } from '../../services/labels.js';

const security = [{ adminBearer: [] }];
/** What every admin route can answer: a bad request, no or a wrong credential, a missing scope. */
const ADMIN_ERRORS: ErrorCode[] = ['request_invalid', 'unauthorized', 'forbidden'];
const errors = errorResponses(...ADMIN_ERRORS);
const postErrors = errorResponses(...ADMIN_ERRORS, 'payload_too_large');
const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });

const storable = (max: number) => z.string().max(max).refine(isStorableText, 'must not contain a NUL character');
/** The one label rule (services/labels.ts); the record shape is for the OpenAPI document. */
const Labels = z
  .record(z.string(), z.string())
  .refine(isValidLabels, 'at most 32 labels; keys [A-Za-z0-9._-]{1,64}; values at most 256 characters, no NUL');
export const CreateToken = z
  .object({
    ttlSeconds: z.number().int().min(MIN_TOKEN_TTL_SECONDS).max(MAX_TOKEN_TTL_SECONDS).default(DEFAULT_TOKEN_TTL_SECONDS),
    uses: z.number().int().min(1).max(MAX_TOKEN_USES).default(1),
    role: z.enum(['agent', 'relay']).default('agent'),
    cidr: z.string().max(64).optional(),
    namePattern: z.string().max(128).optional(),
    labels: Labels.optional(),
    /** Lifetime of the keys and credentials of agents enrolled with it (and of their renewals); default: the server's. */
    credentialTtlSeconds: z.number().int().min(MIN_CREDENTIAL_TTL_SECONDS).max(MAX_CREDENTIAL_TTL_SECONDS).optional(),
  })
  .strict()
  .openapi('CreateToken');
const TokenUse = z.object({ usedAt: z.string(), sourceAddr: z.string().nullable(), agentId: z.string() });
const Token = z
  .object({
    id: z.string(),
    role: z.enum(['agent', 'relay']),
    usesTotal: z.number(),
    usesLeft: z.number(),
    createdAt: z.string(),
    createdBy: z.string().nullable(),
    expiresAt: z.string(),
    revokedAt: z.string().nullable(),
    status: z.enum(['active', 'expired', 'used', 'revoked']),
    cidr: z.string().nullable(),
    namePattern: z.string().nullable(),
    labels: z.record(z.string(), z.string()),
    credentialTtlSeconds: z.number().nullable(),
    uses: z.array(TokenUse),
  })
  .openapi('Token');
const Agent = z
  .object({
    id: z.string(),
    name: z.string(),
    role: z.enum(['agent', 'relay']),
    labels: z.record(z.string(), z.string()),
    status: z.enum(['active', 'revoked']),
    createdAt: z.string(),
    lastSeenAt: z.string().nullable(),
    lastRelay: z
      .object({ id: z.string(), name: z.string().nullable() })
      .nullable()
      .openapi({ description: 'The relay (innermost layer) this agent last came through; null if never relayed' }),
    lastPath: z
      .array(RelayHopSchema)
      .nullable()
      .openapi({ description: "The relay path of the agent's last stored message; [] if direct" }),
    expiresAt: z.string().nullable(),
    keys: z.array(z.object({ sigKid: z.string(), kxKid: z.string(), status: z.string(), expiresAt: z.string() })),
    kind: z.enum(['enrolled', 'legacy']).openapi({ description: "legacy: heard through a relay's legacy listener (spec §11.2)" }),
    legacy: z
      .object({ id: z.string().nullable(), protocol: z.string().nullable(), replacedBy: z.string().nullable() })
      .nullable()
      .openapi({ description: 'a legacy agent: its GLPI-Agent-ID or deviceid, its protocol, the enrolled agent that adopted it' }),
  })
  .openapi('Agent');
const AgentKey = z
  .object({
    sigKid: z.string(),
    kxKid: z.string(),
    agentId: z.string(),
    agentName: z.string(),
    status: z.enum(['active', 'superseded', 'expired', 'revoked']),
    createdAt: z.string(),
    expiresAt: z.string(),
    supersededAt: z.string().nullable(),
    supersededUntil: z.string().nullable(),
    replacedBy: z.string().nullable(),
    revokedAt: z.string().nullable(),
    revocationReason: z.string().nullable(),
  })
  .openapi('AgentKey');
const Reason = z.object({ reason: storable(500).optional() }).strict();
const ID = /^[A-Za-z0-9_-]{1,64}$/;
const IdParam = z.object({ id: z.string().min(1).max(64).regex(ID) });
/** An agent by its id or its name (ids win), resolved by the server. */
const AgentParam = z.object({ id: AgentRef.openapi({ description: 'agent id or name' }) });
const AuditEntry = z
  .object({
    seq: z.number(),
    at: z.string(),
    actor: z.string(),
    action: z.string(),
    outcome: z.enum(['success', 'failure']),
    code: z.string().nullable(),
    sourceAddr: z.string().nullable(),
    tokenId: z.string().nullable(),
    agentId: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
    hash: z.string(),
  })
  .openapi('AuditEntry');
/** `k=v`: a label the listed agents carry with that value. */
const LabelFilter = z
  .string()
  .max(322)
  .regex(/^[A-Za-z0-9._-]{1,64}=/, 'k=v')
  .refine(isStorableText, 'must not contain a NUL character');
const AgentListQuery = PageQuery.extend({
  status: z.enum(['active', 'revoked']).optional().openapi({ description: 'as displayed: revoked when the agent or every key it has is' }),
  role: z.enum(['agent', 'relay']).optional(),
  kind: z.enum(['enrolled', 'legacy']).optional().openapi({ description: "legacy: agents heard through a relay's legacy listener" }),
  label: z
    .union([LabelFilter, z.array(LabelFilter).max(32)])
    .optional()
    .openapi({ description: 'k=v, repeatable: agents carrying every one of these labels' }),
  name: z.string().regex(NAME_PATTERN).optional().openapi({ description: 'name glob: `*` any run, `?` one character' }),
});
const AgentDetail = Agent.omit({ keys: true })
  .extend({
    tokenId: z.string().nullable(),
    revokedAt: z.string().nullable(),
    renewRequestedAt: z.string().nullable(),
    sendIntervalSeconds: z.number().nullable(),
    credentialTtlSeconds: z.number().nullable(),
    keys: z.array(AgentKey),
  })
  .openapi('AgentDetail');
const SignedHead = z
  .object({ v: z.number(), typ: z.string(), kid: z.string(), body: z.string(), sig: z.string() })
  .openapi('SignedAuditHead', { description: 'signed object (spec §9) of type audit-head with body {"seq","hash","at"}' });
const ChainStatus = z.object({
  ok: z.boolean(),
  entries: z.number(),
  brokenAt: z.number().optional(),
  problem: z.enum(['broken', 'truncated', 'rewritten']).optional(),
  headHash: z.string().optional(),
  head: SignedHead.optional(),
});
const Scope = z.enum(['tokens:write', 'agents:write', 'read']);

export function registerAdminRoutes(app: App): void {
  app.openAPIRegistry.registerComponent('securitySchemes', 'adminBearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'lka.… admin credential',
  });

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/admin/tokens',
      operationId: 'createToken',
      tags: ['admin'],
      summary: 'Create an enrollment token (the secret is shown once)',
      security,
      middleware: [requireAdmin('tokens:write')] as const,
      request: { body: { required: true, content: { 'application/json': { schema: CreateToken } } } },
      responses: { 201: json(z.object({ token: z.string(), id: z.string(), expiresAt: z.string() }), 'Created'), ...postErrors },
    }),
    async (c) => {
      const { database, ctx, identity } = c.get('deps');
      const body = c.req.valid('json');
      return c.json(await createToken(database.db, ctx, identity.fingerprint, c.get('admin').id, body), 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/admin/tokens',
      operationId: 'listTokens',
      tags: ['admin'],
      summary: 'List tokens and their uses (never secrets), a page at a time',
      security,
      middleware: [requireAdmin('read')] as const,
      request: { query: PageQuery },
      responses: { 200: json(z.object({ tokens: z.array(Token), next_cursor: NextCursor }), 'Tokens'), ...errors },
    }),
    async (c) => {
      const { tokens, nextCursor } = await listTokens(c.get('deps').database.db, c.get('deps').ctx.now(), c.req.valid('query'));
      return c.json({ tokens, next_cursor: nextCursor }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/admin/agents',
      operationId: 'listAgents',
      tags: ['admin'],
      summary: 'List agents and relays, a page at a time',
      security,
      middleware: [requireAdmin('read')] as const,
      request: { query: AgentListQuery },
      responses: { 200: json(z.object({ agents: z.array(Agent), next_cursor: NextCursor }), 'Agents'), ...errors },
    }),
    async (c) => {
      const { status, role, kind, label, name, ...page } = c.req.valid('query');
      const labels = Object.fromEntries(
        (label === undefined ? [] : Array.isArray(label) ? label : [label]).map((kv) => [
          kv.slice(0, kv.indexOf('=')),
          kv.slice(kv.indexOf('=') + 1),
        ]),
      );
      const { agents, nextCursor } = await listAgents(c.get('deps').database.db, page, { status, role, kind, labels, name });
      return c.json({ agents, next_cursor: nextCursor }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/admin/agents/{id}',
      operationId: 'getAgent',
      tags: ['admin'],
      summary: 'One agent (by id or name) with every key it has had',
      security,
      middleware: [requireAdmin('read')] as const,
      request: { params: AgentParam },
      responses: { 200: json(AgentDetail, 'Agent'), ...errorResponses(...ADMIN_ERRORS, 'not_found') },
    }),
    async (c) => {
      const { database, ctx } = c.get('deps');
      return c.json(await getAgent(database.db, ctx.now(), c.req.valid('param').id), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/admin/agents/{id}',
      operationId: 'deleteAgent',
      tags: ['admin'],
      summary:
        'Delete a revoked agent (by id or name) with its keys and stored inventories, so its name can be used again; its revocation and audit entries stay',
      security,
      middleware: [requireAdmin('agents:write')] as const,
      request: { params: AgentParam },
      responses: {
        200: json(
          z.object({ id: z.string(), name: z.string(), deleted: z.literal(true), keys: z.number(), inventories: z.number() }),
          'Deleted',
        ),
        ...errorResponses(...ADMIN_ERRORS, 'not_found', 'agent_not_revoked'),
      },
    }),
    async (c) => {
      const { database, ctx } = c.get('deps');
      const r = await deleteAgent(database.db, ctx.now, c.get('admin').id, c.req.valid('param').id);
      return c.json({ ...r, deleted: true as const }, 200);
    },
  );

  registerRevoke(
    app,
    '/v1/admin/tokens/{id}/revoke',
    'revokeToken',
    'Revoke a token',
    'tokens:write',
    'token_unknown',
    revokeToken,
    IdParam,
  );
  registerRevoke(
    app,
    '/v1/admin/agents/{id}/revoke',
    'revokeAgent',
    'Revoke an agent (by id or name) and all its keys',
    'agents:write',
    'not_found',
    revokeAgent,
    AgentParam,
  );
  // Agent keys live under /v1/admin/keys; admin API keys under /v1/admin/admin-keys.
  registerRevoke(
    app,
    '/v1/admin/keys/{id}/revoke',
    'revokeAgentKey',
    'Revoke one agent key (by its signing key id)',
    'agents:write',
    'key_unknown',
    revokeKey,
    IdParam,
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/admin/agents/{id}/renew-now',
      operationId: 'requestAgentRenewal',
      tags: ['admin'],
      summary: 'Ask an agent (by id or name) to renew: its receipts carry renewNow until it does',
      security,
      middleware: [requireAdmin('agents:write')] as const,
      request: { params: AgentParam },
      responses: {
        200: json(z.object({ id: z.string(), renewRequestedAt: z.string() }), 'Requested'),
        ...errorResponses(...ADMIN_ERRORS, 'payload_too_large', 'not_found', 'agent_revoked'),
      },
    }),
    async (c) => {
      const { database, ctx } = c.get('deps');
      return c.json(await requestRenewal(database.db, ctx.now, c.get('admin').id, c.req.valid('param').id), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/admin/agents/{id}/adopt',
      operationId: 'adoptLegacyAgent',
      tags: ['admin'],
      summary:
        'An enrolled agent (by id or name) takes over a legacy agent: its stored inventories, and those relays send under its legacy id later',
      security,
      middleware: [requireAdmin('agents:write')] as const,
      request: {
        params: AgentParam,
        body: {
          required: true,
          content: { 'application/json': { schema: z.object({ legacy: AgentRef.openapi({ description: 'legacy agent id or name' }) }) } },
        },
      },
      responses: {
        200: json(z.object({ legacy: z.string(), agent: z.string(), inventories: z.number() }), 'Adopted'),
        ...errorResponses(...ADMIN_ERRORS, 'payload_too_large', 'not_found', 'request_invalid', 'unsupported_media_type'),
      },
    }),
    async (c) => {
      const { database, ctx } = c.get('deps');
      return c.json(
        await adoptLegacyAgent(database.db, ctx.now, c.get('admin').id, c.req.valid('json').legacy, c.req.valid('param').id),
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/admin/keys',
      operationId: 'listAgentKeys',
      tags: ['admin'],
      summary: 'List agent keys (optionally of one agent, by id or name), a page at a time',
      security,
      middleware: [requireAdmin('read')] as const,
      request: { query: PageQuery.extend({ agent: AgentRef.optional().openapi({ description: 'agent id or name' }) }) },
      responses: {
        200: json(z.object({ keys: z.array(AgentKey), next_cursor: NextCursor }), 'Agent keys'),
        ...errorResponses(...ADMIN_ERRORS, 'not_found'),
      },
    }),
    async (c) => {
      const { database, ctx } = c.get('deps');
      const { agent, ...page } = c.req.valid('query');
      const { keys, nextCursor } = await listKeys(database.db, ctx.now(), page, agent);
      return c.json({ keys, next_cursor: nextCursor }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/admin/audit',
      operationId: 'readAudit',
      tags: ['admin'],
      summary: 'Read the audit log (newest last)',
      security,
      middleware: [requireAdmin('read')] as const,
      request: {
        query: z.object({ after: z.coerce.number().int().min(0).default(0), limit: z.coerce.number().int().min(1).max(1000).default(100) }),
      },
      responses: { 200: json(z.object({ entries: z.array(AuditEntry), next: z.number().nullable() }), 'Entries'), ...errors },
    }),
    async (c) => {
      const { after, limit } = c.req.valid('query');
      return c.json(await listAudit(c.get('deps').database.db, after, limit), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/admin/audit/verify',
      operationId: 'verifyAudit',
      tags: ['admin'],
      summary: 'Recompute the audit hash chain; returns its head signed by the server',
      security,
      middleware: [requireAdmin('read')] as const,
      responses: { 200: json(ChainStatus, 'Chain status'), ...errors },
    }),
    async (c) => c.json(await chainStatus(c.get('deps'), undefined), 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/admin/audit/verify',
      operationId: 'verifyAuditAgainstHead',
      tags: ['admin'],
      summary:
        'Recompute the audit hash chain and check that it still passes through an earlier signed head (detects deleted or rewritten newest entries)',
      security,
      middleware: [requireAdmin('read')] as const,
      request: { body: { required: true, content: { 'application/json': { schema: z.object({ expectHead: SignedHead }).strict() } } } },
      responses: { 200: json(ChainStatus, 'Chain status'), ...postErrors },
    }),
    async (c) => {
      const { ctx, identity, keys } = c.get('deps');
      const head = c.req.valid('json').expectHead;
      // A head kept before a key rotation verifies while its key set is accepted (spec §14).
      const expected = await verifyAuditHead(ctx.crypto, keys.ring.bySigningKid(head.kid) ?? identity, head);
      return c.json(await chainStatus(c.get('deps'), expected), 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/admin/audit/head',
      operationId: 'getAuditHead',
      tags: ['admin'],
      summary: 'The audit chain head (position and hash) signed by the server key: keep it elsewhere',
      security,
      middleware: [requireAdmin('read')] as const,
      responses: { 200: json(z.object({ head: SignedHead, entries: z.number(), hash: z.string() }), 'Signed head'), ...errors },
    }),
    async (c) => {
      const { database, ctx, identity } = c.get('deps');
      const head = await currentAuditHead(database.db);
      return c.json({ head: await signAuditHead(ctx.crypto, identity, head, ctx.now()), entries: head.seq, hash: b64u(head.hash) }, 200);
    },
  );

  // Admin API keys. (GET and POST /v1/admin/keys named them before agent keys had routes; those
  // deprecated aliases are gone: /v1/admin/keys lists agent keys.)
  {
    const path = '/v1/admin/admin-keys';
    app.openapi(
      createRoute({
        method: 'post',
        path,
        operationId: 'createAdminKey',
        tags: ['admin'],
        summary: 'Create an admin API key (needs a full admin credential)',
        security,
        middleware: [requireAdmin('*')] as const,
        request: {
          body: {
            required: true,
            content: {
              'application/json': {
                schema: z.object({ name: z.string().regex(/^[A-Za-z0-9._ -]{1,64}$/), scopes: z.array(Scope).min(1) }).strict(),
              },
            },
          },
        },
        responses: {
          201: json(
            z.object({ id: z.string(), name: z.string(), scopes: z.array(z.string()), credential: z.string() }),
            'Created (the credential is shown once)',
          ),
          ...postErrors,
        },
      }),
      async (c) => {
        const { name, scopes } = c.req.valid('json');
        return c.json(
          await createAdminKey(c.get('deps').database.db, c.get('deps').ctx, c.get('admin').id, name, [...new Set(scopes)]),
          201,
        );
      },
    );

    app.openapi(
      createRoute({
        method: 'get',
        path,
        operationId: 'listAdminKeys',
        tags: ['admin'],
        summary: 'List admin API keys',
        security,
        middleware: [requireAdmin('*')] as const,
        responses: {
          200: json(
            z.object({
              keys: z.array(
                z.object({
                  id: z.string(),
                  name: z.string(),
                  scopes: z.array(z.string()),
                  createdAt: z.string(),
                  createdBy: z.string().nullable(),
                  revokedAt: z.string().nullable(),
                }),
              ),
            }),
            'Keys',
          ),
          ...errors,
        },
      }),
      async (c) => c.json({ keys: await listAdminKeys(c.get('deps').database.db) }, 200),
    );
  }

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/admin/admin-keys/{id}/revoke',
      operationId: 'revokeAdminKey',
      tags: ['admin'],
      summary: 'Revoke an admin API key',
      security,
      middleware: [requireAdmin('*')] as const,
      request: { params: IdParam },
      responses: {
        200: json(z.object({ id: z.string(), revoked: z.literal(true) }), 'Revoked'),
        ...errorResponses(...ADMIN_ERRORS, 'payload_too_large', 'not_found'),
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      await revokeAdminKey(c.get('deps').database.db, c.get('deps').ctx.now, c.get('admin').id, id);
      c.get('deps').telemetry.count('revocations_total', { kind: 'admin-keys' });
      return c.json({ id, revoked: true as const }, 200);
    },
  );
}

/** POST …/{id}/revoke with an optional {"reason"}: the same contract for tokens, agents and keys. */
function registerRevoke(
  app: App,
  path: string,
  operationId: string,
  summary: string,
  scope: 'tokens:write' | 'agents:write',
  unknown: ErrorCode,
  revoke: (db: Db, clock: () => number, actor: string, id: string, reason?: string) => Promise<void>,
  params: typeof IdParam | typeof AgentParam,
): void {
  app.openapi(
    createRoute({
      method: 'post',
      path,
      operationId,
      tags: ['admin'],
      summary,
      security,
      middleware: [requireAdmin(scope)] as const,
      request: { params, body: { required: false, content: { 'application/json': { schema: Reason } } } },
      responses: {
        200: json(z.object({ id: z.string(), revoked: z.literal(true) }), 'Revoked'),
        ...errorResponses(...ADMIN_ERRORS, 'payload_too_large', unknown),
      },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const body = (await c.req.json().catch(() => ({}))) as { reason?: unknown };
      await revoke(
        c.get('deps').database.db,
        c.get('deps').ctx.now,
        c.get('admin').id,
        id,
        typeof body.reason === 'string' ? body.reason.slice(0, 500) : undefined,
      );
      // What was revoked: tokens, agents or keys (the path's own segment; a bounded label).
      c.get('deps').telemetry.count('revocations_total', { kind: path.split('/')[3] ?? 'other' });
      return c.json({ id, revoked: true as const }, 200);
    },
  );
}

/** The chain status as the API shows it: the verified head signed, never raw bytes. */
async function chainStatus(deps: AppDeps, expected: AuditHead | undefined) {
  const { head, ...status } = await verifyAuditChain(deps.database.db, expected);
  return head ? { ...status, head: await signAuditHead(deps.ctx.crypto, deps.identity, head, deps.ctx.now()) } : status;
}
