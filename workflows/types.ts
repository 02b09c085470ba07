/** Workflow inputs and results: plain JSON, references only, no secrets. */
export interface ProviderRef {
  id: string;
  kind: string;
  region?: string;
  org?: string;
}

export interface ArchiveInput {
  datasetId: string;
  source: { kind: 'local'; path: string };
  copies: number;
  meta: Record<string, string>;
  shardBytes: number;
  providers: ProviderRef[];
  /** Temporal duration for pack/scan heartbeats, e.g. '1 minute'. */
  heartbeatTimeout: string;
  /** Attempts per provider before failing over to the next one. */
  putAttempts: number;
  /** Fixed creation time for the manifest (defaults to the workflow's start time). */
  createdAt?: string;
}

export interface ArchiveProgress {
  stage: 'starting' | 'scan' | 'pack' | 'replicate' | 'manifest' | 'cleanup' | 'done';
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
