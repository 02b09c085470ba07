/**
 * archiveDataset: ingest → pack → replicate N copies on distinct providers → manifest → replica
 * table → steward. Only references (paths, CIDs, provider ids) pass through here; bytes stay on
 * the host that staged them, whose own task queue runs every activity that touches staged files.
 * Each stored copy is journaled by the put activity on that host; the replica table is built
 * from the journal, and the steward is handed its reference (never every replica).
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  condition,
  executeChild,
  isCancellation,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import type { HostQueueActivities, LineageRequest, SharedQueueActivities } from '../shared/activities.js';
import { archiveProgressQuery, replicateWorkflowId, shardsPackedSignal, stewardWorkflowId } from '../shared/api.js';
import { NON_RETRYABLE_ERROR_TYPES as NON_RETRYABLE } from '../shared/errors.js';
import type {
  ArchiveInput,
  ArchiveProgress,
  ArchiveRequestInput,
  ArchiveSummary,
  PackResult,
  PieceRef,
  ProviderRef,
  RemoteSource,
  ReplicaTableSummary,
  ScanSummary,
  ShardRef,
  StageRef,
  StewardReplica,
  StewardState,
} from '../shared/types.js';
import {
  REPLICA_PAGE_DEFAULT,
  REPLICATE_EVENT_BUDGET,
  REPLICATE_PAGE_DEFAULT,
  UNITS_PER_PAGE,
} from '../shared/types.js';
import { checkSatisfiable, nextProvider, NO_POLICY } from '../shared/placement.js';
import { replicateShards } from './replicate.js';
import { packUnitsPage } from './units.js';
import { stewardDataset } from './steward.js';

export { archiveProgressQuery, shardsPackedSignal };

const SHARD_PAGE = 64;
/** How many 30-second waits a stored-but-uncommitted piece gets before it counts as a failure. */
const CHAIN_WAITS = 20;
const PARALLEL_PUTS = 4;
/** Archives since the replica table: placements are journaled on the host, the steward gets the table's reference. */
export const ARCHIVE_TABLE_PATCH = 'provenant-archive-replica-table';
/**
 * Archives since the fan-out: each page of shards is copied by a child workflow (replicate.ts),
 * so that this history grows with pages and each child's with its page, not with the dataset.
 */
export const ARCHIVE_FANOUT_PATCH = 'provenant-archive-fanout';
/** Archives since a failed scan removes the staging it began. */
export const ARCHIVE_SCAN_CLEANUP_PATCH = 'provenant-archive-scan-cleanup';
/** A units archive that fails before any page is done still removes its run's call records. */
export const ARCHIVE_UNIT_RECORDS_PATCH = 'provenant-archive-unit-records';
/** Archives since remote sources are streamed by the pack (listed by the scan), not mirrored whole into staging. */
export const ARCHIVE_STREAM_PATCH = 'provenant-archive-stream';
/** Archives since they send OpenLineage run events (START, COMPLETE, FAIL) through provenantLineage. */
export const ARCHIVE_LINEAGE_PATCH = 'provenant-archive-lineage';
/** Events per shard in a replication child, about: a put per copy and a read, each with its workflow task. */
const EVENTS_PER_COPY = 7;
/** Units of a page packed at once, by any workers. */
const PARALLEL_UNITS = 4;
/** ipfs-car's leaf size, the default (config/schema.ts DEFAULT_CHUNK_BYTES). */
const DEFAULT_CHUNK = 1024 * 1024;
/** Failovers reported in the summary. */
const MAX_FAILOVERS = 50;

