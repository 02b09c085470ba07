/**
 * replicateShards: the copies of one page of an archive's shards, as a child workflow of the
 * archive, so that no history grows with the dataset: the archive's grows with its pages, each
 * child's with its page (and it continues as new if failovers or waits make it long anyway).
 * Shards are read from the staging on the archive's host (its queue is in the input), in small
 * batches, as soon as they are durable: the pack may still be running. Placement, failover,
 * chain waits and the avoid list are those of the archive; every copy is journaled on the host by
 * the put, so a failed archive removes them from the journal. Returns counts only.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  proxyActivities,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { HostQueueActivities } from '../shared/activities.js';
import { NON_RETRYABLE_ERROR_TYPES as NON_RETRYABLE } from '../shared/errors.js';
import { nextProvider } from '../shared/placement.js';
import type { ProviderRef, ReplicatePageInput, ReplicatePageResult, ShardRef } from '../shared/types.js';

/** How many 30-second waits a stored-but-uncommitted piece gets before it counts as a failure. */
const CHAIN_WAITS = 20;
const PARALLEL_PUTS = 4;
/** Shards read from staging at a time. */
const READ_SHARDS = 32;
/** Failovers kept in the result (the count is exact). */
const MAX_FAILOVERS = 10;
/** Past this many events, the page continues as new with the shards not yet started. */
const HISTORY_SOFT_LIMIT = 8000;

export const shardFile = (index: number): string => `shard-${String(index).padStart(6, '0')}.car`;

export async function replicateShards(input: ReplicatePageInput): Promise<ReplicatePageResult> {
  const { stage, copies, policy } = input;
  const host = proxyActivities<HostQueueActivities>({
    taskQueue: input.hostQueue,
    startToCloseTimeout: '7 days',
    heartbeatTimeout: input.heartbeatTimeout,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { nonRetryableErrorTypes: [...NON_RETRYABLE], maximumInterval: '1 minute' },
  });
  const put = proxyActivities<HostQueueActivities>({
    taskQueue: input.hostQueue,
    startToCloseTimeout: '1 day',
    heartbeatTimeout: input.heartbeatTimeout,
    retry: {
      nonRetryableErrorTypes: [...NON_RETRYABLE],
      maximumAttempts: input.putAttempts,
      maximumInterval: '1 minute',
    },
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });

  const result: ReplicatePageResult = input.carried ?? {
    shards: 0,
    replicas: {},
    failoverCount: 0,
    failovers: [],
    avoid: input.avoid,
  };
  let avoid = new Set(result.avoid);

  const replicate = async (s: ShardRef): Promise<void> => {
    // "Stored, waiting for the chain" is not a provider failure: wait for it on the same provider.
    const putUntilCommitted = async (providerId: string, last: boolean) => {
      for (let wait = 0; ; wait++) {
        try {
          return await put.provenantPutPiece.executeWithOptions({ summary: `shard ${s.index} to ${providerId}` }, [
            { ...stage, file: shardFile(s.index), piece: s, providerId, last, shard: s.index },
          ]);
        } catch (err) {
          const pending =
            err instanceof ActivityFailure &&
            err.cause instanceof ApplicationFailure &&
            err.cause.type === 'CommitPendingError';
          if (!pending || wait >= CHAIN_WAITS) throw err;
          await sleep('30 seconds');
        }
      }
    };
    const placed: ProviderRef[] = [];
    const tried = new Set<string>();
    while (placed.length < copies) {
      const next = nextProvider(input.providers, policy, {
        slot: s.index,
        placed,
        tried,
        avoid,
        pieceBytes: s.bytes,
      });
      if (!next.provider) {
        throw ApplicationFailure.nonRetryable(
          `piece ${s.pieceCid}: only ${placed.length} of ${copies} copies placed; tried ${[...tried].join(', ') || 'none'}; unmet: ${next.unmet}`,
          'PolicyUnsatisfiableError',
        );
      }
      const provider = next.provider;
      tried.add(provider.id);
      try {
        // The last copy may take the staged file itself (nothing else reads it afterwards).
        await putUntilCommitted(provider.id, placed.length === copies - 1);
        placed.push(provider);
        result.replicas[provider.id] = (result.replicas[provider.id] ?? 0) + 1;
      } catch (err) {
        if (!(err instanceof ActivityFailure) || isCancellation(err)) throw err;
        result.failoverCount++;
        if (result.failovers.length < MAX_FAILOVERS)
          result.failovers.push({
            piece: s.pieceCid,
            providerId: provider.id,
            error: err.cause?.message ?? err.message,
          });
        avoid = new Set([...avoid, provider.id]);
      }
    }
    result.shards++;
  };

  // At most PARALLEL_PUTS shards being copied, all in one scope: a failure stops the others.
  const work = new CancellationScope();
  const queue: ShardRef[] = [];
  let running = 0;
  let failure: unknown;
  let draining = false;
  const pump = () => {
    while (running < PARALLEL_PUTS && queue.length > 0 && failure === undefined && !draining) {
      const s = queue.shift()!;
      running++;
      work
        .run(() => replicate(s))
        .catch((err: unknown) => {
          failure ??= err;
          work.cancel();
        })
        .finally(() => {
          running--;
          pump();
        });
    }
  };

  const end = input.from + input.count;
  let next = input.from;
  let exhausted = false;
  try {
    for (;;) {
      const more = !exhausted && next < end;
      if (failure !== undefined) break;
      if (workflowInfo().historyLength > HISTORY_SOFT_LIMIT) {
        // Long after all (failovers, chain waits): finish what runs, go on in a new run.
        draining = true;
        await condition(() => running === 0);
        if (failure !== undefined) break;
        const from = queue[0]?.index ?? next;
        if (from >= end || (!more && queue.length === 0)) break;
        await continueAsNew<typeof replicateShards>({
          ...input,
          from,
          count: end - from,
          carried: { ...result, avoid: [...avoid] },
        });
      }
      if (more && queue.length === 0) {
        // The next durable shards (waits while the pack makes them; none: the pack ended before them).
        const got = await work.run(() =>
          host.provenantShardPage({ ...stage, from: next, count: Math.min(READ_SHARDS, end - next), wait: true }),
        );
        if (got.length === 0) exhausted = true;
        next += got.length;
        queue.push(...got);
        pump();
        continue;
      }
      if (!more && queue.length === 0 && running === 0) break;
      await condition(() => failure !== undefined || (queue.length === 0 && (more || running === 0)));
    }
    if (failure !== undefined) throw failure;
  } catch (err) {
    work.cancel();
    await CancellationScope.nonCancellable(() => condition(() => running === 0));
    throw failure ?? err;
  }
  return { ...result, avoid: [...avoid] };
}
