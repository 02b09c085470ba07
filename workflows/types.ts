/** Workflow inputs and results: plain JSON, references only, no secrets. */
import type { AuditEvent } from '../activities/audit/audit.js';

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

/**
 * What to archive: a local directory on the worker's host, an S3 prefix, or HTTP(S) URLs (the
 * remote kinds are mirrored into the host's staging area first). Credentials are only ever
 * named environment variables, read by the worker.
 */
export type ArchiveSource =
  | { kind: 'local'; path: string }
  | {
      kind: 's3';
      bucket: string;
      /** Empty or ending in '/'. */
      prefix: string;
      endpoint?: string;
      region?: string;
      forcePathStyle: boolean;
      accessKeyIdEnv?: string;
      secretAccessKeyEnv?: string;
      sessionTokenEnv?: string;
    }
  | { kind: 'http'; urls: (string | { url: string; path: string })[]; authorizationEnv?: string };

export interface ArchiveInput {
  datasetId: string;
  source: ArchiveSource;
  copies: number;
  meta: Record<string, string>;
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
}

/**
 * What a client in any language (Python, Go, the Temporal CLI…) may start `archiveDataset` with
 * instead of a full ArchiveInput: the dataset and its source. The worker fills in the rest from
 * its own config (providers, copies, shard size, placement policy, steward settings), checking it
 * as the CLI does: a bad request fails the workflow with ConfigError or UnknownProviderError.
 */
export interface ArchiveRequestInput {
  /** A local path must be absolute, on the worker's host. S3 `prefix` and `forcePathStyle` may be left out. */
  source: ArchiveSource | { kind: 's3'; bucket: string; prefix?: string; endpoint?: string; region?: string; forcePathStyle?: boolean; accessKeyIdEnv?: string; secretAccessKeyEnv?: string; sessionTokenEnv?: string };
  /** Default: derived from the source (its last path segment and a hash). */
  datasetId?: string;
  /** Default: `replication.copies`. */
  copies?: number;
  meta?: Record<string, string>;
  /** Ids of configured providers to use (default: all). */
  providers?: string[];
  /** `false`: no steward for this dataset. */
  steward?: boolean;
  createdAt?: string;
}

export interface ArchiveProgress {
  stage: 'starting' | 'mirror' | 'scan' | 'pack' | 'replicate' | 'manifest' | 'cleanup' | 'done';
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
}

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
}

/** The whole state of a steward: its input, carried across continue-as-new. */
export interface StewardState {
  datasetId: string;
  manifestCid: string;
  copies: number;
  providers: ProviderRef[];
  /** The archive's placement policy; repairs follow it (absent: distinct providers only). */
  policy?: PlacementPolicyInput;
  settings: StewardSettings;
  replicas: StewardReplica[];
  audit: { cid: string | null; seq: number };
  lastVerifiedAt?: string;
  rounds: number;
  runs: number;
  counters: { verifications: number; repairs: number; renewals: number; retired: number };
  /** Audit events no provider could take yet (all down): appended first at the next audit. */
  unaudited?: (AuditEvent & { time: string })[];
  /** The last round that could not be completed, and when the next is tried. */
  lastRoundError?: { at: string; message: string; retryAt: string };
}

export type DatasetHealth = 'healthy' | 'degraded' | 'lost' | 'unknown';

export interface StewardStatus {
  datasetId: string;
  manifestCid: string;
  health: DatasetHealth;
  copies: number;
  pieces: number;
  replicas: StewardReplica[];
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
}

/**
 * Signal from the pack activity to the workflow that ran it, with the shards closed so far
 * (ShardRef[]), so that replication starts while packing goes on. Only a head start: the workflow
 * still reads every shard from the finished pack.
 */
export const SHARDS_PACKED_SIGNAL = 'provenantShardsPacked';
