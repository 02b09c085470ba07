/**
 * The Python tools the export tests check their output with, from the virtualenvs that
 * `npm run setup` makes (scripts/setup.sh, same versions). Nothing is installed from here: a
 * missing tool is a reason to skip, which CI (PROVENANT_REQUIRE_ALL=1) turns into a failure.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { REQUIRE_ALL } from '../helpers/env.js';

export const MLCROISSANT_VERSION = '1.1.1'; // keep in step with scripts/setup.sh

function cacheDir(): string {
  return (
    process.env.PROVENANT_CACHE_DIR ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'provenant')
  );
}

export interface PyTool {
  /** The virtualenv's bin directory. */
  bin: string;
  python: string;
}

/** The tool's virtualenv, or why there is none (then the test skips; in CI it fails). */
export function pythonTool(t: TestContext, venv: string, probe: string): PyTool | undefined {
  const dir = path.join(cacheDir(), venv);
  const python = path.join(dir, 'bin', 'python');
  let why: string | undefined;
  if (!fs.existsSync(path.join(dir, '.installed'))) why = `${venv} is not installed (run \`npm run setup\`)`;
  else {
    const r = spawnSync(python, ['-c', probe], { encoding: 'utf8' });
    if (r.status !== 0) why = `${python} cannot run '${probe}': ${r.stderr.trim().split('\n').pop()}`;
  }
  if (why) {
    if (REQUIRE_ALL) assert.fail(why);
    t.skip(why);
    return undefined;
  }
  return { bin: path.join(dir, 'bin'), python };
}
