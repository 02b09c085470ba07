/**
 * The wire types: everything that crosses Temporal (workflow inputs and results, activity inputs
 * and results, signals) as plain JSON — references only (CIDs, paths, ids), never bytes or
 * secrets. One home for both workflows/ and activities/; this module imports no project code but
 * shared/.
 */
import type { ArchiveSource, ArchiveSourceInput, RemoteSource } from './source.js';

export type { ArchiveSource, ArchiveSourceInput, RemoteSource } from './source.js';

// ---- pieces, shards, staging --------------------------------------------------------------
export interface PieceRef {
  /** FRC-0069 v2 piece CID of the CAR bytes. */
  pieceCid: string;
  /** CID (sha256, CAR codec) of the exact CAR bytes: checked on every write and read. */
  carCid: string;
  /** The CAR's header root: lets a manifest be found by its CID alone. */
  rootCid: string;
  /** Length of the CAR in bytes. */
  bytes: number;
}

/** A packed shard: its piece and its position in the dataset. */
export type ShardRef = PieceRef & { index: number };

/** A run's staging area on a host. */
export interface StageRef {
  datasetId: string;
  /** Unique per workflow run: a new run never reuses another run's staging. */
  runKey: string;
}

/** Where a piece was stored, as a provider reports it. */
export interface Placement {
  providerId: string;
  pieceCid: string;
  /** True when the piece was already there (idempotent re-put). */
  existed: boolean;
  storedAt: string;
  /** When the provider stops keeping it, if it ever does (ISO time). */
  expiresAt?: string;
  /** How the stored bytes were checked, when not by hashing them on the way in. */
  evidence?: string;
  /** The chain's record of the piece (Filecoin providers), when the chain holds one yet. */
  commitment?: ChainCommitment;
}

/**
 * A chain's record that a provider holds a piece: a PDP addPieces transaction (Filecoin Onchain
 * Cloud), or a storage deal or verified claim (a Lotus miner). `epoch` is when the piece was
 * committed (the transaction's block, the deal's sector activation, the claim's term start), so
 * the piece's bytes were fixed no later than that epoch. Plain JSON: ids and epochs are numbers
 * or decimal strings, never bigint.
 */
export interface ChainCommitment {
  kind: 'pdp' | 'deal' | 'claim';
  providerId: string;
  /** The piece the chain names (v2 piece CID): whoever checks the bytes recomputes it. */
  pieceCid: string;
  epoch: number;
  /** The network as the node names it, with ' (simulated)' when the node says it is simulated. */
  network: string;
  chainId?: number;
  dataSetId?: string;
  pieceId?: string;
  txHash?: string;
  dealId?: number;
  claimId?: number;
  sector?: number;
}

// ---- stage results ------------------------------------------------------------------------
/** What the scan reports back to the workflow: the listing stays on disk. */
export interface ScanSummary {
  files: number;
  dirs: number;
  bytes: number;
  /** Special files (FIFOs, sockets, devices) that were skipped, first 100. */
  specials: string[];
  specialCount: number;
  symlinksFollowed: number;
  /** A remote source as the manifest records it (`s3://bucket/prefix`, the URLs). */
  uri?: string;
}

export interface MirrorSummary {
  files: number;
  bytes: number;
  downloaded: number;
  mirrorPath: string;
  uri: string;
}

export interface PackResult {
  rootCid: string;
  shards: number;
  files: number;
  bytes: number;
  carBytes: number;
  /** Shards this run wrote (the rest came from a checkpoint). */
  shardsWritten: number;
  resumedFromShard: number;
}

export interface RestoreSummary {
  manifestCid: string;
  datasetId: string;
  rootCid: string;
  target: string;
  files: number;
  bytes: number;
  /** Shards fetched (all of the archive's for a full restore). */
  shards: number;
  /** Shards in the archive. */
  shardsTotal: number;
  /** The requested paths of a partial restore, normalised (absent for a full restore). */
  paths?: string[];
  /** Provider each shard was read from. */
  sources: Record<string, number>;
  /** Replicas that failed verification and were skipped. */
  badReplicas: { providerId: string; pieceCid: string; reason: string }[];
}

export type ReplicaState = 'healthy' | 'missing' | 'corrupt' | 'unreachable' | 'expired';

