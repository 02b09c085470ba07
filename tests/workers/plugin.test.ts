/** The plugin's worker lifecycle: provider clients are released when the last worker using it stops. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { LocalProvider } from '../../activities/providers/local.js';
import { ProvenantPlugin } from '../../workers/plugin.js';
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
      Worker.create({ connection: env!.nativeConnection, namespace: env!.namespace ?? 'default', taskQueue, plugins: [plugin] });
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
      connection: env.nativeConnection, namespace: env.namespace ?? 'default', taskQueue: config.temporal.taskQueue,
      plugins: [new ProvenantPlugin({ config, providers: [provider] })],
    });
    let closedWhileRunning = -1;
    await worker.runUntil(new Promise<void>((r) => setTimeout(() => {
      closedWhileRunning = provider.closed;
      r();
    }, 300)));
    assert.equal(closedWhileRunning, 0, 'open while the worker runs');
    assert.equal(provider.closed, 1, 'closed once when it stopped');
  });
});
