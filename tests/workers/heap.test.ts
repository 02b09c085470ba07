/**
 * workers/heap.ts: the worker's process holds V8's young generation at its starting size. Each case
 * runs in a node process of its own (flags are per process): a workload that keeps part of what
 * it allocates alive, the way stream chunks and promises outlive a scavenge under a busy pack or
 * restore, makes V8 grow new space to its maximum (32 MiB or more on Node 24, 16 on Node 20);
 * with the tuning it stays at its starting size, in the main isolate and (Node 22+) in a thread
 * started after. Measured: Node 24 grew both to 128 MiB untuned, 2 MiB tuned.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const heapModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../workers/heap.js');

/** New space's committed size in MiB, in the main isolate and in a worker thread, after the churn. */
function newSpaceMiB(env: Record<string, string>): { main: number; thread: number; applied: boolean } {
  // The churn: a function body taking node:v8, run in the main isolate and in a worker thread.
  const churn = `
    const keep = [];
    for (let i = 0; i < 3e6; i++) {
      const o = { i, s: 'x' + i, a: [i, i + 1] };
      if (i % 4 === 0) keep.push(o);
      if (keep.length > 200000) keep.length = 0;
    }
    return v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space').space_size / 1048576;
  `;
  const script = `
    import v8 from 'node:v8';
    import { Worker } from 'node:worker_threads';
    const { keepYoungGenerationSmall } = await import(${JSON.stringify(heapModule)});
    const applied = keepYoungGenerationSmall();
    const main = new Function('v8', ${JSON.stringify(churn)})(v8);
    const inThread = 'const { parentPort } = require("node:worker_threads");' +
      'parentPort.postMessage(new Function("v8", ' + ${JSON.stringify(JSON.stringify(churn))} + ')(require("node:v8")));';
    const thread = await new Promise((resolve, reject) => {
      const w = new Worker(inThread, { eval: true, execArgv: [] });
      w.once('message', resolve);
      w.once('error', reject);
    });
    console.log(JSON.stringify({ main, thread, applied }));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

describe('V8 heap tuning of the worker process (workers/heap.ts)', () => {
  it('holds new space at its starting size, in the main isolate and in threads started later', () => {
    const tuned = newSpaceMiB({ PROVENANT_V8_DEFAULTS: '' });
    const untuned = newSpaceMiB({ PROVENANT_V8_DEFAULTS: '1' });
    assert.equal(tuned.applied, true);
    assert.equal(untuned.applied, false, 'PROVENANT_V8_DEFAULTS=1 leaves the defaults');
    // V8's default lets new space grow to at least 16 MiB under this churn: the case can fail.
    assert.ok(untuned.main >= 8, `untuned main new space ${untuned.main} MiB`);
    assert.ok(untuned.thread >= 8, `untuned thread new space ${untuned.thread} MiB`);
    assert.ok(tuned.main <= 4, `tuned main new space ${tuned.main} MiB`);
    // Node 20 (past its end of life; the package wants 22+) starts a thread's new space at its
    // maximum whatever the flag: there only the main isolate is held.
    if (Number(process.versions.node.split('.')[0]) >= 22)
      assert.ok(tuned.thread <= 4, `tuned thread new space ${tuned.thread} MiB`);
  });
});