export interface VerifyResult {
  pieceCid: string;
  providerId: string;
  state: ReplicaState;
  challenges: number;
  failed: number;
  /** Probability that this check would catch a loss of the configured fraction of blocks. */
  detectionProbability: number;
  expiresAt?: string;
  /** What was seen: the first failing block, the provider's words, … */
  evidence: string;
  /** The chain's record of the piece, when the provider's status gives one (a deal sealed since the put). */
  commitment?: ChainCommitment;
}

export interface AuditEvent {
  kind: 'archive' | 'verify' | 'repair' | 'renew' | 'retire' | 'rehome';
  pieceCid?: string;
  providerId?: string;
  result: string;
  challenges?: number;
  detectionProbability?: number;
  evidence?: string;
}

/** An audit event with its time, as the steward sends it to be appended. */
export type TimedAuditEvent = AuditEvent & { time: string };

/** A piece of the dataset as listed in its manifest (the manifest is the shard table). */
export interface ShardPiece {
  shard: number;
  pieceCid: string;
  carCid: string;
  rootCid: string;
  bytes: number;
}

// ---- workflows -------------------------------------------------------------------------------

export interface ProviderRef {
  id: string;
  kind: string;
  region?: string;
  org?: string;
  city?: string;
  country?: string;
  continent?: string;
  pricePerTiBMonth?: number;
  energyScore?: number;
  maxPieceBytes?: number;
}

/** The placement policy as the workflow sees it (durations in ms). */
export interface PlacementPolicyInput {
  maxPerOrg?: number;
  maxPerCity?: number;
  maxPerCountry?: number;
  maxPerContinent?: number;
  maxPerRegion?: number;
  maxPricePerTiBMonth?: number;
  minEnergyScore?: number;
  preferEnergy: boolean;
  cooldownMs: number;
}

export interface ArchiveInput {
  datasetId: string;
  source: ArchiveSource;
  copies: number;
  meta: Record<string, string>;
  /** Manifest CIDs of parent datasets or base models (`archive --derived-from`), recorded in the manifest. */
  derivedFrom?: string[];
  shardBytes: number;
  providers: ProviderRef[];
  /** Temporal duration for pack/scan heartbeats, e.g. '1 minute'. */
  heartbeatTimeout: string;
  /** Attempts per provider before failing over to the next one. */
  putAttempts: number;
  /** Constraints and preferences for choosing providers (defaults: distinct providers only). */
  policy?: PlacementPolicyInput;
  /** Fixed creation time for the manifest (defaults to the workflow's start time). */
  createdAt?: string;
  /** Start a steward for the archived dataset (default: yes). */
  steward?: StewardSettings;
  /** UnixFS leaf size (default 1 MiB, as ipfs-car: root CIDs equal ipfs-car's); recorded in the manifest. */
  chunkBytes?: number;
  /** Shards per replication child workflow (default REPLICATE_PAGE_DEFAULT, fewer with many copies; tests lower it). */
  replicatePageShards?: number;
  /** Pack in units of this many shards, run by any worker (config pack.unitShards). */
  unitShards?: number;
}

/** Shards per replication child workflow: its history stays far under 10,000 events (about 7 per copy). */
export const REPLICATE_PAGE_DEFAULT = 256;
/** Events a replication child may budget for its puts (the page is cut to fit with many copies). */
export const REPLICATE_EVENT_BUDGET = 6000;

/** Input of one replication child (replicateShards): shards [from, from + count) of a staged pack. */
export interface ReplicatePageInput {
  stage: StageRef;
  /** The archive host's queue: the staged shards are there, so are the puts. */
  hostQueue: string;
  from: number;
  count: number;
  copies: number;
  providers: ProviderRef[];
  policy: PlacementPolicyInput;
  putAttempts: number;
  heartbeatTimeout: string;
  /** Providers to try last (cooling, or failed earlier in this archive). */
  avoid: string[];
  /** Carried over a continue-as-new of the same page. */
  carried?: ReplicatePageResult;
}

/** What a replication child returns: counts only. */
export interface ReplicatePageResult {
  shards: number;
  /** Shard copies per provider. */
  replicas: Record<string, number>;
  failoverCount: number;
  /** The first few failovers. */
  failovers: { piece: string; providerId: string; error: string }[];
  /** The avoid list after this page (the next page starts from it). */
  avoid: string[];
}

