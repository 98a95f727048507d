// Strict JSON decoding for wire objects: bytes must be UTF-8 JSON objects; every failure is one
// ProtocolError code, never a SyntaxError or TypeError escaping.
import { fromUtf8 } from './bytes.js';
import { ProtocolError, type ProtocolErrorCode } from './errors.js';

export type JsonObject = Record<string, unknown>;

export function parseJsonObject(input: Uint8Array | string, code: ProtocolErrorCode): JsonObject {
  const text = typeof input === 'string' ? input : fromUtf8(input, code);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolError(code, 'not JSON');
  }
  return asObject(value, code);
}

export function asObject(value: unknown, code: ProtocolErrorCode): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ProtocolError(code, 'not a JSON object');
  return value as JsonObject;
}

/** Exactly these keys (optional ones may be absent): unknown fields are refused, not ignored. */
export function onlyKeys(obj: JsonObject, required: readonly string[], optional: readonly string[], code: ProtocolErrorCode): void {
  for (const k of required) if (!(k in obj)) throw new ProtocolError(code, `missing field ${k}`);
  for (const k of Object.keys(obj)) if (!required.includes(k) && !optional.includes(k)) throw new ProtocolError(code, 'unexpected field');
}

export function str(obj: JsonObject, key: string, code: ProtocolErrorCode, max = 4096): string {
  const v = obj[key];
  if (typeof v !== 'string' || v.length > max) throw new ProtocolError(code, `field ${key} must be a string`);
  return v;
}

/** A non-negative safe integer. */
export function uint(obj: JsonObject, key: string, code: ProtocolErrorCode): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new ProtocolError(code, `field ${key} must be a non-negative integer`);
  return v;
}
