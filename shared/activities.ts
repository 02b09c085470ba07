/**
 * The activity contract: what each Provenant activity takes and returns, split by the queue it
 * runs on. Workflows proxy these interfaces (so a host-bound activity can only be called through
 * a host-queue proxy); activities/ implements them (`satisfies`), and the worker registers each
 * set only on its own queue. Inputs and results are JSON: references, never bytes or secrets.
 */
import type {
  AuditCheckRequest,
  AuditCheckResult,
  ArchiveInput,
  ArchiveRequestInput,
  MirrorSummary,
  PackResult,
  PieceRef,
  Placement,
  PlacementPolicyInput,
  ProviderRef,
  RemoteSource,
  ReplicaRef,
  ReplicaTableSummary,
  RestoreSummary,
  PlanSummary,
  ScanSummary,
  StitchRequest,
  StitchResult,
  UnitRequest,
  UnitSummary,
  ShardPiece,
  ShardRef,
  StageRef,
  StewardReplica,
  StewardSettings,
  TimedAuditEvent,
  VerifyResult,
  DeletionSummary,
  EvacuationState,
} from './types.js';

export interface PackRequest extends StageRef {
  sourcePath: string;
  /** A remote source the pack streams each file from (its scan listed it); `sourcePath` is then unused. */
  source?: RemoteSource;
  shardBytes: number;
  /** Signal each shard to the calling workflow as soon as it is durable. */
  announce?: boolean;
  /** The copies to be made and the providers they may go to (twins are written for local ones). */
  replicas?: { copies: number; providerIds: string[] };
  /** UnixFS leaf size (default 1 MiB). */
  chunkBytes?: number;
}

export interface PutRequest extends StageRef {
  /** The staged file's name (its directory is the run's staging). */
  file: string;
  piece: PieceRef;
  providerId: string;
  /** No other copy will be made from this staged file: the provider may take it. */
  last?: boolean;
  /** The piece's shard index (-1: not a shard, e.g. the manifest), recorded in the placement journal. */
  shard?: number;
}

/** Build the replica table of an archive run from the placements its puts journaled on this host. */
export interface BuildTableRequest extends StageRef {
  manifestCid: string;
  /** Providers the table's blocks are stored on (those that accept them). */
  providerIds: string[];
  pageReplicas: number;
}

/** A replica table from a list (a steward started before the replica table converts its state). */
export interface TableFromListRequest {
  datasetId: string;
  manifestCid: string;
  replicas: StewardReplica[];
  providerIds: string[];
  pageReplicas: number;
}

/**
 * One slice of a steward round: pages [from, from + count) of the table `tableCid` are verified,
 * renewed, repaired and retired as one round does for every replica; their audit events are
 * appended; the pages and a new root are stored. The result names the new table and where the
 * next slice starts (a repaired page may have been split in two).
 */
export interface StewardPagesRequest {
  datasetId: string;
  manifestCid: string;
  tableCid: string;
  from: number;
  count: number;
  pageReplicas: number;
  copies: number;
  providers: ProviderRef[];
  policy: PlacementPolicyInput;
  settings: Pick<StewardSettings, 'renewWindowMs' | 'unreachableGraceMs' | 'detectionProbability' | 'lossFraction'>;
  /** Seed of the round's spot checks (replayable choice of blocks). */
  seed: string;
  /** The round's time (ms), from the workflow. */
  now: number;
  /** Providers found unreachable earlier in this round. */
  down: string[];
  audit: { cid: string | null; seq: number };
  /** Audit events that no provider could take yet: appended first. */
  pendingEvents?: TimedAuditEvent[];
  /** Providers to store table blocks and audit records on (those that answered). */
  storeOn: string[];
}

export interface StewardPagesResult {
  table: ReplicaTableSummary;
  /** Page index in `table` where the next slice starts. */
  next: number;
  audit: { cid: string | null; seq: number };
  /** Events no provider took (to be appended with the next ones). */
  unaudited?: TimedAuditEvent[];
  checked: number;
  healthy: number;
  challenges: number;
  /** Lowest detection probability among healthy replicas checked (1 when none). */
  minProbability: number;
  /** Providers found unreachable (so far in this round, including `down`). */
  down: string[];
  counters: { repairs: number; renewals: number; retired: number };
}

/**
 * One slice of a steward's evacuation pass (provenant rehome): in pages [from, from + count),
 * each piece with a copy on `evacuate` gets new copies elsewhere (from a healthy replica, under
 * the placement policy), each new copy is verified, and only then the old copies are retired.
 */