/**
 * What a client in any language (Python, Go, the Temporal CLI…) may start `archiveDataset` with
 * instead of a full ArchiveInput: the dataset and its source. The worker fills in the rest from
 * its own config (providers, copies, shard size, placement policy, steward settings), checking it
 * as the CLI does: a bad request fails the workflow with ConfigError or UnknownProviderError.
 */
export interface ArchiveRequestInput {
  /** A local path must be absolute, on the worker's host. S3 `prefix` and `forcePathStyle` may be left out. */
  source: ArchiveSourceInput;
  /** Default: derived from the source (its last path segment and a hash). */
  datasetId?: string;
  /** Default: `replication.copies`. */
  copies?: number;
  meta?: Record<string, string>;
  /** Manifest CIDs of parent datasets or base models (lineage). */
  derivedFrom?: string[];
  /** Ids of configured providers to use (default: all). */
  providers?: string[];
  /** `false`: no steward for this dataset. */
  steward?: boolean;
  createdAt?: string;
}

export interface ArchiveProgress {
  stage: 'starting' | 'mirror' | 'scan' | 'plan' | 'pack' | 'replicate' | 'manifest' | 'cleanup' | 'done';
  shards: number;
  shardsReplicated: number;
}

export interface ArchiveSummary {
  datasetId: string;
  /** The handle to keep: the CID of the provenance manifest. */
  manifestCid: string;
  manifestPieceCid: string;
  rootCid: string;
  files: number;
  bytes: number;
  shards: number;
  carBytes: number;
  copies: number;
  /** Pieces stored per provider (shards; the manifest is in manifestProviders). */
  replicas: Record<string, number>;
  manifestProviders: string[];
  failovers: { piece: string; providerId: string; error: string }[];
  skippedSpecialFiles: string[];
  createdAt: string;
  /** Workflow id of the dataset's steward, when one was started. */
  stewardWorkflowId?: string;
  /** How packing went: shards written by the final attempt, and the shard it resumed from. */
  pack: { shardsWritten: number; resumedFromShard: number };
}

export interface RestoreInput {
  manifestCid: string;
  target: string;
  force: boolean;
  providerIds?: string[];
  /** Restore only these files or directory prefixes (`--path`; all when absent). */
  paths?: string[];
  heartbeatTimeout: string;
  /** Task queue of the host that must write the files (defaults to any worker). */
  taskQueue?: string;
}

/** Steward settings, in milliseconds (parsed from config at the edge). */
export interface StewardSettings {
  verifyEveryMs: number;
  renewWindowMs: number;
  unreachableGraceMs: number;
  detectionProbability: number;
  lossFraction: number;
  maxRoundsPerRun: number;
  searchAttributes: boolean;
  /** Replicas per page of the replica table (default REPLICA_PAGE_DEFAULT; tests lower it). */
  pageReplicas?: number;
  /** Shards a round verifies (default 'all': every shard, every round); see shared/sampling.ts. */
  sampleShards?: ShardSampleSpec;
  /** Heartbeat timeout of the steward's activities (config temporal.heartbeatTimeout); stewards from before it: 5 minutes. */
  heartbeatTimeout?: string;
}

/** Replicas per page for steward settings recorded before `steward.pageReplicas` existed (config/schema.ts holds the default). */
export const REPLICA_PAGE_DEFAULT = 256;

export type ReplicaHealth = 'unknown' | 'healthy' | 'missing' | 'corrupt' | 'unreachable' | 'expired';

export interface StewardReplica {
  shard: number;
  pieceCid: string;
  carCid: string;
  rootCid: string;
  bytes: number;
  providerId: string;
  state: ReplicaHealth;
  lastCheckedAt?: string;
  lastEvidence?: string;
  detectionProbability?: number;
  unreachableSince?: string;
  expiresAt?: string;
  /** The chain's record of this copy (a Filecoin provider's), as the put or a later check found it. */
  commitment?: ChainCommitment;
}

/**
 * A replica table, as a steward holds it: the CID of its root block (stored on the dataset's
 * providers, like audit records; `null` for an empty table) and the counts the root records.
 * The replicas themselves are in the table's page blocks, never in workflow state.
 */
