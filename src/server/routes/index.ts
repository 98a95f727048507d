// Every feature's routes, mounted in one place. Each feature file exports a `register…(app)`.
import type { App } from '../types.js';
import { registerAdminRoutes } from './admin/index.js';
import { registerEnrollRoutes } from './enroll.js';
import { registerMessageRoutes } from './messages.js';
import { registerInventoryRoutes } from './admin/inventories.js';
import { registerImportRoute } from './admin/import.js';
import { registerForwardRoutes } from './admin/forward.js';
import { registerDocsRoutes } from './docs.js';
import { registerConsoleRoutes } from '../console/index.js';
import { registerReceiptRoutes } from './receipts.js';
import { registerRenewRoutes } from './renew.js';
import { registerRevocationRoutes } from './revocations.js';

export function registerRoutes(app: App): void {
  registerAdminRoutes(app);
  registerImportRoute(app);
  registerEnrollRoutes(app);
  registerMessageRoutes(app);
  registerRenewRoutes(app);
  registerReceiptRoutes(app);
  registerRevocationRoutes(app);
  registerInventoryRoutes(app);
  registerForwardRoutes(app);
  registerDocsRoutes(app);
  registerConsoleRoutes(app);
}
