// The completeness checks of an app's /openapi.json, shared by the server's (test/server/openapi.test.ts)
// and the relay's (test/relay/relay-openapi.test.ts): a valid OpenAPI 3.1 document (an independent
// validator, @seriousme/openapi-schema-validator), every registered route in it and nothing else,
// unique operationIds, the shared Error schema on every error status, and every status the real
// routes answer to a set of probes listed for that operation.
import { Validator } from '@seriousme/openapi-schema-validator';
import { expect } from 'vitest';

type Responses = Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
type Operation = { operationId?: string; responses: Responses };
export type OpenApiDoc = { openapi?: string; paths: Record<string, Record<string, Operation>> };
export type Route = { method: string; path: string };

/** hono's `/v1/x/:id` as OpenAPI writes it, `/v1/x/{id}`. */
export const openapiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/** Every method + path an app registers (middleware is registered as ALL, and is not a route), but those `skip` names. */
export function registeredRoutes(routes: readonly Route[], skip: (path: string) => boolean = () => false): Route[] {
  const seen = new Map<string, Route>();
  for (const r of routes) {
    if (r.method === 'ALL' || skip(r.path)) continue;
    seen.set(`${r.method} ${r.path}`, { method: r.method.toLowerCase(), path: r.path });
  }
  return [...seen.values()];
}

const operations = (doc: OpenApiDoc) =>
  Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ method, path, op })));

export async function expectValidOpenApi31(doc: OpenApiDoc): Promise<void> {
  const result = await new Validator().validate(doc as unknown as Record<string, unknown>);
  expect(result.errors ?? [], JSON.stringify(result.errors)).toEqual([]);
  expect(result.valid).toBe(true);
  expect(doc.openapi).toMatch(/^3\.1\./);
}

/** Every registered route is documented (method and path), and no operation is documented that is not registered. */
export function expectRoutesDocumented(doc: OpenApiDoc, routes: Route[]): void {
  const missing = routes.filter((r) => !doc.paths[openapiPath(r.path)]?.[r.method]).map((r) => `${r.method} ${r.path}`);
  expect(missing).toEqual([]);
  const known = new Set(routes.map((r) => `${r.method} ${openapiPath(r.path)}`));
  const phantom = operations(doc)
    .map(({ method, path }) => `${method} ${path}`)
    .filter((k) => !known.has(k));
  expect(phantom).toEqual([]);
}

/** Unique operationIds; 500 and 503 everywhere, 413 on every POST; the shared Error schema on every error status. */
export function expectOperationsComplete(doc: OpenApiDoc): void {
  const ids = operations(doc).map(({ op }) => op.operationId);
  expect(ids.filter((id) => typeof id !== 'string' || !/^[a-z][A-Za-z0-9]+$/.test(id))).toEqual([]);
  expect(new Set(ids).size).toBe(ids.length);
  for (const { method, path, op } of operations(doc)) {
    const where = `${method} ${path}`;
    // Any route can meet a database outage or a bug.
    expect(Object.keys(op.responses), where).toEqual(expect.arrayContaining(['500', '503']));
    // Every request body is size-limited before it is parsed.
    if (method === 'post') expect(Object.keys(op.responses), where).toContain('413');
    for (const [status, response] of Object.entries(op.responses)) {
      if (Number(status) < 400) continue;
      expect(response.content?.['application/json']?.schema?.$ref, `${where} ${status}`).toBe('#/components/schemas/Error');
    }
  }
}

/**
 * Sends each route (path params as an unknown id) the requests `probes` gives for its method, and
 * expects every status answered to be one the document lists for that operation.
 */
export async function expectProbedStatusesDocumented(
  doc: OpenApiDoc,
  routes: Route[],
  baseUrl: string,
  probes: (method: string) => RequestInit[],
): Promise<void> {
  const undocumented: string[] = [];
  for (const { method, path } of routes) {
    const url = `${baseUrl}${path.replace(/:[A-Za-z0-9_]+/g, 'no-such-thing')}`;
    const documented = Object.keys(doc.paths[openapiPath(path)]?.[method]?.responses ?? {});
    for (const probe of probes(method)) {
      const res = await fetch(url, { method: method.toUpperCase(), ...probe });
      await res.arrayBuffer();
      if (!documented.includes(String(res.status))) undocumented.push(`${method} ${path} → ${res.status}`);
    }
  }
  expect(undocumented).toEqual([]);
}
