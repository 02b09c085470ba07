/**
 * Your worker: your workflows and activities on your task queue, plus Provenant's through its
 * plugin (activities named `provenant…`; the activities that touch staged files run on a second
 * worker the plugin starts on this host's own queue). The plugin reads its config as the CLI does:
 * PROVENANT_CONFIG (a JSON or YAML file) and the environment; or pass `new ProvenantPlugin({ config })`.
 */
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker } from '@temporalio/worker';
import { ProvenantPlugin } from 'provenant';
import * as activities from './activities.js';

export async function createTrainingWorker(o: {
  connection: NativeConnection;
  namespace?: string;
  taskQueue: string;
}): Promise<Worker> {
  return Worker.create({
    connection: o.connection,
    namespace: o.namespace ?? 'default',
    taskQueue: o.taskQueue,
    workflowsPath: fileURLToPath(new URL('./workflows.js', import.meta.url)),
    activities,
    plugins: [new ProvenantPlugin()],
  });
}

export { NativeConnection };
