/**
 * examples/python/archive_dataset.py run again after a failed archive: it archives anew (issue 12),
 * and a further run returns the completed archive. Real Python Temporal client, real dev server.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { resolvePythonClient } from '../../workers/binaries.js';
import { bytesOf, REQUIRE_ALL, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';

function python(): { bin?: string; why?: string } {
  const bin = resolvePythonClient();
  if (!bin) return { why: 'no Python Temporal client (run `npm run setup`, or set PROVENANT_PYTHON)' };
  const probe = spawnSync(bin, ['-c', 'import temporalio.client'], { encoding: 'utf8' });
  return probe.status === 0 ? { bin } : { why: `${bin} cannot import temporalio` };
}

function run(bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('archive from Python, run again after a failure', () => {
  let env: TestWorkflowEnvironment | undefined;
  before(async (t) => {
    env = await startTemporal(t as never);
  });
  after(async () => {
    await env?.teardown();
  });

  it('starts a new archive after a failed one, then returns the completed one', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const py = python();
    if (!py.bin) {
      if (REQUIRE_ALL) assert.fail(py.why);
      return t.skip(py.why);
    }
    const data = tmpDir('pv-python-rerun-');
    const src = path.join(data, 'model');
    writeTree(src, { 'weights.bin': bytesOf(64 * 1024, 'py-rerun'), 'config.json': '{}' });
    const config = testConfig(path.join(data, 'home'), {
      providers: [
        { kind: 'local', id: 'nas-a', path: path.join(data, 'nas-a') },
        { kind: 'local', id: 'nas-b', path: path.join(data, 'nas-b') },
      ],
    });
    const script = path.resolve('examples', 'python', 'archive_dataset.py');
    const args = (copies: number) => [
      script,
      '--source',
      src,
      '--dataset-id',
      'py-rerun',
      '--copies',
      String(copies),
      '--no-steward',
      '--address',
      env!.address,
      '--task-queue',
      config.temporal.taskQueue,
    ];
    const [failed, anew, done] = await withWorker(env, config, async () => [
      await run(py.bin!, args(3)),
      await run(py.bin!, args(2)),
      await run(py.bin!, args(2)),
    ]);
    assert.notEqual(failed!.code, 0, 'three copies on two providers fail');
    assert.match(failed!.stderr, /PolicyUnsatisfiableError/);
    assert.equal(anew!.code, 0, anew!.stderr);
    assert.match(anew!.stderr, /started a new archive after a failed one/);
    assert.equal(done!.code, 0, done!.stderr);
    assert.match(done!.stderr, /returned a completed archive's result/);
    assert.equal(JSON.parse(done!.stdout).manifestCid, JSON.parse(anew!.stdout).manifestCid);
  });
});
