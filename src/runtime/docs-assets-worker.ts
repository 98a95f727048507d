// Swagger UI's files for /docs on Workers: bundled by wrangler as Text modules (the [[rules]] in
// wrangler.toml name exactly these two imports), so the Worker serves them itself, no CDN.
import bundle from 'swagger-ui-dist/swagger-ui-bundle.js';
import css from 'swagger-ui-dist/swagger-ui.css';
import type { DocsAssets } from '../server/routes/docs.js';

export const loadDocsAssets = (): Promise<DocsAssets> => Promise.resolve({ bundle, css });
