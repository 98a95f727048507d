// `npm ci` / `npm install` in a checkout builds dist/ (npm runs `prepare` there), except when dev
// dependencies are left out (`npm ci --omit=dev`): then there is no TypeScript to build with, and the
// install must still succeed (a production install of a checkout whose dist/ was built elsewhere).
import { execSync } from 'node:child_process';
import { createRequire } from 'node:module';

try {
  createRequire(import.meta.url).resolve('typescript');
} catch {
  console.error('prepare: dev dependencies are not installed; dist/ is not rebuilt (run `npm ci` to build it)');
  process.exit(0);
}
execSync('npm run build', { stdio: 'inherit' });