export interface EvacuatePagesRequest extends StewardPagesRequest {
  evacuate: string[];
  /** Only these take new copies (absent: any provider in `providers`). */
  to?: string[];
}

export interface EvacuatePagesResult {
  table: ReplicaTableSummary;
  next: number;
  audit: { cid: string | null; seq: number };
  unaudited?: TimedAuditEvent[];
  moved: number;
  remaining: number;
  repairs: number;
  retired: number;
  down: string[];
}

/** Delete every replica of a retired dataset and its replica table's blocks (idempotent, resumable). */
export interface DeleteDatasetRequest {
  manifestCid: string;
  tableCid: string | null;
  /** Every provider the dataset used (table blocks are looked for on each). */
  providerIds: string[];
}

export interface ManifestRequest extends StageRef {
  rootCid: string;
  sourcePath: string;
  meta: Record<string, string>;
  createdAt: string;
  shardBytes: number;
  /** The leaf size the pack used (default 1 MiB), recorded in the manifest's layout. */
  chunkBytes?: number;
  /** The original source of a mirrored tree (`s3://…`, URLs), recorded instead of the mirror's path. */
  sourceKind?: string;
  sourceUri?: string;
  /** Manifest CIDs of the datasets or models this one derives from (lineage), when any. */
  derivedFrom?: string[];
}

/** One OpenLineage run event of the calling archive (activities/lineage/lineage.ts). */
export interface LineageRequest {
  eventType: 'START' | 'COMPLETE' | 'FAIL';
  datasetId: string;
  source: ArchiveInput['source'];
  derivedFrom?: string[];
  /** COMPLETE: the archive's manifest. */
  manifestCid?: string;
  /** FAIL: why. */
  error?: string;
}

export interface RestoreRequest {
  manifestCid: string;
  target: string;
  force: boolean;
  providerIds?: string[];
  /** Restore only these files or directory prefixes (all when absent). */
  paths?: string[];
}

export interface VerifyRequest {
  manifestCid: string;
  replicas: ReplicaRef[];
  seed: string;
  probability: number;
  lossFraction: number;
}

export interface PieceAtProvider {
  pieceCid: string;
  providerId: string;
}

export interface AppendAuditRequest {
  datasetId: string;
  prev: { cid: string | null; seq: number };
  events: TimedAuditEvent[];
  providerIds: string[];
}

/** Activities that run on any worker of the shared task queue. */
export interface SharedQueueActivities {
  /** The task queue of the host that answers (where its staged work must run). */
  provenantHostQueue(): Promise<string>;
  /** A full archive input from a request that names only the dataset and its source. */
  provenantArchiveInput(r: ArchiveRequestInput): Promise<ArchiveInput>;
  provenantRestore(r: RestoreRequest): Promise<RestoreSummary>;
  /** Send an OpenLineage run event when `telemetry.openLineage.url` is configured (best effort). */
  provenantLineage(r: LineageRequest): Promise<{ sent: boolean }>;
  /** Pack one unit of a plan on this worker, store its shards' copies, and store its result (pack.unitShards). */
  provenantPackUnit(r: UnitRequest): Promise<UnitSummary>;
  /** Store a page's unit results (their CIDs, in plan order) as one block; its CID. */
  provenantStoreResultPage(r: { results: string[] }): Promise<string>;
  /** Build the DAG's inner nodes from the units' leaves, the manifest and the replica table. */
  provenantStitch(r: StitchRequest): Promise<StitchResult>;
  /** Remove the copies that units (their results, or whole result pages) created: an archive that fails. */
  provenantRetireUnits(r: {
    results?: string[];
    resultPages?: string[];
    /** The run and its plan, whose call records (units.ts UNIT_RUN, STITCH_RUN) go too. */
    runKey?: string;
    planPages?: string[];
  }): Promise<{ retired: number; failed: number }>;
  /** Delete an archive's plan and result blocks (and, given its run, the run's call records) from the providers once its manifest is stored. */
  provenantDropUnitBlocks(r: {
    planPages: string[];
    resultPages: string[];
    runKey?: string;
  }): Promise<{ dropped: number }>;
  /** Spot-check replicas against the block index recorded at archive time. */
  provenantVerifyReplicas(r: VerifyRequest): Promise<VerifyResult[]>;
  /** Copy a piece from the first source whose bytes match its CAR CID onto `to`. */
  provenantCopyPiece(r: { piece: PieceRef; from: string[]; to: string }): Promise<Placement>;
  provenantRenewPiece(r: PieceAtProvider): Promise<{ renewed: boolean; expiresAt?: string }>;
  provenantRetirePiece(r: PieceAtProvider): Promise<{ deleted: boolean; error?: string }>;
  provenantAppendAudit(r: AppendAuditRequest): Promise<{ head: string; seq: number; stored: Record<string, number> }>;
  /** Check the audit log's stored copies (bounded per call) and re-store missing or corrupt ones from a good copy. */
  provenantCheckAudit(r: AuditCheckRequest): Promise<AuditCheckResult>;
  /** Signal every running steward (optionally only those of one health) to verify soon. */
  provenantSweepStewards(r: { health?: string }): Promise<{ signalled: number }>;
  provenantShardPieces(r: { manifestCid: string }): Promise<ShardPiece[]>;
  /** One slice of a steward round over the replica table (see StewardPagesRequest). */
  provenantStewardPages(r: StewardPagesRequest): Promise<StewardPagesResult>;
  provenantReplicaTableFromList(r: TableFromListRequest): Promise<ReplicaTableSummary>;
  /** One slice of an evacuation pass over the replica table (see EvacuatePagesRequest). */
  provenantEvacuatePages(r: EvacuatePagesRequest): Promise<EvacuatePagesResult>;
  /** Delete every replica of a retired dataset (see DeleteDatasetRequest). */
  provenantDeleteDataset(r: DeleteDatasetRequest): Promise<Omit<DeletionSummary, 'at'>>;
  /** One page of running stewards (workflow ids), by visibility query; `nextPageToken` absent on the last. */
  provenantListStewards(r: {
    pageToken?: string;
    pageSize: number;
  }): Promise<{ workflowIds: string[]; nextPageToken?: string }>;
  /** Ask one steward to evacuate providers and wait for its pass (`skipped` when it is not running). */
  provenantEvacuateSteward(r: {
    workflowId: string;
    from: string[];
    to?: string[];
  }): Promise<{ datasetId?: string; state?: EvacuationState; skipped?: string }>;
  /** Delete the blocks of superseded table roots that the table `keep` no longer uses (best-effort). */
  provenantPruneReplicaTable(r: {
    keep: string | null;
    drop: string[];
    providerIds: string[];
  }): Promise<{ deleted: number }>;
}

