/**
 * Shard sampling on the real Temporal server: a steward set to sample 3 shards a round verifies
 * only those (and the manifest), successive rounds cover every shard, a corrupted shard is found
 * within ⌈S/3⌉ rounds (and not in a round that did not sample it), and the status and the audit
 * log carry the round's dataset-level detection probability. The default still checks every shard.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CarIndexer } from '@ipld/car/indexer';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { archiveInput } from '../../activities/ingest/archive-input.js';
import { readAudit, readReplicaTable } from '../../activities/steward/activities.js';
import type { Config, ConfigInput } from '../../config/schema.js';
import { verifyNowUpdate } from '../../shared/api.js';
import { blockDetectionBound, coverRounds, datasetDetection, describeDetection } from '../../shared/sampling.js';
import type { ShardSampleSpec, StewardReplica, StewardStatus } from '../../shared/types.js';
import { archiveDataset } from '../../workflows/index.js';
import { bytesOf, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';

const KiB = 1024;

function piecesDir(config: Config, id: string): string {
  const p = config.providers.find((x) => x.id === id)!;
  if (p.kind !== 'local') throw new Error('local providers only');
  return path.join(p.path, 'pieces');
}

/** Flip one byte inside a data block of a stored CAR (not in framing, which spot checks skip). */
async function corruptBlock(file: string): Promise<void> {
  const indexer = await CarIndexer.fromIterable(fs.createReadStream(file));
  for await (const e of indexer) {
    if (e.blockLength > 1000) {
      const fd = fs.openSync(file, 'r+');
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, e.blockOffset + 500);
      b[0]! ^= 0xff;
      fs.writeSync(fd, b, 0, 1, e.blockOffset + 500);
      fs.closeSync(fd);
      return;
    }
  }
  throw new Error(`no data block in ${file}`);
}

async function replicasOf(config: Config, s: StewardStatus): Promise<StewardReplica[]> {
  return (await readReplicaTable(config, s.replicaTable!.tableCid)).replicas;
}

/** Shards (≥ 0) with a replica checked in the round that ended with status `s`. */
async function checkedIn(config: Config, s: StewardStatus): Promise<{ shards: Set<number>; manifest: boolean }> {
  const reps = await replicasOf(config, s);
  const now = reps.filter((r) => r.lastCheckedAt === s.lastVerifiedAt);
  return {
    shards: new Set(now.filter((r) => r.shard >= 0).map((r) => r.shard)),
    manifest: reps.filter((r) => r.shard < 0).every((r) => r.lastCheckedAt === s.lastVerifiedAt),
  };
}

