import type { App } from '../../app.js';

export function registerInventoryRoutes(_app: App): void {}
