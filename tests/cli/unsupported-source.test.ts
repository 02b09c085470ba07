/** `provenant archive` with a URL scheme it cannot archive: a typed one-line failure, nothing written. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { tmpDir } from '../helpers/env.js';

const CLI = path.resolve('dist/cli/provenant.js');

function run(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('provenant archive <unsupported URL>', () => {
  it('fails fast with UnsupportedSourceError, exit 1, and writes nothing', async () => {
    const root = tmpDir('pv-cli-scheme-');
    const home = path.join(root, 'home');
    const staging = path.join(root, 'staging');
    // Nothing listens on port 1 and the embedded server is off: reaching Temporal would fail differently.
    const env = {
      PROVENANT_DATA_DIR: home,
      PROVENANT_STAGING_DIR: staging,
      TEMPORAL_ADDRESS: '127.0.0.1:1',
      PROVENANT_EMBEDDED: 'never',
    };
    const r = await run(['archive', 'ftp://example.org/x'], env);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^provenant: UnsupportedSourceError: /);
    assert.equal(fs.existsSync(home), false, 'no data dir');
    assert.equal(fs.existsSync(staging), false, 'no staging dir');
    assert.equal(fs.existsSync(path.join(process.cwd(), 'ftp:')), false, 'not taken as a local path');

    const json = await run(['archive', 'ftp://example.org/x', '--json'], env);
    assert.equal(json.code, 1);
    assert.match(JSON.parse(json.stdout).error, /^UnsupportedSourceError: /);
  });
});
