// Writes spec/PROTOCOL.md §15's error table from src/protocol/errors.ts.
//   npx tsx spec/generate-errors.ts          rewrite the table between its markers
//   npx tsx spec/generate-errors.ts --check  exit 1 when the table is not current
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { withErrorTable } from './error-table.js';

const file = fileURLToPath(new URL('./PROTOCOL.md', import.meta.url));
const current = await readFile(file, 'utf8');
const fresh = withErrorTable(current);
if (process.argv.includes('--check')) {
  if (fresh !== current) {
    console.error('spec/PROTOCOL.md: the error table differs from src/protocol/errors.ts; run npm run errors');
    process.exit(1);
  }
} else if (fresh !== current) {
  await writeFile(file, fresh);
  console.log('spec/PROTOCOL.md: error table rewritten');
}
