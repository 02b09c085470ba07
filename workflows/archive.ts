/**
 * archiveDataset: ingest → pack → replicate N copies on distinct providers → manifest.
 * Only references (paths, CIDs, provider ids) pass through here; bytes stay on the host that
 * staged them, whose own task queue runs every activity that touches staged files.
 */
import {
  ActivityCancellationType, ActivityFailure, ApplicationFailure, CancellationScope, condition, defineQuery, defineSignal, isCancellation,
  ParentClosePolicy, proxyActivities, setHandler, sleep, startChild, workflowInfo,
} from '@temporalio/workflow';
import type { ProvenantActivities, ScanSummary, ShardRef, StageRef } from '../activities/index.js';
import type { PieceRef } from '../activities/providers/provider.js';
import { NON_RETRYABLE } from './failure-types.js';
import { checkSatisfiable, nextProvider, NO_POLICY } from './placement.js';
import { SHARDS_PACKED_SIGNAL, type ArchiveInput, type ArchiveProgress, type ArchiveRequestInput, type ArchiveSummary, type ProviderRef, type StewardReplica } from './types.js';
import type { PackResult } from '../activities/pack/packer.js';
import { stewardDataset, stewardWorkflowId } from './steward.js';

export const archiveProgressQuery = defineQuery<ArchiveProgress>('progress');
export const shardsPackedSignal = defineSignal<[ShardRef[]]>(SHARDS_PACKED_SIGNAL);

const SHARD_PAGE = 64;
/** How many 30-second waits a stored-but-uncommitted piece gets before it counts as a failure. */
const CHAIN_WAITS = 20;
const PARALLEL_PUTS = 4;

