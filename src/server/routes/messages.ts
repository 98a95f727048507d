import type { App } from '../app.js';

export function registerMessageRoutes(_app: App): void {}
