/** The plugin's worker lifecycle (provider clients released when the last worker stops) and which workflows it gives a worker. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { LocalProvider } from '../../activities/providers/local.js';
import { ProvenantPlugin, workflowBundlePath, workflowsPath } from '../../workers/plugin.js';
import { startTemporal, testConfig, tmpDir } from '../helpers/env.js';

/** A real local provider that also counts how often its clients were closed. */
class ClosingLocal extends LocalProvider {
  closed = 0;
  async close(): Promise<void> {
    this.closed++;
  }
}

describe('ProvenantPlugin', () => {
  let env: TestWorkflowEnvironment | undefined;
  before(async (t) => {
    env = await startTemporal(t as never);
  });
  after(async () => {
    await env?.teardown();
  });

  it('serves two workers with one host-queue worker, and closes its providers after the last stops', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const dir = tmpDir('pv-plugin-');
    const config = testConfig(dir);
    const provider = new ClosingLocal('closing', path.join(dir, 'closing'));
    const plugin = new ProvenantPlugin({ config, providers: [provider] });
    const make = (taskQueue: string) =>
      Worker.create({
        connection: env!.nativeConnection,
        namespace: env!.namespace ?? 'default',
        taskQueue,
        plugins: [plugin],
      });
    const one = await make(config.temporal.taskQueue);
    const two = await make(`${config.temporal.taskQueue}-b`);
    let releaseOne!: () => void;
    const runOne = one.runUntil(new Promise<void>((r) => (releaseOne = r)));
    await two.runUntil(new Promise((r) => setTimeout(r, 300)));
    assert.equal(provider.closed, 0, 'still in use by the other worker');
    releaseOne();
    await runOne;
    assert.equal(provider.closed, 1);
  });

  it('closes its providers when its worker stops, not before', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const dir = tmpDir('pv-plugin-');
    const config = testConfig(dir);
    const provider = new ClosingLocal('closing', path.join(dir, 'closing'));
    const worker = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      taskQueue: config.temporal.taskQueue,
      plugins: [new ProvenantPlugin({ config, providers: [provider] })],
    });
    let closedWhileRunning = -1;
    await worker.runUntil(
      new Promise<void>((r) =>
        setTimeout(() => {
          closedWhileRunning = provider.closed;
          r();
        }, 300),
      ),
    );
    assert.equal(closedWhileRunning, 0, 'open while the worker runs');
    assert.equal(provider.closed, 1, 'closed once when it stopped');
  });
});

describe('ProvenantPlugin workflows', () => {
  const plugin = () => new ProvenantPlugin({ config: testConfig(tmpDir('pv-plugin-wf-')), hostWorker: false });

  it('gives a worker the workflows bundled at build time, when that bundle is fresh', () => {
    const o = plugin().configureWorker({ taskQueue: 'q' });
    assert.equal(o.workflowsPath, undefined);
    assert.deepEqual(o.workflowBundle, { codePath: workflowBundlePath });
  });

  it('leaves a worker its own workflows', () => {
    const o = plugin().configureWorker({ taskQueue: 'q', workflowsPath: '/their/workflows.js' });
    assert.equal(o.workflowsPath, '/their/workflows.js');
    assert.equal(o.workflowBundle, undefined);
  });

  it('lets the worker bundle our workflows when workflow interceptor modules must go into the bundle', () => {
    const o = plugin().configureWorker({
      taskQueue: 'q',
      interceptors: { workflowModules: ['/their/interceptors.js'] },
    });
    assert.equal(o.workflowsPath, workflowsPath);
    assert.equal(o.workflowBundle, undefined);
  });

  it('falls back to the workflows path when a compiled workflow is newer than the bundle', () => {
    // Older than any compiled file (the suite may start minutes after the build).
    const stale = new Date(Date.UTC(2000, 0, 1));
    const fresh = fs.statSync(workflowBundlePath).mtime;
    fs.utimesSync(workflowBundlePath, stale, stale);
    try {
      const o = plugin().configureWorker({ taskQueue: 'q' });
      assert.equal(o.workflowsPath, workflowsPath);
      assert.equal(o.workflowBundle, undefined);
    } finally {
      fs.utimesSync(workflowBundlePath, fresh, fresh);
    }
  });
});
