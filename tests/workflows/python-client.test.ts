/**
 * From Python, as MLOps users start archives: examples/python/archive_dataset.py, run with the
 * real Python Temporal client against the real dev server and a Provenant worker, archives a
 * tree that then restores byte-identical, and a second run attaches to the same archive.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { resolvePythonClient } from '../../workers/binaries.js';
import { startRestore } from '../../workers/client.js';
import {
  bytesOf,
  readTree,
  REQUIRE_ALL,
  startTemporal,
  testConfig,
  tmpDir,
  withWorker,
  writeTree,
} from '../helpers/env.js';

const run = promisify(execFile);

/** A Python that imports the Temporal client, or why there is none. */
function python(): { bin?: string; why?: string } {
  const bin = resolvePythonClient();
  if (!bin) return { why: 'no Python Temporal client (run `npm run setup`, or set PROVENANT_PYTHON)' };
  const probe = spawnSync(bin, ['-c', 'import temporalio.client'], { encoding: 'utf8' });
  return probe.status === 0
    ? { bin }
    : { why: `${bin} cannot import temporalio: ${probe.stderr.trim().split('\n').pop()}` };
}

describe('archive from Python through the Temporal client', () => {
  let env: TestWorkflowEnvironment | undefined;
  before(async (t) => {
    env = await startTemporal(t as never);
  });
  after(async () => {
    await env?.teardown();
  });

  it('archives a tree from examples/python/archive_dataset.py, and restores it byte-identical', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const py = python();
    if (!py.bin) {
      if (REQUIRE_ALL) assert.fail(py.why);
      return t.skip(py.why);
    }
    const data = tmpDir('pv-python-');
    const src = path.join(data, 'model');
    writeTree(src, {
      'weights.bin': bytesOf(3 * 1024 * 1024 + 11, 'py-w'),
      'config.json': '{"layers": 2}',
      'tok/vocab.txt': 'a\nb\n',
    });
    const config = testConfig(path.join(data, 'home'));
    const script = path.resolve('examples', 'python', 'archive_dataset.py');
    const args = [
      script,
      '--source',
      src,
      '--dataset-id',
      'from-python',
      '--meta',
      'run=py-1',
      '--no-steward',
      '--address',
      env.address,
      '--task-queue',
      config.temporal.taskQueue,
    ];
    const { first, again, restored } = await withWorker(env, config, async () => {
      const first = JSON.parse((await run(py.bin!, args)).stdout) as {
        manifestCid: string;
        datasetId: string;
        files: number;
        copies: number;
      };
      const again = JSON.parse((await run(py.bin!, args)).stdout) as { manifestCid: string };
      const restored = path.join(data, 'restored');
      await (
        await startRestore(env!.client, config, { manifestCid: first.manifestCid, target: restored, force: false })
      ).result();
      return { first, again, restored };
    });
    assert.equal(first.datasetId, 'from-python');
    assert.equal(first.files, 3);
    assert.equal(first.copies, config.replication.copies);
    assert.equal(again.manifestCid, first.manifestCid, 'the same dataset id attaches to the same archive');
    assert.deepEqual(readTree(restored), readTree(src));
  });
});
