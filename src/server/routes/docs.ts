// GET /openapi.json, generated from the routes' zod schemas; GET /docs, a human view of it with
// Swagger UI. An admin may paste a bearer credential into that page, so nothing on it comes from
// elsewhere: Swagger UI's files are served from this package (swagger-ui-dist, exact version; the
// runtime supplies them, see runtime/docs-assets-*.ts) and every /docs response carries a CSP that
// allows only same-origin scripts, styles and requests, and no inline script.
import { createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { App, DocsAssets } from '../types.js';
import { errorResponse, LatchkeyError } from '../errors.js';
import { errorResponses } from './schemas.js';

export type { DocsAssets };

export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  // Swagger UI's stylesheet draws its icons as data: SVG.
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Latchkey API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

const INIT = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui' });\n`;

const file = (path: string, operationId: string, summary: string, type: string) =>
  createRoute({
    method: 'get',
    path,
    operationId,
    tags: ['documentation'],
    summary,
    responses: {
      200: { description: summary, content: { [type]: { schema: z.string() } } },
      ...errorResponses('not_found'),
    },
  });

/** GET /openapi.json, on the server and on the relay (each serves its own document there). */
export const openApiRoute = createRoute({
  method: 'get',
  path: '/openapi.json',
  operationId: 'getOpenApi',
  tags: ['documentation'],
  summary: 'This document (OpenAPI 3.1)',
  responses: {
    200: { description: 'OpenAPI document', content: { 'application/json': { schema: z.object({}).passthrough() } } },
    ...errorResponses(),
  },
});

const docsPaths = [
  openApiRoute,
  file('/docs', 'getDocsPage', 'Swagger UI page for this document', 'text/html'),
  file('/docs/init.js', 'getDocsInit', "Swagger UI's start-up script", 'text/javascript'),
  file('/docs/swagger-ui-bundle.js', 'getDocsBundle', 'Swagger UI (swagger-ui-dist, from this package)', 'text/javascript'),
  file('/docs/swagger-ui.css', 'getDocsStyle', "Swagger UI's stylesheet", 'text/css'),
];

export function registerDocsRoutes(app: App): void {
  for (const path of docsPaths) app.openAPIRegistry.registerPath(path);
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'Latchkey',
      version: '0.1.0',
      description: 'Token enrollment and sealed messaging for inventory agents. Protocol: spec/PROTOCOL.md.',
    },
  });
  let loaded: Promise<DocsAssets> | undefined;
  const asset = (pick: (a: DocsAssets) => string, type: string) => async (c: Context) => {
    const load = c.get('deps').docsAssets;
    if (!load) return errorResponse(c, new LatchkeyError('not_found', 'no such route'));
    const assets = await (loaded ??= load());
    return send(c, pick(assets), type, 'public, max-age=86400');
  };
  app.get('/docs', async (c) =>
    c.get('deps').docsAssets
      ? send(c, PAGE, 'text/html; charset=utf-8', 'no-cache')
      : errorResponse(c, new LatchkeyError('not_found', 'no such route')),
  );
  app.get(
    '/docs/init.js',
    asset(() => INIT, 'text/javascript; charset=utf-8'),
  );
  app.get(
    '/docs/swagger-ui-bundle.js',
    asset((a) => a.bundle, 'text/javascript; charset=utf-8'),
  );
  app.get(
    '/docs/swagger-ui.css',
    asset((a) => a.css, 'text/css; charset=utf-8'),
  );
}

function send(c: Context, body: string, type: string, cache: string): Response {
  return c.body(body, 200, {
    'Content-Type': type,
    'Content-Security-Policy': DOCS_CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': cache,
  });
}
