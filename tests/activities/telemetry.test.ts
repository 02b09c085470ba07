/** The metrics recorder on a Meter of the user's own (ProvenantPlugin's `meter` option), and with none. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AggregationTemporality, MeterProvider, MetricReader, type DataPoint } from '@opentelemetry/sdk-metrics';
import { createRecorder, METRICS } from '../../activities/telemetry.js';

/** A reader that collects on demand (a user's exporter would push these). */
class OnDemandReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

async function points(reader: OnDemandReader): Promise<Map<string, DataPoint<unknown>[]>> {
  const { resourceMetrics } = await reader.collect();
  const out = new Map<string, DataPoint<unknown>[]>();
  for (const scope of resourceMetrics.scopeMetrics)
    for (const m of scope.metrics) out.set(m.descriptor.name, m.dataPoints as DataPoint<unknown>[]);
  return out;
}

describe('metrics recorder', () => {
  it("records through the user's own Meter, per provider and dataset", async () => {
    const reader = new OnDemandReader();
    const provider = new MeterProvider({ readers: [reader] });
    const rec = createRecorder(provider.getMeter('provenant'));
    rec.placed({ providerId: 'a', existed: false }, 100);
    rec.placed({ providerId: 'a', existed: true }, 100);
    rec.placed({ providerId: 'b', existed: false }, 50);
    rec.placeFailed('b');
    const v = { pieceCid: 'p', providerId: 'a', state: 'corrupt', challenges: 3, failed: 1, detectionProbability: 0.9 };
    assert.equal(rec.verified(v as never), v, 'hands the result on');
    rec.replicas('ds', { byState: { healthy: 3, missing: 1 } });
    rec.replicas('ds', { byState: { healthy: 4 } });
    rec.retrieved(1.5, { partial: false });
    const got = await points(reader);
    const by = (name: string, attr: string) =>
      Object.fromEntries((got.get(name) ?? []).map((p) => [String(p.attributes[attr]), p.value]));
    assert.deepEqual(by(METRICS.shardsPlaced, 'provider'), { a: 2, b: 1 });
    assert.deepEqual(by(METRICS.placedBytes, 'provider'), { a: 100, b: 50 }, 'a copy that was there moves no bytes');
    assert.deepEqual(by(METRICS.shardsFailed, 'provider'), { b: 1 });
    assert.deepEqual(by(METRICS.verifications, 'result'), { failed: 1 });
    // A state that emptied reads 0, not its last count.
    assert.deepEqual(by(METRICS.replicas, 'health'), { healthy: 4, missing: 0 });
    const [h] = got.get(METRICS.retrievalSeconds) ?? [];
    assert.equal((h?.value as { count: number }).count, 1);
    await provider.shutdown();
  });

  it('records nothing, and fails nothing, without a meter', () => {
    const rec = createRecorder();
    rec.scanned({ bytes: 1 });
    rec.stewarded('ds', { repairs: 1 }, { byState: { healthy: 1 } });
    rec.retrieved(0.1, { partial: true });
  });
});
