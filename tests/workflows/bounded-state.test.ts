/**
 * Bounded workflow state: on a dev server whose payload limit is lowered to 16 KiB, an archive of
 * many shards completes and its steward runs, although the previous steward input (every replica
 * inline) would have been over the limit: the steward is handed a reference to the replica table.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readReplicaTable } from '../../activities/steward/activities.js';
import { archiveInput } from '../../activities/ingest/archive-input.js';
import type { ConfigInput } from '../../config/schema.js';
import { stewardStatusQuery, verifyNowUpdate } from '../../shared/api.js';
import type { StewardState } from '../../shared/types.js';
import { archiveDataset } from '../../workflows/index.js';
import { bytesOf, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';

const LIMIT = 16 * 1024;
const MiB = 1024 * 1024;

/** Size of every payload in a workflow's history (inputs, results, signals), largest first. */
async function largestPayload(env: TestWorkflowEnvironment, workflowId: string, runId?: string): Promise<number> {
  const h = await env.client.workflow.getHandle(workflowId, runId).fetchHistory();
  let max = 0;
  const walk = (v: unknown): void => {
    if (!v || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach(walk);
    const o = v as Record<string, unknown>;
    if (o.data instanceof Uint8Array && 'metadata' in o) max = Math.max(max, o.data.length);
    for (const x of Object.values(o)) walk(x);
  };
  walk(h.events);
  return max;
}

describe('bounded workflow state', () => {
  let env: TestWorkflowEnvironment | undefined;
  let data: string;
  before(async (t) => {
    env = await startTemporal(t as never, {
      dynamicConfig: { 'limit.blobSize.error': LIMIT, 'limit.blobSize.warn': LIMIT / 2 },
    });
    if (!env) return;
    data = tmpDir('pv-bounded-');
    // 48 files of 1 MiB in 2 MiB shards: about 25 shards, 2 copies each.
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 48; i++) files[`part-${String(i).padStart(3, '0')}.bin`] = bytesOf(MiB, `b${i}`);
    writeTree(path.join(data, 'src'), files);
  });
  after(async () => {
    await env?.teardown();
  });

  it('archives many shards under a 16 KiB payload limit that every-replica steward input would exceed; the steward pages its table', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const config = testConfig(path.join(data, 'cfg'), {
      replication: { copies: 2 },
      steward: { verifyEvery: '1 hour', searchAttributes: true },
    } as Partial<ConfigInput>);
    const input = archiveInput(config, { dir: path.join(data, 'src'), datasetId: 'bounded' });
    input.steward = { ...input.steward!, pageReplicas: 8 };
    const workflowId = `provenant-archive-bounded-${crypto.randomBytes(3).toString('hex')}`;
    const { summary, status, verified } = await withWorker(env, config, async () => {
      const summary = await (
        await env!.client.workflow.start(archiveDataset, {
          workflowId,
          taskQueue: config.temporal.taskQueue,
          args: [input],
        })
      ).result();
      const steward = env!.client.workflow.getHandle(summary.stewardWorkflowId!);
      const status = await steward.query(stewardStatusQuery);
      return { summary, status, verified: await steward.executeUpdate(verifyNowUpdate) };
    });
    assert.ok(summary.shards >= 20, `${summary.shards} shards`);
    const replicas = (summary.shards + 1) * 2; // every shard and the manifest, 2 copies each
    assert.equal(status.replicaCount, replicas);
    assert.equal(status.pieces, summary.shards + 1);
    assert.ok(status.replicaTable!.pages >= Math.ceil(replicas / 8), `${status.replicaTable!.pages} pages`);
    assert.equal(status.health, 'healthy');
    // The steward's round went through every page.
    assert.equal(verified.rounds, 1);
    assert.equal(verified.health, 'healthy');
    assert.equal(verified.replicaCount, replicas);
    assert.equal(verified.lastRoundError, undefined);
    const table = await readReplicaTable(config, verified.replicaTable!.tableCid);
    assert.equal(table.replicas.length, replicas);
    assert.ok(
      table.replicas.every((r) => r.state === 'healthy' && r.lastCheckedAt === verified.lastVerifiedAt),
      'every replica checked in the round',
    );
    // The previous version's steward input, every replica inline, is over the limit; the one sent is far under it.
    const h = await env.client.workflow.getHandle(summary.stewardWorkflowId!).fetchHistory();
    const sent = h.events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!.data!;
    const state = JSON.parse(Buffer.from(sent).toString('utf8')) as StewardState;
    assert.equal(state.replicas, undefined);
    const previous = JSON.stringify({
      ...state,
      table: undefined,
      replicas: table.replicas.map((r) => ({
        ...r,
        lastCheckedAt: r.lastCheckedAt,
        lastEvidence: 'stored and checked against its CAR CID',
      })),
    });
    assert.ok(Buffer.byteLength(previous) > LIMIT, `the previous input would be ${Buffer.byteLength(previous)} bytes`);
    assert.ok(sent.length < LIMIT / 4, `steward input ${sent.length} bytes`);
    // The table the archive built was replaced in the round: its blocks are deleted from the providers.
    assert.notEqual(verified.replicaTable!.tableCid, status.replicaTable!.tableCid);
    await assert.rejects(
      readReplicaTable(config, status.replicaTable!.tableCid),
      (e: Error) => e.name === 'ManifestNotFoundError' || e.name === 'IntegrityError',
    );
    for (const [id, run] of [
      [workflowId, undefined],
      [summary.stewardWorkflowId!, undefined],
    ] as const) {
      assert.ok((await largestPayload(env, id, run)) <= LIMIT, `${id}: a payload over the limit`);
    }
  });
});
