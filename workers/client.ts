/** Client-side helpers: build a workflow's input from config (parse at the edge) and start it. */
import path from 'node:path';
import { Client, WorkflowExecutionAlreadyStartedError, type WorkflowHandle } from '@temporalio/client';
import type { Config } from '../config/schema.js';
import { archiveInput, type ArchiveArgs } from '../config/archive-input.js';
import { archiveDataset, restoreDataset } from '../workflows/index.js';
import type { RestoreInput } from '../workflows/types.js';

export { archiveInput, defaultDatasetId, placementPolicy, sourceFromArgs, stewardSettings, type ArchiveArgs, type SourceFlags } from '../config/archive-input.js';

export const archiveWorkflowId = (datasetId: string) => `provenant-archive-${datasetId}`;

/** Start (or attach to) the archive of a dataset: the same dataset id is never archived twice. */
export async function startArchive(client: Client, config: Config, a: ArchiveArgs): Promise<{ handle: WorkflowHandle<typeof archiveDataset>; existing: boolean }> {
  const input = archiveInput(config, a);
  const workflowId = a.workflowId ?? archiveWorkflowId(input.datasetId);
  try {
    const handle = await client.workflow.start(archiveDataset, {
      taskQueue: config.temporal.taskQueue,
      workflowId,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      searchAttributes: undefined,
    });
    return { handle, existing: false };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      return { handle: client.workflow.getHandle(workflowId), existing: true };
    }
    throw err;
  }
}

export async function startRestore(client: Client, config: Config, r: Omit<RestoreInput, 'heartbeatTimeout'> & { workflowId?: string }) {
  return client.workflow.start(restoreDataset, {
    taskQueue: config.temporal.taskQueue,
    workflowId: r.workflowId ?? `provenant-restore-${r.manifestCid.slice(-20)}-${Date.now().toString(36)}`,
    args: [{ ...r, target: path.resolve(r.target), heartbeatTimeout: config.temporal.heartbeatTimeout }],
  });
}
