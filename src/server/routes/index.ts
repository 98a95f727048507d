// Every feature's routes, mounted in one place. Each feature file exports a `register…(app)`.
import type { App, AppDeps } from '../app.js';
import { DEFAULT_INGEST_POLICY } from '../services/ingest.js';
import { registerAdminRoutes } from './admin/index.js';
import { registerEnrollRoutes } from './enroll.js';
import { registerMessageRoutes } from './messages.js';
import { registerInventoryRoutes } from './admin/inventories.js';
import { registerDocsRoutes } from './docs.js';

export function registerRoutes(app: App, deps: AppDeps): void {
  registerAdminRoutes(app);
  registerEnrollRoutes(app, deps.enrollmentPolicy);
  registerMessageRoutes(app, { ...DEFAULT_INGEST_POLICY, ...deps.ingestPolicy });
  registerInventoryRoutes(app);
  registerDocsRoutes(app);
}
