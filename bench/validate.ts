// GLPI inventory validation per message: the ajv standalone validator the server runs against the
// hand-written JSON-Schema-to-zod converter it replaced (kept as a test oracle), on the corpus
// inventories of about 4 KiB and on the largest one.
import { readdirSync, readFileSync } from 'node:fs';
import schema from '../src/server/glpi/inventory.schema.json' with { type: 'json' };
import { validateInventory } from '../src/server/glpi/inventory-schema.js';
import { jsonSchemaToZod, type JsonSchema } from '../test/helpers/json-schema-to-zod.js';

function perSecond(fn: () => unknown, ms = 400): number {
  for (let i = 0; i < 50; i++) fn();
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    fn();
    n++;
  }
  return Math.round((n / (performance.now() - start)) * 1000);
}

export function benchValidate(): Record<string, unknown> {
  const zod = jsonSchemaToZod(schema as unknown as JsonSchema);
  const dir = new URL('../test/fixtures/glpi/format/', import.meta.url);
  const docs = readdirSync(dir).map((f) => readFileSync(new URL(f, dir), 'utf8'));
  const bySize = [...docs].sort((a, b) => a.length - b.length);
  const small = bySize.find((d) => d.length >= 3000) ?? bySize[0]!;
  const large = bySize[bySize.length - 1]!;
  const out: Record<string, unknown> = {};
  for (const [name, text] of [
    ['small', small],
    ['large', large],
  ] as const) {
    const value: unknown = JSON.parse(text);
    const ajvPerSecond = perSecond(() => validateInventory(value));
    const zodPerSecond = perSecond(() => zod.safeParse(value));
    out[name] = {
      bytes: text.length,
      ajvPerSecond,
      zodPerSecond,
      ajvMicroseconds: Number((1e6 / ajvPerSecond).toFixed(1)),
      zodMicroseconds: Number((1e6 / zodPerSecond).toFixed(1)),
      speedup: Number((ajvPerSecond / zodPerSecond).toFixed(1)),
    };
  }
  return out;
}
