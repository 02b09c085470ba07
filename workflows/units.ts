/**
 * packUnitsPage: one page of an archive's pack units (activities/pack/units.ts), as a child of
 * the archive, so that no history grows with the dataset. Its units run on the shared task
 * queue: any worker packs any unit, storing its shards' copies itself, and a unit whose worker
 * dies is retried by another once its heartbeat stops. The page's results are stored as one
 * block; only its CID and counts come back. A page that fails removes the copies its finished
 * units made before it fails (the archive removes those of the pages before it).
 */
import { ActivityCancellationType, CancellationScope, proxyActivities } from '@temporalio/workflow';
import type { SharedQueueActivities } from '../shared/activities.js';
import { NON_RETRYABLE_ERROR_TYPES as NON_RETRYABLE } from '../shared/errors.js';
import type { UnitsPageInput, UnitsPageResult } from '../shared/types.js';

export async function packUnitsPage(input: UnitsPageInput): Promise<UnitsPageResult> {
  const acts = proxyActivities<SharedQueueActivities>({
    startToCloseTimeout: '1 day',
    heartbeatTimeout: input.heartbeatTimeout,
    retry: { nonRetryableErrorTypes: [...NON_RETRYABLE], maximumInterval: '1 minute' },
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
  const results: string[] = [];
  let shards = 0;
  let bytes = 0;
  let next = 0;
  const scope = new CancellationScope();
  const lane = async () => {
    while (next < input.count) {
      const slot = next++;
      const r = await acts.provenantPackUnit.executeWithOptions({ summary: `pack unit ${slot}` }, [
        { ...input.unit, planPage: input.planPage, slot },
      ]);
      results[slot] = r.result;
      shards += r.shards;
      bytes += r.bytes;
    }
  };
  const lanes = Array.from({ length: Math.max(1, Math.min(input.parallel, input.count)) }, () => scope.run(lane));
  try {
    await Promise.all(lanes);
  } catch (err) {
    scope.cancel();
    await CancellationScope.nonCancellable(async () => {
      await Promise.allSettled(lanes);
      await acts.provenantRetireUnits({ results: results.filter((r) => !!r) });
    });
    throw err;
  }
  const result = await acts.provenantStoreResultPage({ results });
  return { result, shards, bytes };
}
