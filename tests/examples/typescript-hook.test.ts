/**
 * The TypeScript post-training hook (examples/typescript), run as a user runs it: its sources are
 * compiled in a project of their own where `provenant` is an installed package (this build behind
 * the repository's package.json and its "exports"), so the example type-checks and runs against
 * the public entry points only. On the real dev server its training workflow, on its own task
 * queue and its own worker with ProvenantPlugin, archives the model directory through
 * `archiveDataset` as a child workflow; the manifest CID it prints restores the directory
 * byte-identical.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startRestore } from '../../workers/client.js';
import { readTree, startTemporal, testConfig, tmpDir, withWorker } from '../helpers/env.js';

const run = promisify(execFile);
const repo = path.resolve('.');
/** This build: index.js, workers/, workflows/… as lib/ holds them in the published package. */
const build = fileURLToPath(new URL('../../', import.meta.url));

/**
 * A fresh project holding the example's sources, with `provenant` in node_modules as npm would put
 * it (the package.json, and lib/ being this build), and the Temporal SDK and Node types beside it.
 */
function userProject(): string {
  const app = tmpDir('pv-ts-hook-');
  const example = path.join(repo, 'examples', 'typescript');
  for (const f of ['package.json', 'tsconfig.json']) fs.copyFileSync(path.join(example, f), path.join(app, f));
  fs.cpSync(path.join(example, 'src'), path.join(app, 'src'), { recursive: true });
  const pkg = path.join(app, 'node_modules', 'provenant');
  fs.mkdirSync(pkg, { recursive: true });
  fs.copyFileSync(path.join(repo, 'package.json'), path.join(pkg, 'package.json'));
  fs.symlinkSync(build, path.join(pkg, 'lib'), 'dir');
  for (const dep of ['@temporalio', '@types'])
    fs.symlinkSync(path.join(repo, 'node_modules', dep), path.join(app, 'node_modules', dep), 'dir');
  return app;
}

describe('the TypeScript post-training hook (examples/typescript)', () => {
  let env: TestWorkflowEnvironment | undefined;
  before(async (t) => {
    env = await startTemporal(t as never);
  });
  after(async () => {
    await env?.teardown();
  });

  it('archives the trained model as a child workflow, and its manifest CID restores the directory byte-identical', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const app = userProject();
    // Type-checked against the package's published types, compiled as the user's `npm run build` does.
    await run(process.execPath, [path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app]);
    assert.ok(fs.existsSync(path.join(app, 'dist', 'run.js')));

    const data = tmpDir('pv-ts-hook-data-');
    const config = testConfig(path.join(data, 'home'));
    // The Provenant worker's config, read by `new ProvenantPlugin()` from PROVENANT_CONFIG.
    const configFile = path.join(data, 'provenant.json');
    fs.writeFileSync(
      configFile,
      JSON.stringify({
        dataDir: config.dataDir,
        temporal: { heartbeatTimeout: config.temporal.heartbeatTimeout },
        pack: { shardBytes: config.pack.shardBytes },
      }),
    );
    const taskQueue = `training-${crypto.randomBytes(4).toString('hex')}`;
    const runId = `run-${crypto.randomBytes(3).toString('hex')}`;
    const { stdout } = await run(
      process.execPath,
      [
        path.join(app, 'dist', 'run.js'),
        ...['--run-id', runId, '--output-dir', path.join(data, 'checkpoints'), '--epochs', '2'],
        ...['--address', env.address, '--task-queue', taskQueue, '--no-steward'],
      ],
      { env: { ...process.env, PROVENANT_CONFIG: configFile, TEMPORAL_ADDRESS: '' }, maxBuffer: 16 * 1024 * 1024 },
    );
    const result = JSON.parse(stdout.trim().split('\n').pop()!) as {
      modelDir: string;
      datasetId: string;
      manifestCid: string;
      archiveWorkflowId: string;
    };
    assert.equal(result.modelDir, path.join(data, 'checkpoints', runId));
    assert.equal(result.datasetId, `model-${runId}`);
    assert.match(result.manifestCid, /^b[a-z2-7]+$/);

    // The archive ran as a child of the training workflow, on the training task queue.
    const archive = await env.client.workflow.getHandle(result.archiveWorkflowId).describe();
    assert.equal(archive.type, 'archiveDataset');
    assert.equal(archive.status.name, 'COMPLETED');
    assert.equal(archive.parentExecution?.workflowId, `train-${runId}`);
    assert.equal(archive.taskQueue, taskQueue);
    // Summaries the Web UI shows: the child's, given by the hook, and those of the archive's own steps.
    assert.equal(await archive.staticSummary(), `archive the model of run ${runId}`);
    const history = await env.client.workflow.getHandle(result.archiveWorkflowId).fetchHistory();
    const summaries = new Map<string, string>();
    for (const e of history.events ?? []) {
      const name =
        e.activityTaskScheduledEventAttributes?.activityType?.name ??
        e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowType?.name;
      const summary = e.userMetadata?.summary;
      if (name && summary) summaries.set(name, defaultPayloadConverter.fromPayload<string>(summary as Payload));
    }
    assert.equal(summaries.get('provenantScan'), `scan ${result.modelDir}`);
    assert.equal(summaries.get('provenantPack'), `pack ${result.datasetId} into CAR shards`);
    assert.equal(summaries.get('provenantWriteManifest'), 'write the manifest');
    assert.match(summaries.get('replicateShards') ?? '', /^copy shards of page 0 to \d+ providers$/);

    // The manifest CID alone restores the model directory, from the providers the hook's worker wrote to.
    const restored = path.join(data, 'restored');
    await withWorker(env, config, async () =>
      (
        await startRestore(env!.client, config, { manifestCid: result.manifestCid, target: restored, force: false })
      ).result(),
    );
    const model = readTree(result.modelDir);
    assert.equal(model.size, 5);
    assert.deepEqual(readTree(restored), model);
  });
});
