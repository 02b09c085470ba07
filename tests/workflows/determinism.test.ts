/** workflows/ holds deterministic code only: no Node built-ins, no I/O; imports only the SDK, shared/ and each other. */
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
      // Value and type imports alike: what a workflow needs from elsewhere belongs in shared/.
      for (const m of src.matchAll(/^(?:import|export)\s+(?:type\s+)?[^'";]*from\s+'([^']+)'/gm)) {
        const from = m[1]!;
        const allowed =
          from === '@temporalio/workflow' ||
          from === '@temporalio/common' ||
          from.startsWith('../shared/') ||
          (from.startsWith('./') && !from.startsWith('../'));
        assert.ok(allowed, `${f}: import from '${from}' is not allowed in workflows/`);
      }
      // Temporal's sandbox makes Date and Math.random deterministic; env and require are not.
      assert.doesNotMatch(src, /process\.env|require\(/, `${f}: non-deterministic call`);
    });
  }
});