export interface ReplicaTableSummary {
  tableCid: string | null;
  pages: number;
  pieces: number;
  replicas: number;
  /** Replicas per state. */
  byState: Partial<Record<ReplicaHealth, number>>;
  /** Fewest healthy copies any piece has (0 when a piece is lost; 0 for an empty table). */
  minHealthy: number;
  /** Pieces with no healthy copy. */
  lostPieces: number;
  /** The earliest expiry of any replica (ms since the epoch), if any expires. */
  earliestExpiryMs?: number;
}

/** The table of a dataset with no replicas. */
export const EMPTY_REPLICA_TABLE: ReplicaTableSummary = {
  tableCid: null,
  pages: 0,
  pieces: 0,
  replicas: 0,
  byState: {},
  minHealthy: 0,
  lostPieces: 0,
};

/** The whole state of a steward: its input, carried across continue-as-new. */
export interface StewardState {
  datasetId: string;
  manifestCid: string;
  copies: number;
  providers: ProviderRef[];
  /** The archive's placement policy; repairs follow it (absent: distinct providers only). */
  policy?: PlacementPolicyInput;
  settings: StewardSettings;
  /** The replica table (stewards since the replica table). */
  table?: ReplicaTableSummary;
  /**
   * Every replica inline: the state of stewards started before the replica table. A steward
   * started with it converts it into a table before its first round (and drops it).
   */
  replicas?: StewardReplica[];
  audit: { cid: string | null; seq: number };
  lastVerifiedAt?: string;
  rounds: number;
  runs: number;
  counters: { verifications: number; repairs: number; renewals: number; retired: number };
  /** Audit events no provider could take yet (all down): appended first at the next audit. */
  unaudited?: TimedAuditEvent[];
  /** The last round that could not be completed, and when the next is tried. */
  lastRoundError?: { at: string; message: string; retryAt: string };
  /** What the last completed round sampled and could detect. */
  lastDetection?: RoundDetection;
  /** Key of the steward's shard permutation, drawn once (deterministically) by the workflow. */
  sampleKey?: string;
  /** Providers the dataset is being moved off (provenant rehome), and how far that got. */
  evacuation?: EvacuationState;
}

/** Move a dataset's replicas off providers (`provenant rehome`): the steward's evacuate update. */
export interface EvacuateRequest {
  from: string[];
  /** Only these providers take the new copies (absent: any the placement policy allows). */
  to?: ProviderRef[];
}

/** A steward's evacuation: asked for, then carried out by its rounds until nothing is left on `from`. */
export interface EvacuationState {
  from: string[];
  to?: ProviderRef[];
  requestedAt: string;
  /** Evacuation passes run since the request (an update waits for the first). */
  passes: number;
  /** Replicas moved: a new copy verified elsewhere, then the old one retired. */
  moved: number;
  /** Replicas still on `from` after the last pass (a copy or its verification failed: tried again next round). */
  remaining: number;
  completedAt?: string;
}

/** `provenant rehome`: move every dataset's replicas off providers (workflows/rehome.ts). */
export interface RehomeInput {
  from: string[];
  to?: string[];
  /** Stewards listed per page (one checkpoint each). */
  pageSize: number;
  /** Stewards evacuated at once. */
  concurrency: number;
  /** Pages per run before continuing as new (history stays bounded). */
  pagesPerRun: number;
  /** Carried over continue-as-new. */
  progress?: RehomeProgress;
}

export interface RehomeProgress {
  startedAt: string;
  /** The next page of stewards (absent: from the first). */
  pageToken?: string;
  pages: number;
  runs: number;
  /** Stewards asked to evacuate. */
  datasets: number;
  /** Datasets whose evacuation is complete (nothing left on `from`). */
  completed: number;
  /** Replicas moved off (new copy verified elsewhere, old one retired). */
  moved: number;
  /** Replicas still on `from`: their stewards keep trying each round. */
  remaining: number;
  /** Stewards that ended meanwhile or could not take the request. */
  skipped: number;
  /** Stewards whose evacuation failed for good (the activity's retries spent). */
  failed: number;
  /** Up to 100 datasets not done (incomplete or failed), with why. */
  incomplete: { workflowId: string; datasetId?: string; why: string }[];
  done: boolean;
}

/** `provenant retire`: with `delete`, every replica (manifest, shards, replica table) is deleted after the retirement is audited. */
export interface RetireOptions {
  delete?: boolean;
}

/** `provenant verify` / `repair`: with `full`, the round verifies every shard whatever the steward's sample. */
export interface VerifyNowOptions {
  full?: boolean;
}