export async function archiveDataset(request: ArchiveInput | ArchiveRequestInput): Promise<ArchiveSummary> {
  // Histories from before OpenLineage run events replay without them.
  if (!patched(ARCHIVE_LINEAGE_PATCH)) return archiveRun(request);
  const { provenantLineage } = proxyActivities<SharedQueueActivities>({
    startToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 3 },
  });
  // A no-op unless the worker's config names an endpoint (telemetry.openLineage.url).
  const lineage = (r: LineageRequest) =>
    provenantLineage.executeWithOptions({ summary: `OpenLineage ${r.eventType} event` }, [r]);
  // Sent once the input is complete (a request naming only dataset and source is completed first).
  let run: Omit<LineageRequest, 'eventType'> | undefined;
  try {
    const summary = await archiveRun(request, async (input) => {
      run = { datasetId: input.datasetId, source: input.source };
      if (input.derivedFrom?.length) run.derivedFrom = input.derivedFrom;
      await lineage({ eventType: 'START', ...run });
    });
    if (run) await lineage({ eventType: 'COMPLETE', ...run, manifestCid: summary.manifestCid });
    return summary;
  } catch (err) {
    const started = run;
    if (started)
      await CancellationScope.nonCancellable(() =>
        lineage({ eventType: 'FAIL', ...started, error: (err as Error).message }),
      ).catch(() => undefined);
    throw err;
  }
}

