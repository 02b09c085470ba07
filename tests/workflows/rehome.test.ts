/**
 * rehomeProviders on the real Temporal server: every dataset moved off a provider that is shut
 * down (paged over the stewards, continuing as new between pages), nothing lost, every step in
 * each dataset's audit log; a reachable provider emptied onto a provider named with `to`. And the
 * workflow's bookkeeping (pure).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readAudit, readReplicaTable } from '../../activities/steward/activities.js';
import type { Config, ConfigInput } from '../../config/schema.js';
import { startArchive, startRestore } from '../../workers/client.js';
import { batches, recordOutcome, startProgress } from '../../workflows/rehome.js';
import {
  rehomeProviders,
  rehomeWorkflowId,
  stewardStatusQuery,
  verifyNowUpdate,
  type StewardReplica,
  type StewardStatus,
} from '../../workflows/index.js';
import { bytesOf, readTree, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import { writeKeyPair } from '../evidence/keypairs.js';

const MiB = 1024 * 1024;

async function replicasOf(config: Config, s: StewardStatus): Promise<StewardReplica[]> {
  return (await readReplicaTable(config, s.replicaTable?.tableCid ?? null)).replicas;
}

function localRoot(config: Config, id: string): string {
  const p = config.providers.find((x) => x.id === id)!;
  if (p.kind !== 'local') throw new Error('local providers only');
  return p.path;
}

describe('rehome bookkeeping', () => {
  it('counts moved, remaining, skipped and failed stewards and lists the ones not done', () => {
    const p = startProgress(0);
    const ev = { from: ['x'], requestedAt: '', passes: 1, moved: 3, remaining: 0, completedAt: 'now' };
    recordOutcome(p, 'w1', { datasetId: 'a', state: ev });
    recordOutcome(p, 'w2', { datasetId: 'b', state: { ...ev, moved: 1, remaining: 2, completedAt: undefined } });
    recordOutcome(p, 'w3', { skipped: 'steward not running' });
    recordOutcome(p, 'w4', { error: 'NoHealthyReplicaError: gone' });
    assert.deepEqual(
      { d: p.datasets, c: p.completed, m: p.moved, r: p.remaining, s: p.skipped, f: p.failed },
      { d: 2, c: 1, m: 4, r: 2, s: 1, f: 1 },
    );
    assert.deepEqual(
      p.incomplete.map((i) => i.workflowId),
      ['w2', 'w4'],
    );
  });

  it('keeps at most 100 datasets in the list of those not done', () => {
    const p = startProgress(0);
    for (let i = 0; i < 250; i++) recordOutcome(p, `w${i}`, { error: 'x' });
    assert.equal(p.failed, 250);
    assert.equal(p.incomplete.length, 100);
  });

  it('cuts a page into batches in order', () => {
    assert.deepEqual(batches([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
    assert.deepEqual(batches([], 4), []);
    assert.deepEqual(batches([1, 2], 0), [[1], [2]]);
  });
});

describe('rehomeProviders', () => {
  let env: TestWorkflowEnvironment | undefined;
  let data: string;
  before(async (t) => {
    env = await startTemporal(t as never);
    data = tmpDir('pv-rehome-');
    writeTree(path.join(data, 'a'), { 'model.bin': bytesOf(5 * MiB + 5, 'rh-a'), 'cfg.json': '{"x":1}' });
    writeTree(path.join(data, 'b'), { 'data.bin': bytesOf(3 * MiB + 1, 'rh-b'), 'readme.md': '# b' });
  });
  after(async () => {
    await env?.teardown();
  });

  it('moves every dataset off a provider that is shut down, checkpointed by page, nothing lost, all audited', async (t) => {
    if (!env) return t.skip('no Temporal server');
    // With a signing key: the moves' audit records are signed like every other record.
    const key = writeKeyPair(data, 'rehome-signer', 'ed25519');
    const config = testConfig(path.join(data, 'down'), {
      steward: { verifyEvery: '1 hour', unreachableGrace: '1 day' },
      signing: { keyFile: key.priv },
    } as Partial<ConfigInput>);
    await withWorker(env, config, async () => {
      const summaries: Awaited<ReturnType<Awaited<ReturnType<typeof startArchive>>['handle']['result']>>[] = [];
      for (const id of ['a', 'b']) {
        const { handle } = await startArchive(env!.client, config, { dir: path.join(data, id), datasetId: `rh-${id}` });
        summaries.push(await handle.result());
      }
      const stewards = summaries.map((s) => env!.client.workflow.getHandle(s.stewardWorkflowId!));
      const before = new Map<string, StewardReplica[]>();
      for (const [i, st] of stewards.entries()) {
        const s = await st.executeUpdate(verifyNowUpdate);
        assert.equal(s.health, 'healthy');
        before.set(summaries[i]!.datasetId, await replicasOf(config, s));
      }
      const onLocal1 = [...before.values()].flat().filter((r) => r.providerId === 'local-1');
      assert.ok(onLocal1.length > 0, 'local-1 holds copies');

      // The provider shuts down (its directory renamed away, as an unmounted volume).
      const root = localRoot(config, 'local-1');
      fs.renameSync(root, `${root}.shutdown`);
      const handle = await env!.client.workflow.start(rehomeProviders, {
        taskQueue: config.temporal.taskQueue,
        workflowId: rehomeWorkflowId(['local-1']),
        // One steward per page and one page per run: every page is a checkpoint across continue-as-new.
        args: [{ from: ['local-1'], pageSize: 1, concurrency: 1, pagesPerRun: 1 }],
      });
      const p = await handle.result();
      assert.equal(p.done, true);
      assert.ok(p.runs >= 1, `continued as new (${p.runs} runs)`);
      assert.ok(p.pages >= 2, `${p.pages} pages`);
      assert.equal(p.datasets, 2);
      assert.equal(p.completed, 2);
      assert.equal(p.remaining, 0);
      assert.equal(p.failed, 0);
      assert.equal(p.moved, onLocal1.length);

      for (const [i, st] of stewards.entries()) {
        const s = await st.query(stewardStatusQuery);
        const id = summaries[i]!.datasetId;
        const reps = await replicasOf(config, s);
        assert.equal(reps.filter((r) => r.providerId === 'local-1').length, 0, `${id}: nothing left on local-1`);
        assert.ok(
          reps.every((r) => r.state === 'healthy'),
          JSON.stringify(reps.map((r) => [r.providerId, r.state])),
        );
        assert.equal(reps.length, before.get(id)!.length, `${id}: as many copies as before`);
        assert.equal(s.health, 'healthy');
        assert.ok(s.evacuation?.completedAt, 'the evacuation is complete');
        // Every step is in the dataset's log: each old copy leaves after a new one verified.
        const audit = await readAudit(config, s.auditHead!);
        assert.deepEqual(audit.problems, []);
        const unsigned = audit.records.filter((r) => !r.signer);
        assert.deepEqual(
          unsigned.map((r) => [r.seq, r.kind, r.result]),
          [],
          'every audit record is signed, the moves included',
        );
        for (const old of before.get(id)!.filter((r) => r.providerId === 'local-1')) {
          const ev = audit.records.filter((r) => r.kind === 'rehome' && r.pieceCid === old.pieceCid);
          const made = ev.findIndex((r) => r.providerId !== 'local-1' && r.result.startsWith('new copy verified'));
          const gone = ev.findIndex((r) => r.providerId === 'local-1' && r.result.startsWith('dropped from the table'));
          assert.ok(made >= 0 && gone > made, JSON.stringify(ev.map((r) => [r.providerId, r.result])));
        }
      }
      // Nothing lost: each dataset restores byte-identical while local-1 is gone.
      for (const [i, s] of summaries.entries()) {
        const target = path.join(data, `out-${i}`);
        await (await startRestore(env!.client, config, { manifestCid: s.manifestCid, target, force: false })).result();
        assert.deepEqual(readTree(target), readTree(path.join(data, ['a', 'b'][i]!)));
      }
      // Run again (resumed, or a second rehome): each steward answers at once, without a round, nothing moves.
      const roundsOf = () => Promise.all(stewards.map(async (st) => (await st.query(stewardStatusQuery)).rounds));
      const roundsBefore = await roundsOf();
      const again = await env!.client.workflow.execute(rehomeProviders, {
        taskQueue: config.temporal.taskQueue,
        workflowId: `${rehomeWorkflowId(['local-1'])}-again`,
        args: [{ from: ['local-1'], pageSize: 10, concurrency: 2, pagesPerRun: 10 }],
      });
      assert.equal(again.completed, 2);
      assert.equal(again.moved, p.moved, 'the same moves, none new');
      assert.deepEqual(await roundsOf(), roundsBefore);
    });
  });

  it('empties a reachable provider onto the one named with `to`, deleting the old copies', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const base = path.join(data, 'to');
    const config = testConfig(base, {
      providers: [1, 2, 3, 4].map((i) => ({ kind: 'local', id: `local-${i}`, path: path.join(base, 'p', `${i}`) })),
      steward: { verifyEvery: '1 hour' },
    } as Partial<ConfigInput>);
    await withWorker(env, config, async () => {
      // Archived onto local-1..3; local-4 joins later, as a provider added to the config.
      const { handle } = await startArchive(env!.client, config, {
        dir: path.join(data, 'a'),
        datasetId: 'rh-to',
        providers: ['local-1', 'local-2', 'local-3'],
      });
      const s = await handle.result();
      const steward = env!.client.workflow.getHandle(s.stewardWorkflowId!);
      const first = await steward.executeUpdate(verifyNowUpdate);
      const old = (await replicasOf(config, first)).filter((r) => r.providerId === 'local-1');
      assert.ok(old.length > 0);
      const p = await env!.client.workflow.execute(rehomeProviders, {
        taskQueue: config.temporal.taskQueue,
        workflowId: rehomeWorkflowId(['local-1']),
        args: [{ from: ['local-1'], to: ['local-4'], pageSize: 10, concurrency: 2, pagesPerRun: 10 }],
      });
      assert.equal(p.completed, 1);
      assert.equal(p.moved, old.length);
      const now = await replicasOf(config, await steward.query(stewardStatusQuery));
      assert.equal(now.filter((r) => r.providerId === 'local-1').length, 0);
      for (const r of old) {
        assert.ok(
          now.some((x) => x.pieceCid === r.pieceCid && x.providerId === 'local-4' && x.state === 'healthy'),
          `${r.pieceCid} on local-4`,
        );
        assert.equal(
          fs.existsSync(path.join(base, 'p', '1', 'pieces', `${r.pieceCid}.car`)),
          false,
          'deleted from local-1',
        );
      }
      const audit = await readAudit(config, (await steward.query(stewardStatusQuery)).auditHead!);
      assert.ok(audit.records.some((r) => r.kind === 'rehome' && /deleted from local-1/.test(r.result)));
      // Later repairs never place a copy on local-1 again.
      fs.rmSync(path.join(base, 'p', '4', 'pieces', `${old[0]!.pieceCid}.car`));
      const repaired = await steward.executeUpdate(verifyNowUpdate);
      const after1 = await replicasOf(config, repaired);
      assert.equal(after1.filter((r) => r.providerId === 'local-1').length, 0);
      assert.equal(repaired.health, 'healthy');
    });
  });
});