describe('steward shard sampling', () => {
  let env: TestWorkflowEnvironment | undefined;
  let data: string;
  before(async (t) => {
    env = await startTemporal(t as never);
    if (!env) return;
    data = tmpDir('pv-sampling-');
    // 12 files of 150 KiB in 256 KiB shards of 16 KiB blocks: about 8 shards, 2 copies each.
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 12; i++) files[`part-${String(i).padStart(2, '0')}.bin`] = bytesOf(150 * KiB, `s${i}`);
    writeTree(path.join(data, 'src'), files);
  });
  after(async () => {
    await env?.teardown();
  });

  /** Archive the tree with `sampleShards` and run `fn` with the steward's handle while a worker runs. */
  async function withSteward<T>(
    name: string,
    sampleShards: ShardSampleSpec | undefined,
    fn: (
      steward: ReturnType<TestWorkflowEnvironment['client']['workflow']['getHandle']>,
      shards: number,
      config: Config,
    ) => Promise<T>,
  ): Promise<T> {
    const config = testConfig(path.join(data, name), {
      pack: { shardBytes: 256 * KiB, chunkBytes: 16 * KiB },
      replication: { copies: 2 },
      steward: { verifyEvery: '1 hour', searchAttributes: true },
    } as Partial<ConfigInput>);
    const input = archiveInput(config, { dir: path.join(data, 'src'), datasetId: name });
    if (sampleShards !== undefined) input.steward = { ...input.steward!, sampleShards };
    return withWorker(env!, config, async () => {
      const summary = await (
        await env!.client.workflow.start(archiveDataset, {
          workflowId: `provenant-archive-${name}-${crypto.randomBytes(3).toString('hex')}`,
          taskQueue: config.temporal.taskQueue,
          args: [input],
        })
      ).result();
      return fn(env!.client.workflow.getHandle(summary.stewardWorkflowId!), summary.shards, config);
    });
  }

  it('verifies 3 shards a round, covers every shard in ⌈S/3⌉ rounds, finds a corrupted shard within them and reports P(detect)', async (t) => {
    if (!env) return t.skip('no Temporal server');
    await withSteward('sampled', 3, async (steward, S, config) => {
      assert.ok(S >= 7, `${S} shards`);
      const W = coverRounds(S, 3);
      const rounds: Set<number>[] = [];
      let last!: StewardStatus;
      for (let i = 0; i < W; i++) {
        last = await steward.executeUpdate(verifyNowUpdate);
        assert.equal(last.lastRoundError, undefined);
        const c = await checkedIn(config, last);
        assert.equal(c.shards.size, 3, `round ${i} checked shards ${[...c.shards]}`);
        assert.ok(c.manifest, 'the manifest is verified every round');
        rounds.push(c.shards);
        // The round's report: the sample, the cover and P(detect) for one damaged shard of S.
        const d = last.detection!;
        assert.ok(d, 'the status carries the round detection');
        assert.equal(d.shards, S);
        assert.equal(d.sampledShards, 3);
        assert.equal(d.checkedShards, 3);
        assert.equal(d.coverRounds, W);
        assert.equal(d.round, i);
        const q = blockDetectionBound(0.99, 0.01);
        assert.ok(Math.abs(d.probability - datasetDetection({ shards: S, sampled: 3, damaged: 1, q })) < 1e-12);
        assert.ok(d.probability < 0.99 * (4 / S), `${d.probability}`);
      }
      // Consecutive windows do not overlap (2·3 ≤ S), and W of them cover every shard.
      for (let i = 1; i < W; i++)
        assert.ok(
          [...rounds[i]!].every((x) => !rounds[i - 1]!.has(x)),
          `rounds ${i - 1} and ${i} overlap`,
        );
      const union = new Set(rounds.flatMap((r) => [...r]));
      assert.deepEqual(
        [...union].sort((a, b) => a - b),
        [...Array(S).keys()],
      );
      assert.match(describeDetection(last.detection!), /^this round: P\(detect\) ≥ 0\.\d{4} for damage to /);

      // Corrupt one copy of a shard the last round verified: the next round does not sample it,
      // one within the next W rounds does, and finds it.
      const victimShard = [...rounds[W - 1]!][0]!;
      const victim = (await replicasOf(config, last)).find((r) => r.shard === victimShard && r.providerId)!;
      await corruptBlock(path.join(piecesDir(config, victim.providerId), `${victim.pieceCid}.car`));
      let found = 0;
      for (let i = 1; i <= W && !found; i++) {
        const s = await steward.executeUpdate(verifyNowUpdate);
        const c = await checkedIn(config, s);
        if (s.counters.repairs > last.counters.repairs) {
          assert.ok(c.shards.has(victimShard), 'found in a round that sampled it');
          found = i;
        } else {
          assert.ok(!c.shards.has(victimShard), `round +${i} sampled the victim and missed it`);
        }
        last = s;
      }
      assert.ok(found >= 2 && found <= W, `found after ${found} rounds (W = ${W})`);
      assert.equal(last.health, 'healthy');
      const audit = await readAudit(config, last.auditHead!);
      assert.ok(
        audit.records.some(
          (r) =>
            r.kind === 'verify' &&
            r.result === 'corrupt' &&
            r.pieceCid === victim.pieceCid &&
            r.providerId === victim.providerId,
        ),
      );
      const summaries = audit.records.filter((r) => r.kind === 'verify' && / replicas healthy$/.test(r.result));
      assert.ok(summaries.length >= W + found);
      assert.ok(summaries.every((r) => r.evidence?.includes('this round: P(detect) ≥ ')));

      // Only a seed and counts went to the activities: no list of shards.
      const h = await steward.fetchHistory();
      const inputs = h
        .events!.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'provenantStewardPages')
        .map((e) => {
          const p = e.activityTaskScheduledEventAttributes!.input!.payloads![0]!.data!;
          return JSON.parse(Buffer.from(p).toString('utf8')) as { sample?: Record<string, unknown> };
        });
      assert.ok(inputs.length >= W + found);
      for (const x of inputs) {
        assert.deepEqual(Object.keys(x.sample ?? {}).sort(), ['round', 'seed', 'spec']);
        assert.equal(x.sample!.spec, 3);
      }
    });
  });

  it('by default verifies every shard each round, and says so', async (t) => {
    if (!env) return t.skip('no Temporal server');
    await withSteward('every', undefined, async (steward, S, config) => {
      const s = await steward.executeUpdate(verifyNowUpdate);
      const c = await checkedIn(config, s);
      assert.equal(c.shards.size, S);
      assert.equal(s.detection!.sampledShards, S);
      assert.equal(s.detection!.coverRounds, 1);
      assert.ok(s.detection!.probability >= 0.99, `${s.detection!.probability}`);
      assert.match(
        describeDetection(s.detection!),
        new RegExp(`${S}/${S} shards sampled, every shard within 1 round$`),
      );
    });
  });
});
