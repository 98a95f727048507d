// The former inventory validator, kept as an independent oracle for the ajv-generated one (test and
// bench only): the subset of JSON Schema draft-07 the official GLPI inventory schema uses, turned into zod:
// type (string, integer, number, boolean, object, array), properties, required, items, pattern,
// minimum/maximum, enum, local $ref pointers, anyOf/oneOf, additionalProperties: false.
// Objects without additionalProperties: false keep unknown fields (as the schema allows).
// `format` is an annotation in draft-07 and is not asserted (as validators do by default).
import { z } from 'zod';

export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  enum?: unknown[];
  $ref?: string;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  definitions?: Record<string, JsonSchema>;
}

export function jsonSchemaToZod(schema: JsonSchema, root: JsonSchema = schema): z.ZodType {
  if (schema.$ref) {
    return jsonSchemaToZod(resolvePointer(root, schema.$ref), root);
  }
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) {
    const parts = alternatives.map((s) => jsonSchemaToZod(s, root));
    return parts.length === 1 ? parts[0]! : z.union(parts as [z.ZodType, z.ZodType, ...z.ZodType[]]);
  }
  if (schema.enum) return z.unknown().refine((v) => schema.enum!.some((e) => e === v), 'not one of the allowed values');
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  if (types.length === 0) return z.unknown();
  const parts = types.map((t) => single(t, schema, root));
  return parts.length === 1 ? parts[0]! : z.union(parts as [z.ZodType, z.ZodType, ...z.ZodType[]]);
}

/** Local JSON pointers only (`#/definitions/x`, `#/properties/a/properties/b`). */
function resolvePointer(root: JsonSchema, ref: string): JsonSchema {
  if (!ref.startsWith('#/')) throw new Error(`unsupported $ref ${ref}`);
  let node: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    node = node && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
  }
  if (!node || typeof node !== 'object') throw new Error(`unresolvable $ref ${ref}`);
  return node as JsonSchema;
}

function single(type: string, s: JsonSchema, root: JsonSchema): z.ZodType {
  switch (type) {
    case 'string': {
      const str = z.string();
      return s.pattern ? str.regex(new RegExp(s.pattern, 'u')) : str;
    }
    case 'integer':
    case 'number': {
      // JSON Schema's integer is any number without a fractional part; zod's int() also refuses
      // integers beyond 2^53, which the schema (and ajv) accept.
      let n = z.number();
      if (type === 'integer') n = n.refine((v) => Number.isInteger(v), 'not an integer') as unknown as z.ZodNumber;
      if (s.minimum !== undefined) n = n.min(s.minimum);
      if (s.maximum !== undefined) n = n.max(s.maximum);
      return n;
    }
    case 'boolean':
      return z.boolean();
    case 'null':
      return z.null();
    case 'array':
      return z.array(s.items ? jsonSchemaToZod(s.items, root) : z.unknown());
    case 'object': {
      const required = new Set(s.required ?? []);
      const shape: Record<string, z.ZodType> = {};
      for (const [key, sub] of Object.entries(s.properties ?? {})) {
        const t = jsonSchemaToZod(sub, root);
        shape[key] = required.has(key) ? t : t.optional();
      }
      for (const key of required) if (!(key in shape)) shape[key] = z.unknown();
      return s.additionalProperties === false ? z.strictObject(shape) : z.looseObject(shape);
    }
    default:
      throw new Error(`unsupported JSON Schema type ${type}`);
  }
}
