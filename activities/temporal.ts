/**
 * Temporal plumbing shared by the stage factories: the error boundary, heartbeats, and the
 * pack's shard announcements. Nothing here knows a stage.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time.js';
import { SHARDS_PACKED_SIGNAL } from '../shared/api.js';
import type { ShardRef } from '../shared/types.js';
import { toFailure } from './errors.js';

/** Wrap an activity so typed errors reach Temporal as ApplicationFailures with their type. */
export function boundary<A extends unknown[], R>(fn: (...a: A) => Promise<R>): (...a: A) => Promise<R> {
  return async (...a: A) => {
    try {
      return await fn(...a);
    } catch (err) {
      throw toFailure(err);
    }
  };
}

/** Heartbeat at most every `ms`, always with the latest details (`force`: now). */
export function heartbeater(ms = 2000): (details: unknown, force?: boolean) => void {
  let last = 0;
  return (details, force = false) => {
    const now = Date.now();
    if (force || now - last >= ms) {
      last = now;
      Context.current().heartbeat(details);
    }
  };
}

/**
 * Heartbeat on a timer while `fn` runs (uploads and copies that report no progress of their own),
 * so that a worker that dies mid-transfer is noticed within the heartbeat timeout, not the
 * activity's whole start-to-close timeout.
 */
export async function whileBeating<T>(fn: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  const timeoutMs = ctx.info.heartbeatTimeoutMs;
  const timer = setInterval(() => ctx.heartbeat(), Math.max(200, Math.min(5000, (timeoutMs ?? 15_000) / 3)));
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/**
 * Sends closed shards to the workflow running this activity, one signal at a time with all that
 * closed meanwhile. Best effort: a lost signal only delays that shard's replication to the end.
 */
export function shardAnnouncer(ctx: Context): { add(shard: ShardRef): void; flush(): Promise<void> } {
  const wf = ctx.info.workflowExecution;
  let pending: ShardRef[] = [];
  let sending: Promise<void> | undefined;
  const send = async () => {
    while (wf && pending.length > 0) {
      const batch = pending;
      pending = [];
      try {
        await ctx.client.workflow.getHandle(wf.workflowId, wf.runId).signal(SHARDS_PACKED_SIGNAL, batch);
      } catch (err) {
        ctx.log.warn('could not announce packed shards; they replicate after packing', {
          error: (err as Error).message,
        });
      }
    }
    sending = undefined;
  };
  return {
    add(shard) {
      pending.push(shard);
      sending ??= send();
    },
    flush: async () => {
      await sending;
    },
  };
}

/** An attempt that fails sooner than this after it started continues the previous attempts' outage. */
const QUICK_FAILURE_MS = 60_000;

/**
 * Bound the retries of a stage that reads the source: while every attempt fails quickly with
 * SourceUnavailableError, the time of the first failure rides in the heartbeat details from one
 * attempt to the next; once the source has been unavailable for `limit`, the failure is final
 * (non-retryable, with the last reason), so an unreachable source fails the archive instead of
 * being retried for ever. An attempt that ran for a while before failing starts a new count.
 */
export async function untilSourceGivesUp<T>(limit: string, fn: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  const started = Date.now();
  const details = ctx.info.heartbeatDetails as Record<string, unknown> | undefined;
  const prev = typeof details?.sourceFailingSince === 'number' ? details.sourceFailingSince : undefined;
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof Error && err.name === 'SourceUnavailableError')) throw err;
    const now = Date.now();
    const since = prev !== undefined && now - started < QUICK_FAILURE_MS ? prev : now;
    const limitMs = msToNumber(limit as never);
    if (now - since >= limitMs)
      throw ApplicationFailure.create({
        type: 'SourceUnavailableError',
        nonRetryable: true,
        message: `source unavailable for ${Math.round((now - since) / 1000)} s, giving up (temporal.sourceUnavailableFor: ${limit}): ${err.message}`,
      });
    ctx.heartbeat({ ...(details ?? {}), sourceFailingSince: since });
    throw err;
  }
}
