/**
 * The layer fences and the cycle rule in eslint.config.mjs report what they should, and only that.
 * Fences: lintText with a path inside the tree (nothing is written there). Cycle: two files that
 * import each other, in a temporary directory linted with our config. Type information is off
 * (those files are in no TypeScript project), so the one rule that needs it is too.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ESLint, type Linter } from 'eslint';
import { tmpDir } from '../helpers/env.js';

const repo = path.resolve('.');
const overrideConfig: Linter.Config = {
  languageOptions: { parserOptions: { projectService: false } },
  rules: { '@typescript-eslint/no-floating-promises': 'off' },
};
const eslint = new ESLint({ cwd: repo, overrideConfig });

/** Rule ids reported for `code` as if it were the file `filePath` of the repo. */
async function rulesFor(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return result!.messages.map((m) => m.ruleId ?? `fatal: ${m.message}`);
}

const FENCE = '@typescript-eslint/no-restricted-imports';

describe('layer fences (eslint)', () => {
  it('activities/ may not import workflows/, workers/ or cli/', async () => {
    assert.deepEqual(
      await rulesFor(
        'activities/x.ts',
        "import { archiveDataset } from '../workflows/archive.js';\nexport const a = archiveDataset;\n",
      ),
      [FENCE],
    );
    assert.deepEqual(
      await rulesFor(
        'activities/ingest/x.ts',
        "import type { Client } from '../../workers/client.js';\nexport type C = Client;\n",
      ),
      [FENCE],
    );
    assert.deepEqual(
      await rulesFor('activities/x.ts', "import { main } from '../cli/provenant.js';\nexport const m = main;\n"),
      [FENCE],
    );
  });

  it('activities/ may import shared/ and config/', async () => {
    assert.deepEqual(
      await rulesFor(
        'activities/x.ts',
        "import type { Config } from '../config/schema.js';\nimport * as shared from '../shared/index.js';\nexport const s = shared;\nexport type C = Config;\n",
      ),
      [],
    );
  });

  it('workflows/ may not import Node built-ins, nor anything (even types) outside shared/ and workflows/', async () => {
    const builtin = await rulesFor('workflows/x.ts', "import fs from 'node:fs';\nexport const f = fs;\n");
    assert.ok(builtin.includes('import-x/no-nodejs-modules') && builtin.includes(FENCE), builtin.join());
    assert.ok(
      (await rulesFor('workflows/x.ts', "import crypto from 'crypto';\nexport const c = crypto;\n")).includes(
        'import-x/no-nodejs-modules',
      ),
    );
    assert.deepEqual(
      await rulesFor('workflows/x.ts', "import type { Config } from '../config/schema.js';\nexport type C = Config;\n"),
      [FENCE],
    );
    assert.deepEqual(
      await rulesFor(
        'workflows/x.ts',
        "import type { StorageProvider } from '../activities/providers/provider.js';\nexport type P = StorageProvider;\n",
      ),
      [FENCE],
    );
    assert.deepEqual(await rulesFor('workflows/x.ts', "import { z } from 'zod';\nexport const s = z.string();\n"), [
      FENCE,
    ]);
  });

  it('workflows/ may import the workflow SDK, shared/ and other workflow files', async () => {
    const code =
      "import { defineSignal } from '@temporalio/workflow';\nimport { ApplicationFailure } from '@temporalio/common';\nimport * as shared from '../shared/index.js';\nimport { archiveDataset } from './archive.js';\nexport const all = [defineSignal, ApplicationFailure, shared, archiveDataset];\n";
    assert.deepEqual(await rulesFor('workflows/x.ts', code), []);
  });

  it('shared/ imports nothing of ours outside shared/, and no Node built-ins', async () => {
    assert.deepEqual(
      await rulesFor('shared/x.ts', "import type { Config } from '../config/schema.js';\nexport type C = Config;\n"),
      [FENCE],
    );
    assert.ok(
      (await rulesFor('shared/x.ts', "import path from 'node:path';\nexport const p = path;\n")).includes(
        'import-x/no-nodejs-modules',
      ),
    );
    assert.deepEqual(
      await rulesFor(
        'shared/x.ts',
        "import { z } from 'zod';\nimport { CID } from 'multiformats/cid';\nimport { defineQuery } from '@temporalio/workflow';\nexport const all = [z, CID, defineQuery];\n",
      ),
      [],
    );
  });

  it('config/ may not import activities/, workflows/, workers/ or cli/', async () => {
    assert.deepEqual(
      await rulesFor(
        'config/x.ts',
        "import { ConfigError } from '../activities/errors.js';\nexport const e = ConfigError;\n",
      ),
      [FENCE],
    );
    assert.deepEqual(
      await rulesFor(
        'config/x.ts',
        "import type { ArchiveInput } from '../workflows/archive.js';\nexport type A = ArchiveInput;\n",
      ),
      [FENCE],
    );
    assert.deepEqual(
      await rulesFor(
        'config/x.ts',
        "import { ConfigError } from '../shared/errors.js';\nexport const e = ConfigError;\n",
      ),
      [],
    );
  });

  it('two modules importing each other are a cycle', async () => {
    const dir = tmpDir('pv-lint-');
    fs.mkdirSync(path.join(dir, 'activities'));
    fs.writeFileSync(
      path.join(dir, 'activities', 'a.ts'),
      "import { b } from './b.js';\nexport const a = (): number => b() + 1;\n",
    );
    fs.writeFileSync(
      path.join(dir, 'activities', 'b.ts'),
      "import { a } from './a.js';\nexport const b = (): number => a() - 1;\n",
    );
    fs.writeFileSync(
      path.join(dir, 'activities', 'c.ts'),
      "import { a } from './a.js';\nexport const c = (): number => a();\n",
    );
    const linter = new ESLint({ cwd: dir, overrideConfigFile: path.join(repo, 'eslint.config.mjs'), overrideConfig });
    const results = await linter.lintFiles(['activities/*.ts']);
    const byFile = Object.fromEntries(results.map((r) => [path.basename(r.filePath), r.messages.map((m) => m.ruleId)]));
    assert.deepEqual(byFile, { 'a.ts': ['import-x/no-cycle'], 'b.ts': ['import-x/no-cycle'], 'c.ts': [] });
  });
});
