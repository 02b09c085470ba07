/**
 * Your training workflow, with Provenant as a post-training hook: once the model is trained, its
 * directory is archived by Provenant's `archiveDataset`, run as a child workflow, which returns the
 * archive's summary. Keep its manifest CID: `provenant restore <manifestCid> <dir>` gets the exact
 * files back, each checked against its hash, from any of the providers that hold a copy.
 */
import { executeChild, proxyActivities, workflowInfo } from '@temporalio/workflow';
import { archiveDataset, archiveWorkflowId, type ArchiveRequestInput } from 'provenant/workflows';
import type * as activities from './activities.js';

// This worker runs Provenant's workflows too (the archive and, after it, the dataset's steward):
// a worker with its own workflowsPath re-exports them.
export * from 'provenant/workflows';

const { trainModel } = proxyActivities<typeof activities>({
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '5 minutes',
});

export interface TrainingRun {
  runId: string;
  /** Where checkpoints go, on the worker's host (archived from there). */
  outputDir: string;
  epochs: number;
  /** Keep the archive healthy for years with a steward (default true). */
  steward?: boolean;
}

export interface TrainingResult {
  modelDir: string;
  datasetId: string;
  /** The handle to keep. */
  manifestCid: string;
  rootCid: string;
  archiveWorkflowId: string;
}

export async function trainAndArchive(run: TrainingRun): Promise<TrainingResult> {
  const modelDir = await trainModel({ runId: run.runId, outputDir: run.outputDir, epochs: run.epochs });

  // The request names the dataset and its source only: the Provenant worker completes it from its
  // own config (providers, copies, shard size, placement policy, steward settings).
  const datasetId = `model-${run.runId}`;
  const request: ArchiveRequestInput = {
    source: { kind: 'local', path: modelDir },
    datasetId,
    meta: { run: run.runId, epochs: String(run.epochs), trainedBy: workflowInfo().workflowId },
    ...(run.steward === false ? { steward: false } : {}),
  };
  const workflowId = archiveWorkflowId(datasetId);
  const summary = await executeChild(archiveDataset, {
    workflowId,
    args: [request],
    staticSummary: `archive the model of run ${run.runId}`,
  });
  return {
    modelDir,
    datasetId,
    manifestCid: summary.manifestCid,
    rootCid: summary.rootCid,
    archiveWorkflowId: workflowId,
  };
}
