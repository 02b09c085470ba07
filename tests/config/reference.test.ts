/**
 * docs/config.md, the configuration reference, is generated from the zod schema
 * (scripts/config-reference.mjs, `npm run docs:config`): it fails here when it is stale, when it
 * leaves out a key of the schema, or when a default it prints is not the default the schema gives.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { parseConfig } from '../../config/load.js';
import { ConfigSchema } from '../../config/schema.js';

interface Reference {
  configReference(o: { schema: z.ZodType; source: string }): Promise<{ markdown: string; undocumented: string[] }>;
}

// Tests run from the repository's root (as `npm test` does).
const root = path.resolve('.');
const generator = (): Promise<Reference> =>
  import(pathToFileURL(path.join(root, 'scripts', 'config-reference.mjs')).href) as Promise<Reference>;
const docs = () => fs.readFileSync(path.join(root, 'docs', 'config.md'), 'utf8');

/** `| \`key\` | type | default | description |` rows: key → [type, default, description]. */
function rows(md: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of md.split('\n')) {
    const m = /^\| `([^`]+)` +\|(.*)\|$/.exec(line);
    if (m)
      out.set(
        m[1]!,
        m[2]!.split(/(?<!\\)\|/).map((c) => c.trim()),
      );
  }
  return out;
}

/** Every key path of a zod object schema, nested objects and lists of objects included (`providers[].bucket`). */
function keyPaths(schema: z.ZodType, prefix = ''): string[] {
  let s = schema as unknown as { _zod: { def: Record<string, unknown> } };
  // Unwrap defaults, optionals, pipes (transforms) and refinements down to the object, list or union.
  for (;;) {
    const def = s._zod.def;
    if (def.innerType) s = def.innerType as typeof s;
    else if (def.type === 'pipe') s = def.in as typeof s;
    else break;
  }
  const def = s._zod.def;
  if (def.type === 'object') {
    return Object.entries(def.shape as Record<string, z.ZodType>).flatMap(([k, v]) => {
      const full = prefix ? `${prefix}.${k}` : k;
      return [full, ...keyPaths(v, full)];
    });
  }
  if (def.type === 'array') return keyPaths(def.element as z.ZodType, `${prefix}[]`);
  if (def.type === 'union') return (def.options as z.ZodType[]).flatMap((o) => keyPaths(o, prefix));
  return [];
}

describe('the configuration reference (docs/config.md)', () => {
  it('is what `npm run docs:config` makes from config/schema.ts now', async () => {
    const { configReference } = await generator();
    const { markdown } = await configReference({
      schema: ConfigSchema,
      source: fs.readFileSync(path.join(root, 'config', 'schema.ts'), 'utf8'),
    });
    assert.ok(
      docs() === markdown,
      'docs/config.md is stale: run `npm run docs:config` (or node scripts/config-reference.mjs <build dir>)',
    );
  });

  it('lists every key of the schema', () => {
    const documented = rows(docs());
    const missing = [...new Set(keyPaths(ConfigSchema))].filter((k) => !documented.has(k));
    assert.deepEqual(missing, []);
    assert.ok(documented.has('temporal.address') && documented.has('providers[].bucket'));
  });

  it("prints the schema's own defaults", () => {
    const parsed = parseConfig({}) as unknown as Record<string, Record<string, unknown>>;
    const documented = rows(docs());
    let checked = 0;
    for (const [key, [, def]] of documented) {
      const m = /^`(.*)`/.exec(def ?? '');
      // dataDir's default is computed per machine: documented as the rule.
      if (!m || key.includes('[]') || key === 'dataDir') continue;
      // The value at the key's path in a config parsed from nothing.
      const actual = key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], parsed);
      assert.deepEqual(JSON.parse(m[1]!), actual, `default of ${key}`);
      checked++;
    }
    assert.ok(checked >= 20, `${checked} defaults checked`);
  });

  it('documents a key added later from its comment, or its .describe()', async () => {
    const { configReference } = await generator();
    const source = `const S = z.object({\n  /** The first key. */\n  a: z.string().default('x'),\n  b: z.number().int().min(1).optional(),\n});`;
    const schema = z.object({
      a: z.string().default('x'),
      b: z.number().int().min(1).optional(),
      c: z.boolean().default(true).describe('Said by describe.'),
    });
    const { markdown, undocumented } = await configReference({ schema, source });
    const r = rows(markdown);
    assert.deepEqual(r.get('a'), ['string', '`"x"`', 'The first key.']);
    assert.deepEqual(r.get('b')?.slice(0, 2), ['integer ≥ 1', '—']);
    assert.equal(r.get('c')?.[2], 'Said by describe.');
    assert.deepEqual(undocumented, ['b']);
  });
});
