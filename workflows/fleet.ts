/** fleetSweep: ask every running steward to verify now (run it from a Temporal Schedule). */
import { proxyActivities } from '@temporalio/workflow';
import type { SharedQueueActivities } from '../shared/activities.js';

const { provenantSweepStewards } = proxyActivities<SharedQueueActivities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '1 minute',
});

export async function fleetSweep(input: { health?: string } = {}): Promise<{ signalled: number }> {
  return provenantSweepStewards(input);
}
