/** Standalone worker: `node dist/workers/main.js` (config from PROVENANT_CONFIG + environment). */
import { NativeConnection, Worker } from '@temporalio/worker';
import { loadConfig } from '../config/load.js';
import { ProvenantPlugin } from './plugin.js';

export async function runWorker(): Promise<void> {
  const config = loadConfig();
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  try {
    const plugin = new ProvenantPlugin({ config });
    const worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      plugins: [plugin],
    });
    console.error(`provenant worker: queue ${config.temporal.taskQueue} + host queue ${plugin.hostQueue} at ${config.temporal.address}`);
    await worker.run();
  } finally {
    await connection.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runWorker().catch((err) => {
    console.error(`provenant worker: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    process.exit(1);
  });
}
