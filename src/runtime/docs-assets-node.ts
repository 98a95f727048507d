// Swagger UI's files for /docs on Node: read once from the installed swagger-ui-dist package.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { DocsAssets } from '../server/routes/docs.js';

export async function loadDocsAssets(): Promise<DocsAssets> {
  const require = createRequire(import.meta.url);
  const [bundle, css] = await Promise.all([
    readFile(require.resolve('swagger-ui-dist/swagger-ui-bundle.js'), 'utf8'),
    readFile(require.resolve('swagger-ui-dist/swagger-ui.css'), 'utf8'),
  ]);
  return { bundle, css };
}
