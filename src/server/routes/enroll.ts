import type { App } from '../app.js';

export function registerEnrollRoutes(_app: App): void {}
