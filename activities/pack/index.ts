/** Run the packer in a worker thread; resolve with its result, reject with a typed error. */
import { Worker } from 'node:worker_threads';
import { Context } from '@temporalio/activity';
import { reviveError } from '../errors.js';
import { threadOptions } from './shard-hasher.js';
import type { PackOptions, PackProgress, PackResult } from './packer.js';
import { describeChoice, writeStrategyFor } from './write-strategy.js';

/**
 * The write strategy is chosen here, on the calling thread, so that it is measured once per
 * staging filesystem per process, not once per pack thread (see write-strategy.ts).
 */
export async function packInThread(
  opts: PackOptions,
  onProgress: (p: PackProgress) => void,
  signal?: AbortSignal,
): Promise<PackResult> {
  const io = opts.io ?? (await writeStrategyFor(opts.dir, { direct: opts.directIo }));
  signal?.throwIfAborted();
  activityLog(`pack writes shard files ${describeChoice(io)} in ${opts.dir}`);
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./pack-thread.js', import.meta.url), {
      workerData: { ...opts, io },
      ...threadOptions(),
    });
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = () => {
      void worker.terminate();
      finish(() => reject(signal?.reason ?? new Error('pack cancelled')));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.on(
      'message',
      (m: {
        type: string;
        progress?: PackProgress;
        result?: PackResult;
        error?: { name: string; message: string; stack?: string };
      }) => {
        if (m.type === 'progress') onProgress(m.progress!);
        else if (m.type === 'done') finish(() => resolve(m.result!));
        else if (m.type === 'error') finish(() => reject(reviveError(m.error!)));
      },
    );
    worker.on('error', (err) => finish(() => reject(err)));
    worker.on('exit', (code) => finish(() => reject(new Error(`pack thread exited with code ${code}`))));
  });
}

/** Logs through the activity's logger when called from an activity (the bench calls it directly). */
function activityLog(message: string): void {
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    return;
  }
  ctx.log.info(message);
}
