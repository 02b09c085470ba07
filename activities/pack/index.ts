/** Run the packer in a worker thread; resolve with its result, reject with a typed error. */
import { Worker } from 'node:worker_threads';
import { reviveError } from '../errors.js';
import { workerExecArgv } from './shard-hasher.js';
import type { PackOptions, PackProgress, PackResult } from './packer.js';

export function packInThread(opts: PackOptions, onProgress: (p: PackProgress) => void, signal?: AbortSignal): Promise<PackResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./pack-thread.js', import.meta.url), { workerData: opts, execArgv: workerExecArgv() });
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
    worker.on('message', (m: { type: string; progress?: PackProgress; result?: PackResult; error?: { name: string; message: string; stack?: string } }) => {
      if (m.type === 'progress') onProgress(m.progress!);
      else if (m.type === 'done') finish(() => resolve(m.result!));
      else if (m.type === 'error') finish(() => reject(reviveError(m.error!)));
    });
    worker.on('error', (err) => finish(() => reject(err)));
    worker.on('exit', (code) => finish(() => reject(new Error(`pack thread exited with code ${code}`))));
  });
}
