import type { App } from '../../app.js';

export function registerAdminRoutes(_app: App): void {}