export async function archiveDataset(request: ArchiveInput | ArchiveRequestInput): Promise<ArchiveSummary> {
  const progress: ArchiveProgress = { stage: 'starting', shards: 0, shardsReplicated: 0 };
  setHandler(archiveProgressQuery, () => progress);

  const shared = proxyActivities<ProvenantActivities>({ startToCloseTimeout: '1 minute', retry: { nonRetryableErrorTypes: NON_RETRYABLE } });
  // A request naming only the dataset and its source is completed from the worker's config.
  const input: ArchiveInput = 'shardBytes' in request ? request : await shared.provenantArchiveInput(request);

  // A policy that cannot be met fails before anything is read or uploaded.
  const policy = input.policy ?? NO_POLICY;
  const unmet = checkSatisfiable(input.providers, policy, input.copies, input.shardBytes);
  if (unmet) throw ApplicationFailure.nonRetryable(`placement policy unsatisfiable: ${unmet}`, 'PolicyUnsatisfiableError');

  const hostQueue = await shared.provenantHostQueue();
  const host = proxyActivities<ProvenantActivities>({
    taskQueue: hostQueue,
    startToCloseTimeout: '7 days',
    heartbeatTimeout: input.heartbeatTimeout,
    // On failure or cancellation the staging is removed: wait until the activity has let go of it.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { nonRetryableErrorTypes: NON_RETRYABLE, maximumInterval: '1 minute' },
  });
  const put = proxyActivities<ProvenantActivities>({
    taskQueue: hostQueue,
    startToCloseTimeout: '1 day',
    // Puts heartbeat while they run: a put on a worker that died is retried after this, not after a day.
    heartbeatTimeout: input.heartbeatTimeout,
    retry: { nonRetryableErrorTypes: NON_RETRYABLE, maximumAttempts: input.putAttempts, maximumInterval: '1 minute' },
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });

  const stage: StageRef = { datasetId: input.datasetId, runKey: workflowInfo().runId.slice(0, 8) };

  // A remote source (S3 prefix, URLs) is first mirrored into this host's staging: scan and pack read the
  // mirror, the manifest records the original URI, and the staging cleanup removes the mirror.
  let sourcePath: string;
  let origin: { sourceKind: string; sourceUri: string } | undefined;
  if (input.source.kind === 'local') {
    sourcePath = input.source.path;
  } else {
    progress.stage = 'mirror';
    const mirror = await host.provenantMirror({ ...stage, source: input.source });
    sourcePath = mirror.mirrorPath;
    origin = { sourceKind: input.source.kind, sourceUri: mirror.uri };
  }
  progress.stage = 'scan';
  const scan: ScanSummary = await host.provenantScan({ ...stage, sourcePath });

  // Pack and replicate at once: the pack activity announces each shard as it closes, and its
  // copies are made while the next shards are packed. Every shard is read back from the finished
  // pack too, so a lost announcement only makes that shard wait for the end.
  progress.stage = 'pack';
  const replicas: Record<string, number> = {};
  const placements: StewardReplica[] = [];
  const created: { pieceCid: string; providerId: string }[] = [];
  const failovers: { piece: string; providerId: string; error: string }[] = [];
  // Health memory: providers that failed recently (on this host) are tried last.
  let avoid = new Set(await put.provenantCoolingProviders({ providerIds: input.providers.map((p) => p.id), cooldownMs: policy.cooldownMs }));
  const replicate = async (file: string, piece: PieceRef, slot: number, countAsShard = true, shard = -1): Promise<string[]> => {
    // "Stored, waiting for the chain" is not a provider failure: wait for it on the same provider.
    const putUntilCommitted = async (providerId: string, last: boolean) => {
      for (let wait = 0; ; wait++) {
        try {
          return await put.provenantPutPiece({ ...stage, file, piece, providerId, last });
        } catch (err) {
          const pending = err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === 'CommitPendingError';
          if (!pending || wait >= CHAIN_WAITS) throw err;
          await sleep('30 seconds');
        }
      }
    };
    const placed: string[] = [];
    const placedRefs: ProviderRef[] = [];
    const tried = new Set<string>();
    while (placed.length < input.copies) {
      const next = nextProvider(input.providers, policy, { slot, placed: placedRefs, tried, avoid, pieceBytes: piece.bytes });
      if (!next.provider) {
        throw ApplicationFailure.nonRetryable(
          `piece ${piece.pieceCid}: only ${placed.length} of ${input.copies} copies placed; tried ${[...tried].join(', ') || 'none'}; unmet: ${next.unmet}`,
          'PolicyUnsatisfiableError',
        );
      }
      const provider = next.provider;
      tried.add(provider.id);
      try {
        // The last copy may take the staged file itself (nothing else reads it afterwards).
        const where = await putUntilCommitted(provider.id, placed.length === input.copies - 1);
        placed.push(provider.id);
        placedRefs.push(provider);
        if (!where.existed) created.push({ pieceCid: piece.pieceCid, providerId: provider.id });
        placements.push({
          shard, pieceCid: piece.pieceCid, carCid: piece.carCid, rootCid: piece.rootCid, bytes: piece.bytes,
          providerId: provider.id, state: 'healthy', lastCheckedAt: where.storedAt, lastEvidence: where.evidence ?? 'stored and checked against its CAR CID',
          ...(where.expiresAt ? { expiresAt: where.expiresAt } : {}),
        });
        if (countAsShard) replicas[provider.id] = (replicas[provider.id] ?? 0) + 1;
      } catch (err) {
        if (!(err instanceof ActivityFailure) || isCancellation(err)) throw err;
        failovers.push({ piece: piece.pieceCid, providerId: provider.id, error: err.cause?.message ?? err.message });
        avoid = new Set([...avoid, provider.id]);
      }
    }
    return placed;
  };

  // Shards waiting for their copies, at most PARALLEL_PUTS of them being copied at a time, all in
  // one scope so that a failure anywhere stops the others.
  const work = new CancellationScope();
  const seen = new Set<number>();
  const queue: ShardRef[] = [];
  let running = 0;
  let failure: unknown;
  const pump = () => {
    while (running < PARALLEL_PUTS && queue.length > 0 && failure === undefined) {
      const s = queue.shift()!;
      running++;
      work
        .run(() => replicate(`shard-${String(s.index).padStart(6, '0')}.car`, s, s.index, true, s.index))
        .then(
          () => {
            progress.shardsReplicated++;
          },
          (err: unknown) => {
            failure ??= err;
          },
        )
        .finally(() => {
          running--;
          pump();
        });
    }
  };
  const offer = (shards: ShardRef[]) => {
    for (const s of shards) {
      if (seen.has(s.index)) continue;
      seen.add(s.index);
      queue.push(s);
    }
    pump();
  };
  setHandler(shardsPackedSignal, offer);

  // Anything that fails from here on stops the rest, and removes the copies this run made and its staging.
  let pack: PackResult;
  let manifest: PieceRef;
  let manifestProviders: string[];
  let packing: Promise<PackResult> | undefined;
  let writing: Promise<PieceRef> | undefined;
  const createdAt = input.createdAt ?? new Date(workflowInfo().startTime).toISOString();
  try {
    /** Waits for `done`, or throws the first replication failure. */
    const until = async (done: () => boolean) => {
      await condition(() => done() || failure !== undefined);
      if (failure !== undefined) throw failure;
    };
    packing = work.run(() => host.provenantPack({
      ...stage, sourcePath, shardBytes: input.shardBytes, announce: true,
      // Copies to providers on the staging filesystem are written while packing (twins), then moved in.
      replicas: { copies: input.copies, providerIds: input.providers.map((p) => p.id) },
    }));
    await Promise.race([packing, until(() => false)]);
    pack = await packing;
    progress.shards = pack.shards;
    progress.stage = 'replicate';
    for (let from = 0; from < pack.shards; from += SHARD_PAGE) {
      const count = Math.min(SHARD_PAGE, pack.shards - from);
      let announced = 0;
      for (let i = from; i < from + count; i++) if (seen.has(i)) announced++;
      if (announced < count) offer(await work.run(() => host.provenantShardPage({ ...stage, from, count })));
      // A dataset of many shards is paged in as copies finish.
      await until(() => queue.length < SHARD_PAGE);
    }
    // The manifest needs the finished pack, not the copies: it is written while the last ones are made.
    writing = work.run(() => host.provenantWriteManifest({
      ...stage, rootCid: pack.rootCid, sourcePath, meta: input.meta, createdAt, shardBytes: input.shardBytes, ...origin,
    }));
    writing.catch(() => undefined);
    await until(() => running === 0 && queue.length === 0);

    progress.stage = 'manifest';
    manifest = await writing;
    manifestProviders = await work.run(() => replicate('manifest.car', manifest, 0, false));
  } catch (err) {
    work.cancel();
    await CancellationScope.nonCancellable(async () => {
      await packing?.catch(() => undefined);
      await writing?.catch(() => undefined);
      await condition(() => running === 0);
      for (const c of created) await host.provenantRetirePiece(c);
      await host.provenantCleanup(stage);
    });
    throw err;
  }
  progress.stage = 'cleanup';
  await host.provenantCleanup(stage);

  // Hand the dataset to its steward for the rest of its life (outlives this workflow).
  let stewardId: string | undefined;
  if (input.steward) {
    stewardId = stewardWorkflowId(manifest.rootCid);
    try {
      await startChild(stewardDataset, {
        workflowId: stewardId,
        parentClosePolicy: ParentClosePolicy.ABANDON,
        args: [{
          datasetId: input.datasetId, manifestCid: manifest.rootCid, copies: input.copies, providers: input.providers, policy,
          settings: input.steward, replicas: placements, audit: { cid: null, seq: 0 }, rounds: 0, runs: 0,
          counters: { verifications: 0, repairs: 0, renewals: 0, retired: 0 },
        }],
        ...(input.steward.searchAttributes ? { searchAttributes: { ProvenantDataset: [input.datasetId], ProvenantHealth: ['healthy'] } } : {}),
      });
    } catch (err) {
      // The same dataset archived again with identical content (same manifest): its steward already runs.
      if (!(err instanceof Error && err.name === 'WorkflowExecutionAlreadyStartedError')) throw err;
    }
  }
  progress.stage = 'done';

  return {
    datasetId: input.datasetId,
    manifestCid: manifest.rootCid,
    manifestPieceCid: manifest.pieceCid,
    rootCid: pack.rootCid,
    files: pack.files,
    bytes: pack.bytes,
    shards: pack.shards,
    carBytes: pack.carBytes,
    copies: input.copies,
    replicas,
    manifestProviders,
    failovers: failovers.slice(0, 50),
    skippedSpecialFiles: scan.specials,
    createdAt,
    ...(stewardId ? { stewardWorkflowId: stewardId } : {}),
    pack: { shardsWritten: pack.shardsWritten, resumedFromShard: pack.resumedFromShard },
  };
}
