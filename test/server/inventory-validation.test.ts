// The GLPI inventory validator (ajv standalone code generated from the official schema) against the
// former hand-written JSON-Schema-to-zod converter, kept as an independent oracle: the whole corpus
// is accepted by both, the documented refusals hold, and on thousands of mutated corpus inventories
// both reach the same verdict.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import schema from '../../src/server/glpi/inventory.schema.json' with { type: 'json' };
import { validateInventory } from '../../src/server/glpi/inventory-schema.js';
import { jsonSchemaToZod, type JsonSchema } from '../helpers/json-schema-to-zod.js';

const oracle = jsonSchemaToZod(schema as unknown as JsonSchema);
const oracleAccepts = (v: unknown) => oracle.safeParse(v).success;
const accepts = (v: unknown) => validateInventory(v).ok;

const corpus = ['core', 'format'].flatMap((dir) => {
  const base = new URL(`../fixtures/glpi/${dir}/`, import.meta.url);
  return readdirSync(base)
    .filter((f) => f.endsWith('.json'))
    .map((f) => ({ name: `${dir}/${f}`, value: JSON.parse(readFileSync(new URL(f, base), 'utf8')) as Record<string, unknown> }));
});

describe('GLPI inventory validation', () => {
  it('accepts every inventory of the corpus, as the oracle does', () => {
    expect(corpus.length).toBe(24);
    for (const { name, value } of corpus) {
      expect(accepts(value), name).toBe(true);
      expect(oracleAccepts(value), name).toBe(true);
    }
  });

  it('refuses unknown top-level fields and keeps unknown fields inside content', () => {
    const base = corpus[0]!.value;
    const topLevel = { ...base, surprise: 1 };
    expect(accepts(topLevel)).toBe(false);
    expect(oracleAccepts(topLevel)).toBe(false);
    expect(validateInventory(topLevel)).toEqual({ ok: false, issues: [{ path: '(root)', message: 'additionalProperties' }] });
    const inContent = { ...base, content: { ...(base.content as object), vendorExtension: { anything: [1, 'x'] } } };
    expect(accepts(inContent)).toBe(true);
    expect(oracleAccepts(inContent)).toBe(true);
  });

  it('refuses what the schema requires and reports the failing path without values', () => {
    const base = corpus[0]!.value;
    const { deviceid: _d, ...noDeviceId } = base;
    expect(accepts(noDeviceId)).toBe(false);
    const content = { ...(base.content as Record<string, unknown>) };
    delete content.versionclient;
    expect(accepts({ ...base, content })).toBe(false);
    const badType = { ...base, content: { ...(base.content as object), hardware: { name: 42 } } };
    const r = validateInventory(badType);
    expect(r).toEqual({ ok: false, issues: [{ path: 'content.hardware.name', message: 'type' }] });
    expect(JSON.stringify(r)).not.toContain('42');
    expect(accepts('not an object')).toBe(false);
    expect(accepts(null)).toBe(false);
  });

  // Mutations of real inventories: replace the value at a random path by an arbitrary JSON value,
  // delete it, or add an unknown key beside it. Both validators must agree every time.
  it('agrees with the oracle on mutated corpus inventories', () => {
    const paths = (v: unknown, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] => {
      out.push(at);
      if (Array.isArray(v)) v.slice(0, 3).forEach((x, i) => paths(x, [...at, i], out));
      else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out);
      return out;
    };
    const small = corpus.filter((c) => JSON.stringify(c.value).length < 40_000);
    const mutate = (root: unknown, path: (string | number)[], op: 'set' | 'delete' | 'add', value: unknown): unknown => {
      const copy = structuredClone(root) as Record<string | number, unknown>;
      if (path.length === 0) return op === 'set' ? value : copy;
      let node = copy;
      for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
      const last = path[path.length - 1]!;
      if (op === 'set') node[last] = value;
      else if (op === 'delete') {
        if (Array.isArray(node)) node.splice(Number(last), 1);
        else delete node[last];
      } else if (!Array.isArray(node)) node[`x_${String(last)}`] = value;
      return copy;
    };
    let refused = 0;
    fc.assert(
      fc.property(
        fc.nat({ max: small.length - 1 }),
        fc.nat(),
        fc.constantFrom('set' as const, 'delete' as const, 'add' as const),
        fc.oneof(
          fc.jsonValue({ maxDepth: 2 }),
          fc.constantFrom('2018-10-11 04:55:07', '2018-12-31', 'Computer', 'Printer', -1, 0, 1.5, 2 ** 40, ''),
        ),
        (which, pick, op, value) => {
          const inv = small[which]!.value;
          const all = paths(inv);
          const mutated = mutate(inv, all[pick % all.length]!, op, value);
          const verdict = accepts(mutated);
          if (!verdict) refused++;
          expect(verdict).toBe(oracleAccepts(mutated));
        },
      ),
      { numRuns: 3000, seed: 20261128 },
    );
    // The mutations must exercise refusals, not only acceptances.
    expect(refused).toBeGreaterThan(300);
  });
});
