/**
 * The crash suite's worker process: the real plugin, as workers/main.ts runs it, with a short sticky
 * schedule-to-start timeout, so that a workflow whose worker was SIGKILLed goes back to the shared
 * queue after 1 s instead of 10 (only how soon a survivor picks it up; recovery itself is the product's).
 */
import { NativeConnection, Worker } from '@temporalio/worker';
import { loadConfig } from '../../config/load.js';
import { ProvenantPlugin } from '../../workers/plugin.js';

const config = loadConfig();
const connection = await NativeConnection.connect({ address: config.temporal.address });
try {
  const plugin = new ProvenantPlugin({ config });
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    plugins: [plugin],
    stickyQueueScheduleToStartTimeout: '1 second',
  });
  console.error(`provenant worker: queue ${config.temporal.taskQueue} + host queue ${plugin.hostQueue}`);
  await worker.run();
} finally {
  await connection.close();
}