/** Activities that touch one host's staged files: registered only on that host's own queue. */
export interface HostQueueActivities {
  /** Stream a remote source into staging as a local tree (a retry fetches only what is missing). */
  provenantMirror(s: StageRef & { source: RemoteSource }): Promise<MirrorSummary>;
  /** Scan a local tree, or list a remote source without fetching it (the pack streams it). */
  provenantScan(s: StageRef & ({ sourcePath: string } | { source: RemoteSource })): Promise<ScanSummary>;
  provenantPack(s: PackRequest): Promise<PackResult>;
  /** Cut the scanned listing into units any worker packs (their plans stored on the providers). */
  provenantPlanUnits(
    s: StageRef & {
      shardBytes: number;
      chunkBytes: number;
      unitShards: number;
      /** The providers the shards may go to: an encrypting run refuses plaintext-only ones here. */
      providerIds?: string[];
    },
  ): Promise<PlanSummary>;
  /**
   * Shards [from, from + count) of a finished pack. With `wait`, of a pack that may still run: the
   * durable ones among them, once at least one is (none: the pack finished before `from`).
   */
  provenantShardPage(s: StageRef & { from: number; count: number; wait?: boolean }): Promise<ShardRef[]>;
  provenantPutPiece(s: PutRequest): Promise<Placement>;
  /** Providers that failed within the cool-down (health memory, kept on this host). */
  provenantCoolingProviders(r: { providerIds: string[]; cooldownMs: number }): Promise<string[]>;
  provenantWriteManifest(s: ManifestRequest): Promise<PieceRef>;
  provenantCleanup(s: StageRef): Promise<void>;
  /** The run's replica table, built from its placement journal and stored on providers. */
  provenantBuildReplicaTable(s: BuildTableRequest): Promise<ReplicaTableSummary>;
  /** Remove every copy the run's journal says it created (an archive that cannot complete). */
  provenantRetireJournaled(s: StageRef): Promise<{ retired: number; failed: number }>;
  /** Also here: an archive that fails removes the copies it made from its own host. */
  provenantRetirePiece(r: PieceAtProvider): Promise<{ deleted: boolean; error?: string }>;
  /** Also here: a restore into a directory of one host runs on that host's queue. */
  provenantRestore(r: RestoreRequest): Promise<RestoreSummary>;
}

export type ProvenantActivities = SharedQueueActivities & HostQueueActivities;
