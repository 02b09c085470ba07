/**
 * The names by which the outside talks to Provenant's workflows: signal, query and update
 * definitions and workflow ids. One home, imported by workflows (which set the handlers), by
 * activities (the pack signals shards as they close) and by clients (CLI, users' code).
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type {
  ArchiveProgress,
  RehomeProgress,
  EvacuateRequest,
  EvacuationState,
  RetireOptions,
  ShardRef,
  StewardStatus,
  VerifyNowOptions,
} from './types.js';

// ---- archiveDataset ----------------------------------------------------------------------
export const archiveProgressQuery = defineQuery<ArchiveProgress>('progress');
/**
 * Signal from the pack activity to the workflow that ran it, with the shards closed so far, so
 * that replication starts while packing goes on. Only a head start: the workflow still reads
 * every shard from the finished pack.
 */
export const SHARDS_PACKED_SIGNAL = 'provenantShardsPacked';
export const shardsPackedSignal = defineSignal<[ShardRef[]]>(SHARDS_PACKED_SIGNAL);

// ---- stewardDataset ----------------------------------------------------------------------
export const stewardStatusQuery = defineQuery<StewardStatus>('status');
/** Run a verification round now and return the state after it. */
export const verifyNowUpdate = defineUpdate<StewardStatus>('verifyNow');
/** The same update with options (`full`: every shard, whatever the steward's sample; provenant repair). */
export const verifyNowWithOptionsUpdate = defineUpdate<StewardStatus, [VerifyNowOptions]>('verifyNow');
export const addReplicasSignal = defineSignal<[number]>('addReplicas');
/** End the steward; with `{ delete: true }` it deletes every replica after auditing the retirement. */
export const retireSignal = defineSignal<[RetireOptions?]>('retire');
/** Move the dataset's replicas off providers; resolves after the first round that tried (provenant rehome). */
export const evacuateUpdate = defineUpdate<EvacuationState, [EvacuateRequest]>('evacuate');
/** Fire-and-forget "verify soon" (fleet sweeps use it; verifyNow waits for the round). */
export const sweepSignal = defineSignal('sweep');

// ---- workflow ids --------------------------------------------------------------------------
/** One archive per dataset id: starting it again attaches to the running or completed one. */
export const archiveWorkflowId = (datasetId: string): string => `provenant-archive-${datasetId}`;
/** One steward per manifest, for the dataset's whole life. */
export const stewardWorkflowId = (manifestCid: string): string => `provenant-steward-${manifestCid}`;
/** The replication child of page `page` of an archive. */
export const replicateWorkflowId = (archiveWorkflowId: string, page: number): string =>
  `${archiveWorkflowId}/replicate-${page}`;
// ---- rehomeProviders ----------------------------------------------------------------------
export const rehomeProgressQuery = defineQuery<RehomeProgress>('rehomeProgress');

/** One rehome per set of providers moved off: running it again attaches to the running one. */
export const rehomeWorkflowId = (from: string[]): string => `provenant-rehome-${[...from].sort().join('+')}`;
export const restoreWorkflowId = (manifestCid: string, nonce: string): string =>
  `provenant-restore-${manifestCid.slice(-20)}-${nonce}`;
