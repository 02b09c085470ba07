/** workflows/ holds deterministic code only: no Node built-ins, no I/O, activities as types only. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

const dir = path.resolve('workflows');

describe('workflow sources', () => {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.ts'));
  it('exist', () => assert.ok(files.length >= 3));
  for (const f of files) {
    it(`${f} imports only the workflow SDK, other workflow files, and types`, () => {
      const src = fs.readFileSync(path.join(dir, f), 'utf8');
      for (const m of src.matchAll(/^import\s+(type\s+)?[^'"]*from\s+'([^']+)'/gm)) {
        const [, isType, from] = m;
        if (isType) continue;
        assert.ok(from === '@temporalio/workflow' || from!.startsWith('./'), `${f}: value import from '${from}' is not allowed in workflows/`);
      }
      // Temporal's sandbox makes Date and Math.random deterministic; env and require are not.
      assert.doesNotMatch(src, /process\.env|require\(/, `${f}: non-deterministic call`);
    });
  }
});
