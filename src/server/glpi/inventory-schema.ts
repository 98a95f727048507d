// GLPI native inventory validation against the official schema (glpi-project/inventory_format
// @ d03ff5f0855c8b57ae9fc66f5f76fea6efe1873d, MIT; vendored beside this file with its licence),
// compiled by ajv into standalone code at build time (scripts/generate-inventory-validator.ts).
// `deviceid` and `content` (with `content.versionclient`) are required; unknown fields inside
// `content` are kept; top-level unknown fields are refused, as the schema says.
import { validate } from './inventory-validator.generated.js';

export interface InventoryIssue {
  path: string;
  message: string;
}

interface AjvError {
  instancePath: string;
  keyword: string;
}

/** Validates without echoing values: the failing path and the schema keyword only. */
export function validateInventory(value: unknown): { ok: true } | { ok: false; issues: InventoryIssue[] } {
  if ((validate as (v: unknown) => boolean)(value)) return { ok: true };
  const errors = ((validate as { errors?: AjvError[] | null }).errors ?? []).slice(0, 10);
  return {
    ok: false,
    issues: errors.map((e) => ({ path: e.instancePath.slice(1).replaceAll('/', '.') || '(root)', message: e.keyword })),
  };
}
