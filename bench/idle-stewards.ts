/**
 * 1,000 idle stewards on one worker: CPU used by the worker process while every steward sleeps
 * on its durable timer, side by side with the same worker and no stewards. Run with
 * `npm run bench:stewards` (starts its own Temporal dev server).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { ProvenantPlugin } from '../workers/plugin.js';
import { startTemporal, testConfig, tmpDir } from '../tests/helpers/env.js';
import { stewardDataset } from '../workflows/index.js';
import type { StewardState } from '../shared/types.js';

const N = Number(process.env.STEWARDS ?? 1000);
const WINDOW_MS = Number(process.env.WINDOW_MS ?? 5_000);
const WINDOWS = Number(process.env.WINDOWS ?? 6);

/** Median CPU (ms) per window over several windows: the machine is noisy. */
async function medianCpu(): Promise<{ median: number; all: number[] }> {
  const all: number[] = [];
  for (let i = 0; i < WINDOWS; i++) all.push(await cpuOver(WINDOW_MS));
  const sorted = [...all].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)]!, all };
}

async function cpuOver(ms: number): Promise<number> {
  const before = process.cpuUsage();
  await new Promise((r) => setTimeout(r, ms));
  const d = process.cpuUsage(before);
  return (d.user + d.system) / 1000; // ms of CPU
}

async function main() {
  const env = await startTemporal({
    skip: (m: string) => {
      throw new Error(m);
    },
  });
  if (!env) throw new Error('no Temporal server');
  const config = testConfig(tmpDir('pv-bench-stewards-'));
  const worker = await Worker.create({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue: config.temporal.taskQueue,
    plugins: [new ProvenantPlugin({ config, hostWorker: false })],
    maxCachedWorkflows: N + 100,
  });
  const result = await worker.runUntil(async () => {
    await new Promise((r) => setTimeout(r, 10_000)); // worker warm-up (bundle, pollers)
    const base = await medianCpu();
    const baseline = base.median;
    const t0 = Date.now();
    const handles = [];
    for (let i = 0; i < N; i++) {
      const state: StewardState = {
        datasetId: `bench-${i}`,
        manifestCid: `bench-${i}`,
        copies: 2,
        providers: [],
        settings: {
          verifyEveryMs: 86_400_000,
          renewWindowMs: 45 * 86_400_000,
          unreachableGraceMs: 86_400_000,
          detectionProbability: 0.99,
          lossFraction: 0.01,
          maxRoundsPerRun: 500,
          searchAttributes: false,
        },
        replicas: [],
        audit: { cid: 'seeded', seq: 1 },
        rounds: 0,
        runs: 0,
        counters: { verifications: 0, repairs: 0, renewals: 0, retired: 0 },
      };
      handles.push(
        env.client.workflow.start(stewardDataset, {
          taskQueue: config.temporal.taskQueue,
          workflowId: `bench-steward-${i}-${t0}`,
          args: [state],
        }),
      );
    }
    await Promise.all(handles);
    const startMs = Date.now() - t0;
    // Let every steward run its first workflow task and fall asleep on its timer.
    await new Promise((r) => setTimeout(r, 10_000));
    const settling = await cpuOver(WINDOW_MS);
    const loaded = await medianCpu();
    return {
      stewards: N,
      windowMs: WINDOW_MS,
      windows: WINDOWS,
      startAllMs: startMs,
      baselineCpuMs: baseline,
      baselineWindows: base.all,
      settlingCpuMs: settling,
      idleCpuMs: loaded.median,
      idleWindows: loaded.all,
    };
  });
  await env.teardown();
  const perSec = (ms: number) => (ms / (result.windowMs / 1000)).toFixed(1);
  console.log(`median of ${WINDOWS} windows of ${WINDOW_MS} ms each`);
  console.log(`idle worker, no stewards:      ${perSec(result.baselineCpuMs)} ms CPU per second`);
  console.log(
    `${N} stewards, first window:   ${perSec(result.settlingCpuMs)} ms CPU per second (started in ${result.startAllMs} ms)`,
  );
  console.log(`idle worker, ${N} stewards:  ${perSec(result.idleCpuMs)} ms CPU per second`);
  console.log(
    `extra CPU per idle steward:    ${(((result.idleCpuMs - result.baselineCpuMs) / N / (result.windowMs / 1000)) * 1000).toFixed(2)} µs per second`,
  );
  console.log(`ratio idle/baseline:           ${(result.idleCpuMs / Math.max(result.baselineCpuMs, 1)).toFixed(2)}`);
  const out = path.resolve('bench-stewards.json');
  fs.writeFileSync(out, JSON.stringify(result, null, 2));
  console.log(`wrote ${out}`);
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
