/**
 * PROVENANT_REQUIRE_ALL=1 fails a run with any skipped test, however it was skipped, and the
 * runner's closing summary is still printed. Runs `node --test` the way `npm test` does (spec
 * reporter + tests/helpers/require-all-reporter.js) on a throw-away test file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { tmpDir } from '../helpers/env.js';

const reporter = path.resolve('dist/tests/helpers/require-all-reporter.js');

function runTests(source: string, requireAll: boolean): { status: number | null; stdout: string; stderr: string } {
  const dir = tmpDir('pv-require-all-');
  const file = path.join(dir, 'sample.test.mjs');
  fs.writeFileSync(file, `import { it } from 'node:test';\n${source}\n`);
  const env: NodeJS.ProcessEnv = { ...process.env, PROVENANT_REQUIRE_ALL: requireAll ? '1' : '0' };
  delete env.NODE_TEST_CONTEXT; // we run inside a test runner; the child must be a runner of its own
  const r = spawnSync(
    process.execPath,
    [
      '--test',
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      `--test-reporter=${reporter}`,
      '--test-reporter-destination=stderr',
      file,
    ],
    { env, encoding: 'utf8' },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const summary = (stdout: string) =>
  Object.fromEntries([...stdout.matchAll(/^ℹ (tests|pass|fail|skipped) (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));

describe('PROVENANT_REQUIRE_ALL=1', () => {
  it('fails the run on a direct t.skip() and on it.skip, and keeps the summary', () => {
    const r = runTests(
      `it('runs', () => {});\nit('skips itself', (t) => { t.skip('no server'); });\nit.skip('skipped outright', () => {});`,
      true,
    );
    assert.equal(r.status, 1, r.stderr);
    assert.deepEqual(summary(r.stdout), { tests: 3, pass: 1, fail: 0, skipped: 2 });
    assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('PROVENANT_REQUIRE_ALL=1:')).length, 2, r.stderr);
  });

  it('passes a run with nothing skipped', () => {
    const r = runTests(`it('runs', () => {});`, true);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(summary(r.stdout), { tests: 1, pass: 1, fail: 0, skipped: 0 });
  });

  it('leaves skips alone without it', () => {
    const r = runTests(`it('skips itself', (t) => { t.skip('no server'); });`, false);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(summary(r.stdout).skipped, 1);
    assert.equal(r.stderr, '');
  });

  it('still fails a run whose test fails', () => {
    const r = runTests(`it('fails', () => { throw new Error('boom'); });`, true);
    assert.equal(r.status, 1);
    assert.equal(summary(r.stdout).fail, 1);
  });
});