async function archiveRun(
  request: ArchiveInput | ArchiveRequestInput,
  onInput?: (input: ArchiveInput) => Promise<void>,
): Promise<ArchiveSummary> {
  const progress: ArchiveProgress = { stage: 'starting', shards: 0, shardsReplicated: 0 };
  setHandler(archiveProgressQuery, () => progress);
  // Histories from before the replica table replay without it (they kept every placement here).
  const journaled = patched(ARCHIVE_TABLE_PATCH);
  // Histories from before the fan-out replay the copies made here, shard by shard.
  const fanout = journaled && patched(ARCHIVE_FANOUT_PATCH);

  const shared = proxyActivities<SharedQueueActivities>({
    startToCloseTimeout: '1 minute',
    retry: { nonRetryableErrorTypes: [...NON_RETRYABLE] },
  });
  // A request naming only the dataset and its source is completed from the worker's config.
  const input: ArchiveInput = 'shardBytes' in request ? request : await shared.provenantArchiveInput(request);
  await onInput?.(input);

  // A policy that cannot be met fails before anything is read or uploaded.
  const policy = input.policy ?? NO_POLICY;
  const unmet = checkSatisfiable(input.providers, policy, input.copies, input.shardBytes);
  if (unmet)
    throw ApplicationFailure.nonRetryable(`placement policy unsatisfiable: ${unmet}`, 'PolicyUnsatisfiableError');

  const hostQueue = await shared.provenantHostQueue();
  const host = proxyActivities<HostQueueActivities>({
    taskQueue: hostQueue,
    startToCloseTimeout: '7 days',
    heartbeatTimeout: input.heartbeatTimeout,
    // On failure or cancellation the staging is removed: wait until the activity has let go of it.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { nonRetryableErrorTypes: [...NON_RETRYABLE], maximumInterval: '1 minute' },
  });
  const put = proxyActivities<HostQueueActivities>({
    taskQueue: hostQueue,
    startToCloseTimeout: '1 day',
    // Puts heartbeat while they run: a put on a worker that died is retried after this, not after a day.
    heartbeatTimeout: input.heartbeatTimeout,
    retry: {
      nonRetryableErrorTypes: [...NON_RETRYABLE],
      maximumAttempts: input.putAttempts,
      maximumInterval: '1 minute',
    },
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });

  // Packed in units: activities any worker runs, for as long as a unit or the stitch takes.
  const anywhere = proxyActivities<SharedQueueActivities>({
    startToCloseTimeout: '7 days',
    heartbeatTimeout: input.heartbeatTimeout,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { nonRetryableErrorTypes: [...NON_RETRYABLE], maximumInterval: '1 minute' },
  });

  const stage: StageRef = { datasetId: input.datasetId, runKey: workflowInfo().runId.slice(0, 8) };

  // A remote source (S3 prefix, URLs) is listed, and the pack streams each object from it: nothing
  // is staged but the shards, and the manifest records the source's URI. Histories from before that
  // mirrored it whole into this host's staging first (scan and pack read the mirror).
  let sourcePath: string;
  let remote: RemoteSource | undefined;
  let origin: { sourceKind: string; sourceUri: string } | undefined;
  let scan: ScanSummary;
  try {
    if (input.source.kind === 'local') {
      sourcePath = input.source.path;
      progress.stage = 'scan';
      scan = await host.provenantScan.executeWithOptions({ summary: `scan ${sourcePath}` }, [{ ...stage, sourcePath }]);
    } else if (patched(ARCHIVE_STREAM_PATCH)) {
      remote = input.source;
      progress.stage = 'scan';
      scan = await host.provenantScan.executeWithOptions({ summary: `list the ${remote.kind} source` }, [
        { ...stage, source: remote },
      ]);
      sourcePath = scan.uri ?? '';
      origin = { sourceKind: remote.kind, sourceUri: scan.uri ?? '' };
    } else {
      progress.stage = 'mirror';
      const mirror = await host.provenantMirror.executeWithOptions(
        { summary: `mirror the ${input.source.kind} source` },
        [{ ...stage, source: input.source }],
      );
      sourcePath = mirror.mirrorPath;
      origin = { sourceKind: input.source.kind, sourceUri: mirror.uri };
      progress.stage = 'scan';
      scan = await host.provenantScan.executeWithOptions({ summary: `scan ${sourcePath}` }, [{ ...stage, sourcePath }]);
    }
  } catch (err) {
    // Nothing is stored yet: only the staging the scan began goes (archives since this patch).
    if (patched(ARCHIVE_SCAN_CLEANUP_PATCH)) await CancellationScope.nonCancellable(() => host.provenantCleanup(stage));
    throw err;
  }

  // Pack and replicate at once: the pack activity announces each shard as it closes, and its
  // copies are made while the next shards are packed. Every shard is read back from the finished
  // pack too, so a lost announcement only makes that shard wait for the end.
  progress.stage = 'pack';
  const replicas: Record<string, number> = {};
  /** Only before the replica table: every placement, for the steward's input (now journaled on the host). */
  const placements: StewardReplica[] = [];
  const created: { pieceCid: string; providerId: string }[] = [];
  const failovers: { piece: string; providerId: string; error: string }[] = [];
  // Health memory: providers that failed recently (on this host) are tried last.
  let avoid = new Set(
    await put.provenantCoolingProviders({
      providerIds: input.providers.map((p) => p.id),
      cooldownMs: policy.cooldownMs,
    }),
  );
  const replicate = async (
    file: string,
    piece: PieceRef,
    slot: number,
    countAsShard = true,
    shard = -1,
  ): Promise<string[]> => {
    // "Stored, waiting for the chain" is not a provider failure: wait for it on the same provider.
    const putUntilCommitted = async (providerId: string, last: boolean) => {
      for (let wait = 0; ; wait++) {
        try {
          return await put.provenantPutPiece({ ...stage, file, piece, providerId, last, shard });
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
    const placed: string[] = [];
    const placedRefs: ProviderRef[] = [];
    const tried = new Set<string>();
    while (placed.length < input.copies) {
      const next = nextProvider(input.providers, policy, {
        slot,
        placed: placedRefs,
        tried,
        avoid,
        pieceBytes: piece.bytes,
      });
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
        if (!where.existed && !journaled) created.push({ pieceCid: piece.pieceCid, providerId: provider.id });
        if (!journaled)
          placements.push({
            shard,
            pieceCid: piece.pieceCid,
            carCid: piece.carCid,
            rootCid: piece.rootCid,
            bytes: piece.bytes,
            providerId: provider.id,
            state: 'healthy',
            lastCheckedAt: where.storedAt,
            lastEvidence: where.evidence ?? 'stored and checked against its CAR CID',
            ...(where.expiresAt ? { expiresAt: where.expiresAt } : {}),
            ...(where.commitment ? { commitment: where.commitment } : {}),
          });
        if (countAsShard) replicas[provider.id] = (replicas[provider.id] ?? 0) + 1;
      } catch (err) {
        if (!(err instanceof ActivityFailure) || isCancellation(err)) throw err;
        if (failovers.length < MAX_FAILOVERS)
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
  let manifest!: PieceRef;
  let manifestProviders!: string[];
  let table: ReplicaTableSummary | undefined;
  let packing: Promise<PackResult> | undefined;
  let writing: Promise<PieceRef> | undefined;
  let paging: Promise<void> | undefined;
  /** Packed in units: the result pages of the unit pages done (a failure removes their copies). */
  const unitPages: string[] = [];
  /** Packed in units: the plan's pages (a failure removes the run's call records, named by them). */
  let planPages: string[] = [];
  let stitched = false;
  const createdAt = input.createdAt ?? new Date(workflowInfo().startTime).toISOString();
  /** Parent manifests (lineage), passed on to the manifest only when there are any. */
  const lineage = input.derivedFrom?.length ? { derivedFrom: input.derivedFrom } : {};
  try {
    /** Waits for `done`, or throws the first replication failure. */
    const until = async (done: () => boolean) => {
      await condition(() => done() || failure !== undefined);
      if (failure !== undefined) throw failure;
    };
    if (input.unitShards && journaled) {
      // Packed in units that any worker runs (activities/pack/units.ts): plan on the scanning host,
      // a child per page of units, then the stitch (inner nodes, manifest, replica table) anywhere.
      progress.stage = 'plan';
      const unitShards = input.unitShards;
      const chunkBytes = input.chunkBytes ?? DEFAULT_CHUNK;
      const plan = await work.run(() =>
        host.provenantPlanUnits({
          ...stage,
          shardBytes: input.shardBytes,
          chunkBytes,
          unitShards,
          providerIds: input.providers.map((p) => p.id),
        }),
      );
      planPages = plan.planPages;
      // The listing has served: nothing else runs on the scanning host, which may go away now.
      await work.run(() => host.provenantCleanup(stage));
      progress.stage = 'pack';
      progress.shards = plan.shards;
      const unit = {
        ...stage,
        shardBytes: input.shardBytes,
        chunkBytes,
        sourcePath,
        ...(remote ? { source: remote } : {}),
        copies: input.copies,
        providers: input.providers,
        policy,
      };
      const archiveId = workflowInfo().workflowId;
      for (const [p, planPage] of plan.planPages.entries()) {
        const r = await work.run(() =>
          executeChild(packUnitsPage, {
            workflowId: `${archiveId}/units-${p}`,
            staticSummary: `pack units, page ${p}`,
            args: [
              {
                unit,
                planPage,
                count: Math.min(UNITS_PER_PAGE, plan.units - p * UNITS_PER_PAGE),
                parallel: PARALLEL_UNITS,
                heartbeatTimeout: input.heartbeatTimeout,
              },
            ],
          }),
        );
        unitPages.push(r.result);
        progress.shardsReplicated += r.shards;
      }
      progress.stage = 'manifest';
      const st = await work.run(() =>
        anywhere.provenantStitch.executeWithOptions({ summary: 'stitch the units: tree shards and manifest' }, [
          {
            ...unit,
            planPages: plan.planPages,
            resultPages: unitPages,
            dataShards: plan.shards,
            manifest: {
              meta: input.meta,
              ...lineage,
              createdAt,
              sourceKind: origin?.sourceKind ?? 'local',
              sourceUri: origin?.sourceUri ?? `file://${sourcePath}`,
              host: plan.host,
            },
            ...(input.steward
              ? {
                  table: {
                    pageReplicas: input.steward.pageReplicas ?? REPLICA_PAGE_DEFAULT,
                    providerIds: input.providers.map((p) => p.id),
                  },
                }
              : {}),
          },
        ]),
      );
      stitched = true;
      // The manifest holds what the plan and the units' results said: their blocks go.
      await work.run(() =>
        anywhere.provenantDropUnitBlocks({ planPages: plan.planPages, resultPages: unitPages, runKey: stage.runKey }),
      );
      pack = {
        rootCid: st.rootCid,
        shards: st.shards,
        files: st.files,
        bytes: st.bytes,
        carBytes: st.carBytes,
        shardsWritten: st.shards,
        resumedFromShard: 0,
      };
      progress.shards = st.shards;
      for (const [id, n] of Object.entries(st.replicas)) replicas[id] = (replicas[id] ?? 0) + n;
      manifest = st.manifest;
      manifestProviders = st.manifestProviders;
      table = st.table;
    } else if (fanout) {
      // Pages of shards, one child each, one child at a time (at most PARALLEL_PUTS shards being
      // copied, as before): a child reads its shards as the pack makes them, so copies overlap
      // packing (and a pack with a staging window, which waits for copies, never waits for a page).
      const pageShards = Math.max(
        1,
        Math.min(
          input.replicatePageShards ?? REPLICATE_PAGE_DEFAULT,
          Math.floor(REPLICATE_EVENT_BUDGET / (EVENTS_PER_COPY * (input.copies + 1))),
        ),
      );
      let total: number | undefined;
      packing = work.run(() =>
        host.provenantPack.executeWithOptions({ summary: `pack ${input.datasetId} into CAR shards` }, [
          {
            ...stage,
            sourcePath,
            ...(remote ? { source: remote } : {}),
            shardBytes: input.shardBytes,
            ...(input.chunkBytes ? { chunkBytes: input.chunkBytes } : {}),
            replicas: { copies: input.copies, providerIds: input.providers.map((p) => p.id) },
          },
        ]),
      );
      const packed = packing.then((p) => {
        total = p.shards;
        progress.shards = p.shards;
        progress.stage = 'replicate';
        // The manifest needs the finished pack, not the copies: it is written while the last ones are made.
        writing = work.run(() =>
          host.provenantWriteManifest.executeWithOptions({ summary: 'write the manifest' }, [
            {
              ...stage,
              rootCid: p.rootCid,
              sourcePath,
              meta: input.meta,
              ...lineage,
              createdAt,
              shardBytes: input.shardBytes,
              ...(input.chunkBytes ? { chunkBytes: input.chunkBytes } : {}),
              ...origin,
            },
          ]),
        );
        writing.catch(() => undefined);
        return p;
      });
      paging = work.run(async () => {
        const archiveId = workflowInfo().workflowId;
        for (let page = 0; total === undefined || page * pageShards < total; page++) {
          const r = await executeChild(replicateShards, {
            workflowId: replicateWorkflowId(archiveId, page),
            staticSummary: `copy shards of page ${page} to ${input.copies} providers`,
            args: [
              {
                stage,
                hostQueue,
                from: page * pageShards,
                count: pageShards,
                copies: input.copies,
                providers: input.providers,
                policy,
                putAttempts: input.putAttempts,
                heartbeatTimeout: input.heartbeatTimeout,
                avoid: [...avoid],
              },
            ],
          });
          for (const [id, n] of Object.entries(r.replicas)) replicas[id] = (replicas[id] ?? 0) + n;
          for (const f of r.failovers) if (failovers.length < MAX_FAILOVERS) failovers.push(f);
          avoid = new Set(r.avoid);
          progress.shardsReplicated += r.shards;
          // Fewer than a page: the pack ended within it.
          if (r.shards < pageShards) break;
        }
      });
      [pack] = await Promise.all([packed, paging]);
    } else {
      packing = work.run(() =>
        host.provenantPack.executeWithOptions({ summary: `pack ${input.datasetId} into CAR shards` }, [
          {
            ...stage,
            sourcePath,
            ...(remote ? { source: remote } : {}),
            shardBytes: input.shardBytes,
            announce: true,
            // Copies to providers on the staging filesystem are written while packing (twins), then moved in.
            replicas: { copies: input.copies, providerIds: input.providers.map((p) => p.id) },
          },
        ]),
      );
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
      writing = work.run(() =>
        host.provenantWriteManifest.executeWithOptions({ summary: 'write the manifest' }, [
          {
            ...stage,
            rootCid: pack.rootCid,
            sourcePath,
            meta: input.meta,
            ...lineage,
            createdAt,
            shardBytes: input.shardBytes,
            ...origin,
          },
        ]),
      );
      writing.catch(() => undefined);
      await until(() => running === 0 && queue.length === 0);
    }

    if (!stitched) {
      progress.stage = 'manifest';
      manifest = await (writing as Promise<PieceRef>); // set in both paths (in a callback in the fan-out one)
      manifestProviders = await work.run(() => replicate('manifest.car', manifest, 0, false));
    }
    if (journaled && input.steward && !stitched) {
      // Every copy, from the journal on this host, into the dataset's replica table (on its providers).
      const pageReplicas = input.steward.pageReplicas ?? REPLICA_PAGE_DEFAULT;
      const manifestCid = manifest.rootCid;
      table = await work.run(() =>
        host.provenantBuildReplicaTable.executeWithOptions({ summary: 'build the replica table' }, [
          {
            ...stage,
            manifestCid,
            providerIds: input.providers.map((p) => p.id),
            pageReplicas,
          },
        ]),
      );
    }
  } catch (err) {
    work.cancel();
    await CancellationScope.nonCancellable(async () => {
      await packing?.catch(() => undefined);
      await writing?.catch(() => undefined);
      await paging?.catch(() => undefined);
      await condition(() => running === 0);
      // Nothing this run stored is left untracked: the copies it created are removed.
      if (unitPages.length > 0 || (planPages.length > 0 && patched(ARCHIVE_UNIT_RECORDS_PATCH)))
        await anywhere.provenantRetireUnits({ resultPages: unitPages, planPages, runKey: stage.runKey });
      if (journaled) await host.provenantRetireJournaled(stage);
      for (const c of created) await host.provenantRetirePiece(c);
      await host.provenantCleanup(stage);
    });
    // A page's failure surfaces as the archive's own (PolicyUnsatisfiableError…), not as "child failed".
    throw err instanceof ChildWorkflowFailure && err.cause instanceof ApplicationFailure ? err.cause : err;
  }
  if (!journaled) {
    progress.stage = 'cleanup';
    await host.provenantCleanup(stage);
  }

  // Hand the dataset to its steward for the rest of its life (outlives this workflow).
  let stewardId: string | undefined;
  if (input.steward) {
    stewardId = stewardWorkflowId(manifest.rootCid);
    const start: StewardState = {
      datasetId: input.datasetId,
      manifestCid: manifest.rootCid,
      copies: input.copies,
      providers: input.providers,
      policy,
      settings: input.steward,
      ...(journaled ? { table } : { replicas: placements }),
      audit: { cid: null, seq: 0 },
      rounds: 0,
      runs: 0,
      counters: { verifications: 0, repairs: 0, renewals: 0, retired: 0 },
    };
    try {
      await startChild(stewardDataset, {
        workflowId: stewardId,
        staticSummary: `steward of ${input.datasetId}: verify, renew, repair`,
        parentClosePolicy: ParentClosePolicy.ABANDON,
        args: [start],
        ...(input.steward.searchAttributes
          ? { searchAttributes: { ProvenantDataset: [input.datasetId], ProvenantHealth: ['healthy'] } }
          : {}),
      });
    } catch (err) {
      // The same dataset archived again with identical content (same manifest): its steward already runs.
      if (!(err instanceof Error && err.name === 'WorkflowExecutionAlreadyStartedError')) {
        if (!journaled) throw err;
        // No steward to hand the copies to: remove what this run stored, and say so.
        const removed = await CancellationScope.nonCancellable(async () => {
          const r = await host.provenantRetireJournaled(stage);
          await host.provenantCleanup(stage);
          return r;
        });
        throw ApplicationFailure.nonRetryable(
          `the steward could not be started (${err instanceof Error ? err.message : String(err)}); removed the ${removed.retired} copies this run stored` +
            (removed.failed ? `, ${removed.failed} could not be removed` : ''),
          'StoreError',
        );
      }
    }
  }
  // (Packed in units, the scanning host's staging went after the plan.)
  if (journaled && !input.unitShards) {
    progress.stage = 'cleanup';
    await host.provenantCleanup(stage);
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