/** What a retirement with `delete` removed (the audit log is kept: it records the deletion). */
export interface DeletionSummary {
  at: string;
  deleted: number;
  /** Already gone when asked (a retried deletion, a piece lost earlier). */
  absent: number;
  failed: number;
  tableBlocks: number;
  /** A few of the failures (provider: reason). */
  problems: string[];
}

export type DatasetHealth = 'healthy' | 'degraded' | 'lost' | 'unknown';

export interface StewardStatus {
  datasetId: string;
  manifestCid: string;
  health: DatasetHealth;
  copies: number;
  pieces: number;
  /** How many replicas the dataset has (read them from the table: `readReplicaTable`). */
  replicaCount: number;
  /** The replica table: root CID, pages and counts by state. */
  replicaTable?: ReplicaTableSummary;
  /** Only from stewards still running the code before the replica table: every replica inline. */
  replicas?: StewardReplica[];
  lastVerifiedAt?: string;
  nextVerificationAt: string;
  earliestExpiry?: string;
  nextRenewalAt?: string;
  auditHead: string | null;
  auditRecords: number;
  rounds: number;
  runs: number;
  counters: StewardState['counters'];
  retired: boolean;
  /** Audit events waiting for a provider to take them. */
  unauditedEvents: number;
  lastRoundError?: StewardState['lastRoundError'];
  /** The last completed round's sample and detection probability (describeDetection prints it). */
  detection?: RoundDetection;
  evacuation?: EvacuationState;
  /** A retirement with delete: what was deleted. */
  deletion?: DeletionSummary;
}

/** A stored copy of a piece that a steward looks after (its identity, without health). */
export type ReplicaRef = Pick<StewardReplica, 'shard' | 'pieceCid' | 'carCid' | 'rootCid' | 'bytes' | 'providerId'>;

/**
 * Which shards a steward round verifies: 'all', a fraction of the shards (0 < x < 1, at least one
 * shard) or a whole number of shards (config/schema.ts: `steward.sampleShards`).
 */
export type ShardSampleSpec = 'all' | number;

/** One round's shard sample and what it could detect (shared/sampling.ts `roundDetection`). */
export interface RoundDetection {
  /** Completed sampling rounds before this one (the window's position). */
  round: number;
  shards: number;
  /** Shards in the round's uniform sample. */
  sampledShards: number;
  /** Shards actually verified (the sample, and any whose last check was not healthy). */
  checkedShards: number;
  /** Every shard is verified within this many consecutive rounds. */
  coverRounds: number;
  /** Lower bound on catching a damaged shard that is verified: 1 − (1 − lossFraction)^challenges. */
  blockDetection: number;
  lossFraction: number;
  /** The damage model: this many shards, each damaged in `lossFraction` of its blocks… */
  damagedShards: number;
  /** …that is this fraction of the dataset's blocks. */
  damageFraction: number;
  /** P(this round detects it) ≥ this. */
  probability: number;
  /** The same for ⌈lossFraction · shards⌉ damaged shards. */
  spreadShards: number;
  spreadProbability: number;
}

/** Added to a steward pages request (StewardPagesRequest): the round's shard sample, as a seed and counts. */
export interface StewardSampleRequest {
  sample?: { seed: string; round: number; spec: ShardSampleSpec };
}

/** Added to a steward pages result (StewardPagesResult). */
export interface StewardSampleResult {
  /** Shards in the manifest. */
  shards?: number;
  /** Distinct shards whose replicas were verified in the slice. */
  checkedShards?: number;
  /** Replicas left unverified (not sampled, healthy at their last check). */
  skipped?: number;
}

// ---- packing in units (activities/pack/units.ts) ------------------------------------------
/** Units per plan page: one child workflow (workflows/units.ts) packs a page. */
export const UNITS_PER_PAGE = 32;

/** A page of units for the child that packs them. */
export interface UnitsPageInput {
  unit: Omit<UnitRequest, 'planPage' | 'slot'>;
  planPage: string;
  count: number;
  /** Units of the page packed at once (by any workers). */
  parallel: number;
  heartbeatTimeout: string;
}

export interface UnitsPageResult {
  /** The page's result block (the units' result CIDs, in plan order). */
  result: string;
  shards: number;
  bytes: number;
}
/** The copies to make of a piece, and where they may go. */
export interface CopyPlan {
  copies: number;
  providers: ProviderRef[];
  policy: PlacementPolicyInput;
}

