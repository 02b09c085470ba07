/**
 * A repair's put that fails is counted where the replicate path counts it: shards failed, on the
 * provider that refused the copy (with the user's own Meter), and the error reaches the caller.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { AggregationTemporality, MeterProvider, MetricReader, type DataPoint } from '@opentelemetry/sdk-metrics';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createStageContext } from '../../../activities/context.js';
import { carCidFromSha256 } from '../../../activities/pack/cids.js';
import { copyPiece } from '../../../activities/replicate/activities.js';
import { METRICS } from '../../../activities/telemetry.js';
import { bytesOf, testConfig, tmpDir } from '../../helpers/env.js';

class OnDemandReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

async function byProvider(reader: OnDemandReader, name: string): Promise<Record<string, unknown>> {
  const { resourceMetrics } = await reader.collect();
  for (const scope of resourceMetrics.scopeMetrics)
    for (const m of scope.metrics)
      if (m.descriptor.name === name)
        return Object.fromEntries(
          (m.dataPoints as DataPoint<unknown>[]).map((p) => [String(p.attributes.provider), p.value]),
        );
  return {};
}

describe('copyPiece metrics', () => {
  it('counts a failed put on the target as a failed placement, and a good one as placed', async () => {
    const root = tmpDir('pv-copy-metrics-');
    // Provider "broken" stands on a regular file: every put there fails (ProviderUnavailableError).
    const brokenPath = path.join(root, 'not-a-dir');
    fs.writeFileSync(brokenPath, 'x');
    const config = testConfig(path.join(root, 'home'), {
      providers: [
        { id: 'good', kind: 'local', path: path.join(root, 'good') },
        { id: 'spare', kind: 'local', path: path.join(root, 'spare') },
        { id: 'broken', kind: 'local', path: brokenPath },
      ],
    });
    const reader = new OnDemandReader();
    const meters = new MeterProvider({ readers: [reader] });
    const ctx = createStageContext({ config, meter: meters.getMeter('provenant') });
    const bytes = bytesOf(300_000, 'copy-metrics');
    const carCid = carCidFromSha256(crypto.createHash('sha256').update(bytes).digest());
    const piece = { pieceCid: `baga${carCid.slice(4, 40)}`, carCid, rootCid: carCid, bytes: bytes.length };
    await ctx.providers.get('good').put(piece, () => fs.createReadStream(writeTmp(root, bytes)));
    const env = new MockActivityEnvironment();

    await assert.rejects(
      env.run(copyPiece, ctx, { piece, from: ['good'], to: 'broken' }),
      /provider root is not available \[provider=broken/,
    );
    assert.deepEqual(await byProvider(reader, METRICS.shardsFailed), { broken: 1 });
    assert.deepEqual(await byProvider(reader, METRICS.shardsPlaced), {}, 'nothing counted as placed');

    const placed = (await env.run(copyPiece, ctx, { piece, from: ['good'], to: 'spare' })) as { providerId: string };
    assert.equal(placed.providerId, 'spare');
    assert.ok(fs.readFileSync(path.join(root, 'spare', 'pieces', `${piece.pieceCid}.car`)).equals(bytes));
    assert.deepEqual(await byProvider(reader, METRICS.shardsPlaced), { spare: 1 });
    assert.deepEqual(await byProvider(reader, METRICS.shardsFailed), { broken: 1 }, 'the good copy adds no failure');
    await ctx.providers.close();
    await meters.shutdown();
  });
});

function writeTmp(root: string, bytes: Buffer): string {
  const f = path.join(root, 'src.car');
  fs.writeFileSync(f, bytes);
  return f;
}
