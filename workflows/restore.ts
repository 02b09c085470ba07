/** restoreDataset: locate the manifest, fetch healthy replicas, verify, write. */
import { proxyActivities } from '@temporalio/workflow';
import type { ProvenantActivities } from '../activities/index.js';
import type { RestoreSummary } from '../activities/restore/restore.js';
import { NON_RETRYABLE } from './failure-types.js';
import type { RestoreInput } from './types.js';

export async function restoreDataset(input: RestoreInput): Promise<RestoreSummary> {
  const { provenantRestore } = proxyActivities<ProvenantActivities>({
    ...(input.taskQueue ? { taskQueue: input.taskQueue } : {}),
    startToCloseTimeout: '7 days',
    heartbeatTimeout: input.heartbeatTimeout,
    retry: { nonRetryableErrorTypes: NON_RETRYABLE, maximumAttempts: 5 },
  });
  return provenantRestore({ manifestCid: input.manifestCid, target: input.target, force: input.force, providerIds: input.providerIds });
}
