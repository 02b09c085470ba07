/**
 * rehomeProviders: move every dataset's replicas off providers (`provenant rehome`). It pages
 * through the running stewards (a visibility query, one page per checkpoint) and asks each to
 * evacuate; the steward carries it out in its next round (verify → copy elsewhere from a healthy
 * replica under the dataset's placement policy → verify the new copy → retire the old one, each
 * step audited in the dataset's log). The workflow only keeps counts and the next page's token,
 * and continues as new every few pages, so its history stays bounded for any number of
 * datasets; a rehome run again attaches to the running one, or starts over (each steward's part
 * is idempotent: one already done answers at once).
 */
import { ActivityFailure, continueAsNew, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { SharedQueueActivities } from '../shared/activities.js';
import { rehomeProgressQuery } from '../shared/api.js';
import type { EvacuationState, RehomeInput, RehomeProgress } from '../shared/types.js';

export { rehomeProgressQuery };

const { provenantListStewards } = proxyActivities<SharedQueueActivities>({
  startToCloseTimeout: '5 minutes',
  retry: { maximumInterval: '1 minute' },
});
// A steward's part waits for its round: long, but it heartbeats while it waits.
const { provenantEvacuateSteward } = proxyActivities<SharedQueueActivities>({
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '1 minute',
  retry: { maximumAttempts: 5, maximumInterval: '10 minutes' },
});

/** Datasets listed as not done, at most. */
const MAX_INCOMPLETE = 100;

export function startProgress(now: number): RehomeProgress {
  return {
    startedAt: new Date(now).toISOString(),
    pages: 0,
    runs: 0,
    datasets: 0,
    completed: 0,
    moved: 0,
    remaining: 0,
    skipped: 0,
    failed: 0,
    incomplete: [],
    done: false,
  };
}

export type StewardOutcome =
  { datasetId?: string; state?: EvacuationState; skipped?: string } | { error: string; datasetId?: undefined };

/** Add one steward's outcome to the progress (pure). */
export function recordOutcome(p: RehomeProgress, workflowId: string, o: StewardOutcome): void {
  const note = (why: string) => {
    if (p.incomplete.length < MAX_INCOMPLETE)
      p.incomplete.push({ workflowId, ...(o.datasetId ? { datasetId: o.datasetId } : {}), why });
  };
  if ('error' in o) {
    p.failed++;
    note(o.error);
    return;
  }
  if (o.skipped || !o.state) {
    p.skipped++;
    return;
  }
  p.datasets++;
  p.moved += o.state.moved;
  p.remaining += o.state.remaining;
  if (o.state.completedAt) p.completed++;
  else note(`${o.state.remaining} replicas still on ${o.state.from.join('/')}; its steward tries again each round`);
}

/** `ids` in groups of at most `n`, in order (pure). */
export function batches<T>(ids: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < ids.length; i += Math.max(1, n)) out.push(ids.slice(i, i + Math.max(1, n)));
  return out;
}

export async function rehomeProviders(input: RehomeInput): Promise<RehomeProgress> {
  const p = input.progress ?? startProgress(Date.now());
  setHandler(rehomeProgressQuery, () => p);
  for (let pagesThisRun = 0; ;) {
    const page = await provenantListStewards({
      pageSize: input.pageSize,
      ...(p.pageToken ? { pageToken: p.pageToken } : {}),
    });
    for (const batch of batches(page.workflowIds, input.concurrency)) {
      const outcomes = await Promise.all(
        batch.map((workflowId) =>
          provenantEvacuateSteward({ workflowId, from: input.from, ...(input.to ? { to: input.to } : {}) }).catch(
            (err: unknown): StewardOutcome => {
              if (!(err instanceof ActivityFailure)) throw err;
              return { error: err.cause?.message ?? err.message };
            },
          ),
        ),
      );
      outcomes.forEach((o, i) => recordOutcome(p, batch[i]!, o));
    }
    p.pages++;
    pagesThisRun++;
    if (!page.nextPageToken) break;
    p.pageToken = page.nextPageToken;
    if (workflowInfo().continueAsNewSuggested || pagesThisRun >= input.pagesPerRun)
      return continueAsNew<typeof rehomeProviders>({ ...input, progress: { ...p, runs: p.runs + 1 } });
  }
  delete p.pageToken;
  p.done = true;
  return p;
}
