// Agent labels: the one rule, for tokens (admin API), imports and key requests (spec §20).
// At most 32; keys letters, digits, '.', '_', '-' (1 to 64); values strings of at most 256 characters
// without a NUL (storable.ts).
import { isStorableText } from './storable.js';

export const MAX_LABELS = 32;
const LABEL_KEY = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_LABEL_VALUE = 256;

export function isValidLabels(value: unknown): value is Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_LABELS) return false;
  return entries.every(([k, v]) => LABEL_KEY.test(k) && typeof v === 'string' && v.length <= MAX_LABEL_VALUE && isStorableText(v));
}
