// GLPI native inventory validation, built from the official schema (glpi-project/inventory_format
// @ d03ff5f0855c8b57ae9fc66f5f76fea6efe1873d, MIT; vendored beside this file with its licence).
// `deviceid` and `content` (with `content.versionclient`) are required; unknown fields inside
// `content` are kept; top-level unknown fields are refused, as the schema says.
import schema from './inventory.schema.json' with { type: 'json' };
import { jsonSchemaToZod, type JsonSchema } from './json-schema-to-zod.js';

export const inventorySchema = jsonSchemaToZod(schema as unknown as JsonSchema);

export interface InventoryIssue {
  path: string;
  message: string;
}

/** Validates without echoing values: failing paths and zod's messages only. */
export function validateInventory(value: unknown): { ok: true } | { ok: false; issues: InventoryIssue[] } {
  const r = inventorySchema.safeParse(value);
  if (r.success) return { ok: true };
  return {
    ok: false,
    issues: r.error.issues.slice(0, 10).map((i) => ({ path: i.path.map(String).join('.') || '(root)', message: i.code })),
  };
}
