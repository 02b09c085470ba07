/** Worker-thread entry: runs the packer off the activity's event loop so heartbeats keep flowing. */
import { parentPort, workerData } from 'node:worker_threads';
import { runPack, type PackOptions } from './packer.js';

const port = parentPort!;
runPack(workerData as PackOptions, (p) => port.postMessage({ type: 'progress', progress: p }))
  .then((result) => port.postMessage({ type: 'done', result }))
  .catch((err: Error) =>
    port.postMessage({ type: 'error', error: { name: err.name, message: err.message, stack: err.stack } }),
  );
