/** Client-side helpers: build a workflow's input from config (parse at the edge) and start it. */
import path from 'node:path';
import {
  type Client,
  WorkflowExecutionAlreadyStartedError,
  type WorkflowHandle,
  WorkflowNotFoundError,
} from '@temporalio/client';
import type { Config } from '../config/schema.js';
import { archiveInput, type ArchiveArgs } from '../activities/ingest/archive-input.js';
import { archiveDataset, restoreDataset } from '../workflows/index.js';
import type { RestoreInput } from '../shared/types.js';
import { archiveWorkflowId, restoreWorkflowId } from '../shared/api.js';

export {
  archiveInput,
  defaultDatasetId,
  placementPolicy,
  sourceFromArgs,
  stewardSettings,
  type ArchiveArgs,
  type SourceFlags,
} from '../activities/ingest/archive-input.js';

export { archiveWorkflowId };

/**
 * How `startArchive` met the dataset id: no archive of it before (`started`); one running, now
 * attached to (`attached`); one completed, whose result the handle returns (`completed`); or the
 * last one failed, was cancelled, terminated or timed out, and a new archive was started (`restarted`).
 */
export type ArchiveStartOutcome = 'started' | 'attached' | 'completed' | 'restarted';

export interface ArchiveStart {
  handle: WorkflowHandle<typeof archiveDataset>;
  outcome: ArchiveStartOutcome;
  /** True when attached to a running archive or given a completed one (no new archive). */
  existing: boolean;
  /** The run found under this workflow id before starting, with its status then (`restarted`: its final one). */
  previous?: { runId: string; status: string };
}

/**
 * Start the archive of a dataset, or attach to it: a running or completed archive of the same id is
 * never archived twice, but a failed, cancelled, terminated or timed-out one does not block it.
 * The server decides (reuse policy ALLOW_DUPLICATE_FAILED_ONLY, conflict policy USE_EXISTING); the
 * run found before starting only tells which case it was.
 */
export async function startArchive(client: Client, config: Config, a: ArchiveArgs): Promise<ArchiveStart> {
  const input = archiveInput(config, a);
  const workflowId = a.workflowId ?? archiveWorkflowId(input.datasetId);
  const runOf = (runId?: string) =>
    client.workflow
      .getHandle(workflowId, runId)
      .describe()
      .then(
        (d) => ({ runId: d.runId, status: d.status.name }),
        (err: unknown) => {
          if (err instanceof WorkflowNotFoundError) return undefined;
          throw err;
        },
      );
  const previous = await runOf();
  let handle: WorkflowHandle<typeof archiveDataset> & { firstExecutionRunId: string };
  try {
    handle = await client.workflow.start(archiveDataset, {
      taskQueue: config.temporal.taskQueue,
      workflowId,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
      searchAttributes: undefined,
    });
  } catch (err) {
    // Refused only when the last run completed: its result is the archive.
    if (err instanceof WorkflowExecutionAlreadyStartedError)
      return { handle: client.workflow.getHandle(workflowId), outcome: 'completed', existing: true, previous };
    throw err;
  }
  if (!previous) return { handle, outcome: 'started', existing: false };
  if (handle.firstExecutionRunId === previous.runId) return { handle, outcome: 'attached', existing: true, previous };
  // A new run. The one seen before may have been running then and closed since: report how it ended.
  const ended = (await runOf(previous.runId)) ?? previous;
  if (ended.status === 'CONTINUED_AS_NEW') return { handle, outcome: 'attached', existing: true, previous: ended };
  return { handle, outcome: 'restarted', existing: false, previous: ended };
}

export async function startRestore(
  client: Client,
  config: Config,
  r: Omit<RestoreInput, 'heartbeatTimeout'> & { workflowId?: string },
) {
  return client.workflow.start(restoreDataset, {
    taskQueue: config.temporal.taskQueue,
    workflowId: r.workflowId ?? restoreWorkflowId(r.manifestCid, Date.now().toString(36)),
    args: [{ ...r, target: path.resolve(r.target), heartbeatTimeout: config.temporal.heartbeatTimeout }],
  });
}