/** A plan of units: only its pages' CIDs and counts go through Temporal. */
export interface PlanSummary {
  /** The host that scanned the source (recorded in the manifest). */
  host: string;
  /** One block per page of UNITS_PER_PAGE units: the units' plan CIDs. */
  planPages: string[];
  units: number;
  /** Data shards (the tree shards come after them). */
  shards: number;
  files: number;
  bytes: number;
}

export interface UnitRequest extends StageRef, CopyPlan {
  planPage: string;
  /** The unit's place in its plan page. */
  slot: number;
  shardBytes: number;
  chunkBytes: number;
  sourcePath: string;
  source?: RemoteSource;
}

export interface UnitSummary {
  unit: number;
  /** The unit's result block (units.ts UnitResult). */
  result: string;
  shards: number;
  bytes: number;
  /** Copies stored per provider. */
  replicas: Record<string, number>;
}

export interface StitchRequest extends StageRef, CopyPlan {
  planPages: string[];
  resultPages: string[];
  dataShards: number;
  shardBytes: number;
  chunkBytes: number;
  sourcePath: string;
  source?: RemoteSource;
  manifest: {
    meta: Record<string, string>;
    derivedFrom?: string[];
    createdAt: string;
    sourceKind: string;
    sourceUri: string;
    /** The host that scanned the source (the manifest's, whoever stitches). */
    host: string;
  };
  /** Build the replica table (for a steward) on these providers. */
  table?: { pageReplicas: number; providerIds: string[] };
}

export interface StitchResult {
  rootCid: string;
  manifest: PieceRef;
  manifestProviders: string[];
  table?: ReplicaTableSummary;
  shards: number;
  treeShards: number;
  files: number;
  bytes: number;
  carBytes: number;
  /** Shard copies per provider (data and tree shards). */
  replicas: Record<string, number>;
}

/**
 * The audit log's stored copies as the steward last checked them (`StewardStatus.audit`):
 * 'intact' (every copy checked is there and hashes to its CID), 'repaired' (the last round
 * re-stored missing or corrupt copies from a good one), 'degraded' (a copy could not be
 * re-stored yet; another intact copy keeps the chain readable), 'broken' (a record has no intact
 * copy at any provider: the chain cannot be read past it).
 */
export type AuditChainState = 'intact' | 'repaired' | 'degraded' | 'broken';

export interface AuditHealth {
  state: AuditChainState;
  /** Records in the chain (the head's sequence number). */
  records: number;
  /** Records whose copies the last check read (the newest ones and a rotating window). */
  checked: number;
  lastCheckedAt: string;
  /** Record copies re-stored from a good copy by the last check, and ever. */
  repairedLastRound: number;
  repairs: number;
  /** What is wrong now (a few lines; `problemCount` counts them all). */
  problems: string[];
  problemCount: number;
}

/** One bounded check of the audit log's copies (`provenantCheckAudit`). */
export interface AuditCheckRequest {
  datasetId: string;
  head: string;
  seq: number;
  /** Every record is expected at each of these providers (a copy missing at one that answers is re-stored). */
  providerIds: string[];
  /** The newest records checked every round, and the size of the window over older ones. */
  newest: number;
  window: number;
  /** Where the window starts (a record CID, walking back); null: just below the newest records. */
  cursor: string | null;
  /** Records found with no intact copy before: checked again. */
  broken: string[];
  /** The round's time (ms), for the repair events. */
  now: number;
}

export interface AuditCheckResult {
  checked: number;
  repaired: number;
  /** Copies still missing or corrupt (their record intact elsewhere). */
  unrepaired: number;
  /** Records with no intact copy anywhere (a few). */
  broken: string[];
  problems: string[];
  problemCount: number;
  /** The next window's start (null: back to just below the newest records). */
  cursor: string | null;
  /** The repairs, to append to the audit log (bounded). */
  events: TimedAuditEvent[];
}

/** Declaration merging: the steward's audit check state (since patch provenant-audit-repair). */
export interface StewardState {
  auditCheck?: { cursor: string | null; broken: string[]; health: AuditHealth };
}

export interface StewardStatus {
  /** The audit log's stored copies, from the last check (absent before the first). */
  audit?: AuditHealth;
}
