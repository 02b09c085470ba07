/** A worker process killed mid-pack: the workflow resumes on a new worker and ends identical. */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startArchive, startRestore } from '../../workers/client.js';
import { readTree, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';

const MiB = 1024 * 1024;

function startWorkerProcess(env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [path.resolve('dist/workers/main.js')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

function checkpointShards(staging: string): number {
  if (!fs.existsSync(staging)) return 0;
  for (const d of fs.readdirSync(staging)) {
    const f = path.join(staging, d, 'pack-checkpoint.json');
    try {
      const cp = JSON.parse(fs.readFileSync(f, 'utf8')) as { shards: unknown[]; done?: unknown };
      if (!cp.done) return cp.shards.length;
    } catch {
      /* not written yet */
    }
  }
  return 0;
}

describe('a worker killed mid-pack', () => {
  let env: TestWorkflowEnvironment | undefined;
  before(async (t) => {
    env = await startTemporal(t as never);
  });
  after(async () => {
    await env?.teardown();
  });

  it('completes on a restarted worker with the same manifest CID as an uninterrupted run', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const data = tmpDir();
    const home = path.join(data, 'home');
    const src = path.join(data, 'src');
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 12; i++) files[`part-${i}.bin`] = crypto.randomBytes(24 * MiB + i);
    writeTree(src, files);
    const config = testConfig(home);
    const cfgFile = path.join(data, 'config.json');
    fs.writeFileSync(
      cfgFile,
      JSON.stringify({
        dataDir: home,
        pack: { shardBytes: 2 * MiB },
        temporal: { taskQueue: config.temporal.taskQueue, heartbeatTimeout: '3 seconds' },
      }),
    );
    const workerEnv = {
      PROVENANT_CONFIG: cfgFile,
      TEMPORAL_ADDRESS: env.address,
      TEMPORAL_NAMESPACE: env.namespace ?? 'default',
    };
    const createdAt = '2026-01-01T00:00:00.000Z';

    let worker = startWorkerProcess(workerEnv);
    const { handle } = await startArchive(env.client, config, { dir: src, datasetId: 'killed', createdAt });
    // Wait for the first finished shards, then kill the worker process outright.
    const staging = path.join(home, 'staging');
    const deadline = Date.now() + 120_000;
    let seen = 0;
    while ((seen = checkpointShards(staging)) < 3) {
      assert.ok(Date.now() < deadline, 'packing never produced a checkpoint');
      await new Promise((r) => setTimeout(r, 5));
    }
    worker.kill('SIGKILL');
    await new Promise((r) => worker.once('exit', r));
    assert.ok(seen >= 3);

    worker = startWorkerProcess(workerEnv);
    try {
      const resumed = await handle.result();
      assert.ok(resumed.pack.resumedFromShard >= 3, `resumed from shard ${resumed.pack.resumedFromShard}`);
      assert.equal(resumed.pack.shardsWritten + resumed.pack.resumedFromShard, resumed.shards);

      // The same dataset archived without interruption (another workflow id) gives the same manifest.
      const reference = await withWorker(env, config, async () => {
        const r = await startArchive(env!.client, config, {
          dir: src,
          datasetId: 'killed',
          createdAt,
          workflowId: 'reference-run',
        });
        return r.handle.result();
      });
      assert.equal(reference.pack.resumedFromShard, 0);
      assert.equal(resumed.manifestCid, reference.manifestCid);
      assert.equal(resumed.rootCid, reference.rootCid);

      // And the resumed archive restores byte-identical.
      const target = path.join(data, 'restored');
      await withWorker(env, config, async () =>
        (await startRestore(env!.client, config, { manifestCid: resumed.manifestCid, target, force: false })).result(),
      );
      assert.deepEqual(readTree(target), readTree(src));
    } finally {
      worker.kill('SIGKILL');
    }
  });
});
