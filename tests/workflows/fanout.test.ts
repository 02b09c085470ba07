/**
 * Bounded workflow history: on a dev server whose history limit is lowered below what copying
 * every shard in the archive's own history takes (3 events per put alone), an archive of many
 * small shards (16 KiB leaves, 64 KiB shards) completes through replication children, one per
 * page of shards, restores byte-identical, and no workflow involved has more events or a larger
 * payload than the lowered limits (read from the server).
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { archiveInput } from '../../activities/ingest/archive-input.js';
import type { Config, ConfigInput } from '../../config/schema.js';
import { readManifestCar } from '../../activities/manifest/manifest.js';
import { replicateWorkflowId } from '../../shared/api.js';
import { archiveDataset } from '../../workflows/index.js';
import { startRestore } from '../../workers/client.js';
import type { TestWorkflowEnvironment as Env } from '@temporalio/testing';
import { bytesOf, readTree, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import { workflowTree } from '../helpers/histories.js';

const KiB = 1024;
const HISTORY_LIMIT = 300;
const BLOB_LIMIT = 16 * KiB;
const PAGE_SHARDS = 8;

describe('bounded workflow history: replication fans out to children', () => {
  let env: Env | undefined;
  let data: string;
  let config: Config;
  before(async (t) => {
    env = await startTemporal(t as never, {
      dynamicConfig: {
        'limit.historyCount.error': HISTORY_LIMIT,
        'limit.historyCount.warn': HISTORY_LIMIT / 2,
        'limit.blobSize.error': BLOB_LIMIT,
        'limit.blobSize.warn': BLOB_LIMIT / 2,
      },
    });
    if (!env) return;
    data = tmpDir('pv-fanout-');
    // About 2.8 MiB in 64 KiB shards: some 45 shards, 6 pages of 8.
    const files: Record<string, Buffer> = { 'big.bin': bytesOf(1200 * KiB + 7, 'big') };
    for (let i = 0; i < 30; i++) files[`mid/m${i}.bin`] = bytesOf(50 * KiB + i, `m${i}`);
    for (let i = 0; i < 60; i++) files[`small/d${i % 6}/s${i}.txt`] = bytesOf(1000 + 37 * i, `s${i}`);
    writeTree(path.join(data, 'src'), files);
    config = testConfig(path.join(data, 'cfg'), {
      pack: { shardBytes: 64 * KiB, chunkBytes: 16 * KiB },
      replication: { copies: 2 },
      steward: { verifyEvery: '1 hour' },
    } as Partial<ConfigInput>);
  });
  after(async () => {
    await env?.teardown();
  });

  it('archives ≥ 3 pages of shards under a history limit the per-shard design exceeds; every history and payload stays bounded', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const input = archiveInput(config, { dir: path.join(data, 'src'), datasetId: 'fanout', noSteward: true });
    input.replicatePageShards = PAGE_SHARDS;
    const workflowId = `provenant-archive-fanout-${crypto.randomBytes(3).toString('hex')}`;
    const target = path.join(data, 'restored');
    const { summary, tree, restoreTree } = await withWorker(env, config, async () => {
      const handle = await env!.client.workflow.start(archiveDataset, {
        workflowId,
        taskQueue: config.temporal.taskQueue,
        args: [input],
      });
      const summary = await handle.result();
      const restore = await startRestore(env!.client, config, {
        manifestCid: summary.manifestCid,
        target,
        force: false,
      });
      await restore.result();
      return {
        summary,
        tree: await workflowTree(env!.client, workflowId),
        restoreTree: await workflowTree(env!.client, restore.workflowId),
      };
    });
    assert.ok(summary.shards > 3 * PAGE_SHARDS, `${summary.shards} shards`);
    assert.equal(
      Object.values(summary.replicas).reduce((a, b) => a + b, 0),
      2 * summary.shards,
    );
    // Copying every shard in one history: three events per put alone, over the limit.
    assert.ok(2 * summary.shards * 3 > HISTORY_LIMIT, `${summary.shards} shards would fit the old way`);
    const pages = Math.ceil(summary.shards / PAGE_SHARDS);
    const children = tree.filter((w) => w.workflowId !== workflowId).map((w) => w.workflowId);
    for (let p = 0; p < pages; p++) assert.ok(children.includes(replicateWorkflowId(workflowId, p)), `page ${p}`);
    const all = [...tree, ...restoreTree];
    t.diagnostic(
      `${summary.shards} shards, ${tree.length - 1} children; longest history ${Math.max(...all.map((w) => w.events))} events, largest payload ${Math.max(...all.map((w) => w.largestPayload))} bytes`,
    );
    for (const w of all) {
      assert.ok(w.events <= HISTORY_LIMIT, `${w.workflowId}: ${w.events} events`);
      assert.ok(w.largestPayload <= BLOB_LIMIT, `${w.workflowId}: a payload of ${w.largestPayload} bytes`);
    }
    // No put in the archive's own history: every shard copy was made by a child.
    const parent = tree.find((w) => w.workflowId === workflowId)!;
    const parentPuts = (parent.history.events ?? []).filter(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'provenantPutPiece',
    ).length;
    assert.equal(parentPuts, 2, 'only the manifest is copied by the archive itself');

    // The leaf size is recorded in the manifest (a copy on the first provider).
    const p0 = config.providers[0]!;
    assert.equal(p0.kind, 'local');
    const car = path.join(p0.kind === 'local' ? p0.path : '', 'pieces', `${summary.manifestPieceCid}.car`);
    const { manifest } = await readManifestCar(car, summary.manifestCid);
    assert.equal(manifest.layout.chunkBytes, 16 * KiB);
    const src = readTree(path.join(data, 'src'));
    const out = readTree(target);
    assert.deepEqual([...out.keys()].sort(), [...src.keys()].sort());
    for (const [rel, bytes] of src) assert.ok(out.get(rel)!.equals(bytes), `${rel} restored byte-identical`);
  });

  it('packs in units (one shard each, so 2 pages of units) under the same limits: every history and payload stays bounded', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const units = { ...config, pack: { ...config.pack, unitShards: 1 } };
    const input = archiveInput(units, { dir: path.join(data, 'src'), datasetId: 'fanout-units', noSteward: true });
    const workflowId = `provenant-archive-units-${crypto.randomBytes(3).toString('hex')}`;
    const target = path.join(data, 'restored-units');
    const { summary, tree } = await withWorker(env, units, async () => {
      const handle = await env!.client.workflow.start(archiveDataset, {
        workflowId,
        taskQueue: units.temporal.taskQueue,
        args: [input],
      });
      const summary = await handle.result();
      await (
        await startRestore(env!.client, units, { manifestCid: summary.manifestCid, target, force: false })
      ).result();
      return { summary, tree: await workflowTree(env!.client, workflowId) };
    });
    const pages = tree.filter((w) => w.workflowId.startsWith(`${workflowId}/units-`));
    assert.ok(pages.length >= 2, `${pages.length} unit pages`);
    t.diagnostic(
      `${summary.shards} shards in units, ${pages.length} pages; longest history ${Math.max(...tree.map((w) => w.events))} events, largest payload ${Math.max(...tree.map((w) => w.largestPayload))} bytes`,
    );
    for (const w of tree) {
      assert.ok(w.events <= HISTORY_LIMIT, `${w.workflowId}: ${w.events} events`);
      assert.ok(w.largestPayload <= BLOB_LIMIT, `${w.workflowId}: a payload of ${w.largestPayload} bytes`);
    }
    const src = readTree(path.join(data, 'src'));
    assert.deepEqual(readTree(target), src);
  });
});
