/**
 * Provenant's metrics: a small recorder that the stage activities call with the results they
 * already compute (bytes scanned and packed, copies placed or failed, verifications, repairs,
 * renewals, rehomes, restore latency, replicas by health). It records through an OpenTelemetry
 * Meter: the user's (ProvenantPlugin's `meter` option), the worker's built-in Prometheus endpoint
 * (`telemetry.prometheus`, workers/metrics.ts), or none: a no-op meter, so that nothing is
 * recorded and nothing leaves the machine unless one of those is configured.
 *
 * Names are Prometheus-ready (`_total` is added to counters by the exporter); a provider's id is
 * the `provider` attribute, a dataset's id the `dataset` attribute.
 */
import { createNoopMeter, type Meter } from '@opentelemetry/api';
import type { Placement, ReplicaHealth, ReplicaTableSummary, VerifyResult } from '../shared/types.js';

/** The instruments' names, for dashboards and tests. */
export const METRICS = {
  scannedBytes: 'provenant_scanned_bytes',
  packedBytes: 'provenant_packed_bytes',
  packedShards: 'provenant_packed_shards',
  placedBytes: 'provenant_placed_bytes',
  shardsPlaced: 'provenant_shards_placed',
  shardsFailed: 'provenant_shards_failed',
  verifications: 'provenant_verifications',
  repairs: 'provenant_repairs',
  renewals: 'provenant_renewals',
  rehomes: 'provenant_rehomes',
  retrievalSeconds: 'provenant_retrieval_duration_seconds',
  replicas: 'provenant_replicas',
} as const;

/** Restore latencies span a small file read from local disk to a full dataset from Filecoin. */
const RETRIEVAL_BUCKETS_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

export interface Recorder {
  /** A scan's result: the bytes it found in the source. */
  scanned(r: { bytes: number }): void;
  /** A pack's result: CAR bytes and shards written. */
  packed(r: { carBytes: number; shards: number }): void;
  /** A copy stored on a provider; `bytes` counts only when it was not there already. */
  placed(p: Pick<Placement, 'providerId' | 'existed'>, bytes: number): void;
  /** A put of a copy on `providerId` that failed. */
  placeFailed(providerId: string): void;
  /** A spot check's result (passed when the replica was found healthy); returns it, to chain on. */
  verified(v: VerifyResult): VerifyResult;
  /**
   * One slice of a steward round or of a rehome: its repairs, renewals and replicas moved off a
   * provider, and the dataset's replica table after it (the gauge of replicas by health).
   */
  stewarded(
    datasetId: string,
    c: { repairs?: number; renewals?: number; rehomes?: number },
    table: Pick<ReplicaTableSummary, 'byState'>,
  ): void;
  /** How long a restore (a retrieval of a dataset, or of some of its paths) took. */
  retrieved(seconds: number, o: { partial: boolean }): void;
  /** A dataset's replica table as it stands now: the gauge of its replicas by health. Returns it, to chain on. */
  replicas<T extends Pick<ReplicaTableSummary, 'byState'>>(datasetId: string, table: T): T;
}

/** A recorder on `meter`; with none, on a no-op meter (records nothing). */
export function createRecorder(meter: Meter = createNoopMeter()): Recorder {
  const counter = (name: string, description: string, unit?: string) =>
    meter.createCounter(name, { description, ...(unit ? { unit } : {}) });
  const scanned = counter(METRICS.scannedBytes, 'Bytes found in sources by scans.');
  const packedBytes = counter(METRICS.packedBytes, 'CAR bytes written by packs.');
  const packedShards = counter(METRICS.packedShards, 'CAR shards written by packs.');
  const placedBytes = counter(METRICS.placedBytes, 'Bytes stored on providers (new copies), per provider.');
  const shardsPlaced = counter(METRICS.shardsPlaced, 'Copies of pieces stored on providers, per provider.');
  const shardsFailed = counter(METRICS.shardsFailed, 'Puts of copies that failed, per provider.');
  const verifications = counter(
    METRICS.verifications,
    'Replica spot checks, per provider and result (passed: found healthy; failed: anything else).',
  );
  const repairs = counter(METRICS.repairs, 'Replicas replaced by steward rounds.');
  const renewals = counter(METRICS.renewals, 'Replicas renewed by steward rounds.');
  const rehomes = counter(METRICS.rehomes, 'Replicas moved off a provider by rehome.');
  const retrieval = meter.createHistogram(METRICS.retrievalSeconds, {
    description: 'Duration of restores (full or partial), in seconds.',
    unit: 's',
    advice: { explicitBucketBoundaries: RETRIEVAL_BUCKETS_S },
  });
  // The latest replica table of each dataset this worker has seen, observed on each collection.
  const tables = new Map<string, Partial<Record<ReplicaHealth, number>>>();
  meter
    .createObservableGauge(METRICS.replicas, {
      description: 'Replicas of each dataset by health, from the latest replica table this worker wrote.',
    })
    .addCallback((result) => {
      for (const [dataset, byState] of tables)
        for (const [health, n] of Object.entries(byState)) result.observe(n ?? 0, { dataset, health });
    });
  const replicas = <T extends Pick<ReplicaTableSummary, 'byState'>>(datasetId: string, table: T): T => {
    // Every state seen for the dataset, zeros included, so that a state that emptied reads 0, not its last count.
    const byState: Partial<Record<ReplicaHealth, number>> = {};
    for (const k of Object.keys({ ...tables.get(datasetId), ...table.byState }) as ReplicaHealth[])
      byState[k] = table.byState[k] ?? 0;
    tables.set(datasetId, byState);
    return table;
  };
  return {
    scanned: (r) => scanned.add(r.bytes),
    packed: (r) => {
      packedBytes.add(r.carBytes);
      packedShards.add(r.shards);
    },
    placed: (p, bytes) => {
      shardsPlaced.add(1, { provider: p.providerId });
      if (!p.existed) placedBytes.add(bytes, { provider: p.providerId });
    },
    placeFailed: (providerId) => shardsFailed.add(1, { provider: providerId }),
    verified: (v) => {
      verifications.add(1, { provider: v.providerId, result: v.state === 'healthy' ? 'passed' : 'failed' });
      return v;
    },
    stewarded: (datasetId, c, table) => {
      if (c.repairs) repairs.add(c.repairs);
      if (c.renewals) renewals.add(c.renewals);
      if (c.rehomes) rehomes.add(c.rehomes);
      replicas(datasetId, table);
    },
    retrieved: (seconds, o) => retrieval.record(seconds, { kind: o.partial ? 'partial' : 'full' }),
    replicas,
  };
}
