// The package version, read from the package.json beside dist/ (or src/), so `latchkey --version`
// names what is installed.
import { createRequire } from 'node:module';

export const VERSION = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
