// GET /openapi.json, generated from the routes' zod schemas; GET /docs, a human view of it.
import { swaggerUI } from '@hono/swagger-ui';
import type { App } from '../types.js';

export function registerDocsRoutes(app: App): void {
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'Latchkey',
      version: '0.1.0',
      description: 'Token enrollment and sealed messaging for inventory agents. Protocol: spec/PROTOCOL.md.',
    },
  });
  app.get('/docs', swaggerUI({ url: '/openapi.json', title: 'Latchkey API' }));
}
