/** restoreDataset: locate the manifest, fetch healthy replicas, verify, write. */
import { proxyActivities } from '@temporalio/workflow';
import type { SharedQueueActivities } from '../shared/activities.js';
import { NON_RETRYABLE_ERROR_TYPES as NON_RETRYABLE } from '../shared/errors.js';
import type { RestoreInput, RestoreSummary } from '../shared/types.js';

export async function restoreDataset(input: RestoreInput): Promise<RestoreSummary> {
  const { provenantRestore } = proxyActivities<SharedQueueActivities>({
    ...(input.taskQueue ? { taskQueue: input.taskQueue } : {}),
    startToCloseTimeout: '7 days',
    heartbeatTimeout: input.heartbeatTimeout,
    retry: { nonRetryableErrorTypes: [...NON_RETRYABLE], maximumAttempts: 5 },
    summary: `restore ${input.manifestCid}`,
  });
  const { manifestCid, target, force, providerIds, paths } = input;
  return provenantRestore({ manifestCid, target, force, providerIds, ...(paths?.length ? { paths } : {}) });
}
