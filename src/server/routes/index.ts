// Every feature's routes, mounted in one place. Each feature file exports a `register…(app)`.
import type { App } from '../types.js';
import { registerAdminRoutes } from './admin/index.js';
import { registerEnrollRoutes } from './enroll.js';
import { registerMessageRoutes } from './messages.js';
import { registerInventoryRoutes } from './admin/inventories.js';
import { registerForwardRoutes } from './admin/forward.js';
import { registerDocsRoutes } from './docs.js';
import { registerRenewRoutes } from './renew.js';
import { registerRevocationRoutes } from './revocations.js';

export function registerRoutes(app: App): void {
  registerAdminRoutes(app);
  registerEnrollRoutes(app);
  registerMessageRoutes(app);
  registerRenewRoutes(app);
  registerRevocationRoutes(app);
  registerInventoryRoutes(app);
  registerForwardRoutes(app);
  registerDocsRoutes(app);
}
