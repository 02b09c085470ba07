/**
 * One training run, end to end: starts the worker, runs `trainAndArchive` on your task queue,
 * prints its result as JSON (the manifest CID among it) and stops. In production the worker runs
 * on its own (createTrainingWorker(…).run()) and your scheduler starts the workflow.
 *
 *   PROVENANT_CONFIG=provenant.yaml node dist/run.js --run-id run-42 --output-dir /data/checkpoints \
 *       [--epochs 3] [--address localhost:7233] [--namespace default] [--task-queue training] [--no-steward]
 */
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { createTrainingWorker, NativeConnection } from './worker.js';
import { trainAndArchive } from './workflows.js';

const { values: a } = parseArgs({
  options: {
    'run-id': { type: 'string' },
    'output-dir': { type: 'string' },
    epochs: { type: 'string', default: '3' },
    address: { type: 'string', default: 'localhost:7233' },
    namespace: { type: 'string', default: 'default' },
    'task-queue': { type: 'string', default: 'training' },
    'no-steward': { type: 'boolean', default: false },
  },
});
if (!a['run-id'] || !a['output-dir']) {
  console.error('usage: run.js --run-id ID --output-dir DIR [--epochs N] [--address HOST:PORT] [--task-queue Q]');
  process.exit(2);
}

const taskQueue = a['task-queue']!;
const connection = await NativeConnection.connect({ address: a.address });
const clientConnection = await Connection.connect({ address: a.address });
try {
  const client = new Client({ connection: clientConnection, namespace: a.namespace });
  const worker = await createTrainingWorker({ connection, namespace: a.namespace, taskQueue });
  const result = await worker.runUntil(
    client.workflow.execute(trainAndArchive, {
      taskQueue,
      workflowId: `train-${a['run-id']}`,
      args: [{ runId: a['run-id'], outputDir: a['output-dir'], epochs: Number(a.epochs), steward: !a['no-steward'] }],
    }),
  );
  console.log(JSON.stringify(result));
} finally {
  await clientConnection.close();
  await connection.close();
}
