/**
 * Upgrades keep running stewards alive: a steward started and run by the code before the replica
 * table (its workflows, compiled from commit a12bf5e, the one the replay fixtures come from), with
 * every replica in its state, is taken over by today's worker on the real server. It goes on, moves
 * to the replica table (continue-as-new), and keeps verifying with a bounded state.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import ts from 'typescript';
import { createActivities } from '../../activities/index.js';
import { readAudit, readReplicaTable } from '../../activities/steward/activities.js';
import type { ConfigInput } from '../../config/schema.js';
import { stewardSettings } from '../../activities/ingest/archive-input.js';
import { startArchive } from '../../workers/client.js';
import { stewardStatusQuery, verifyNowUpdate } from '../../shared/api.js';
import type { StewardReplica, StewardState, StewardStatus } from '../../shared/types.js';
import { bytesOf, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';

/** The commit the replay fixtures were captured at: the steward before the replica table. */
const PREVIOUS = 'a12bf5e';
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** The previous version's workflows module, compiled from git into `dir` (type-only imports drop out). */
function previousWorkflows(dir: string): string | undefined {
  let files: string[];
  try {
    files = execFileSync('git', ['ls-tree', '--name-only', PREVIOUS, 'workflows/'], { cwd: repoRoot, encoding: 'utf8' })
      .split('\n')
      .filter((f) => f.endsWith('.ts'));
  } catch {
    return undefined; // not a git checkout with that commit
  }
  fs.mkdirSync(path.join(dir, 'workflows'), { recursive: true });
  for (const f of files) {
    const src = execFileSync('git', ['show', `${PREVIOUS}:${f}`], { cwd: repoRoot, encoding: 'utf8' });
    const js = ts.transpileModule(src, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
    }).outputText;
    fs.writeFileSync(path.join(dir, f.replace(/\.ts$/, '.js')), js);
  }
  fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
  const nodeModules = path.resolve(
    createRequire(import.meta.url).resolve('@temporalio/workflow/package.json'),
    '../../..',
  );
  fs.symlinkSync(nodeModules, path.join(dir, 'node_modules'));
  return path.join(dir, 'workflows', 'index.js');
}

const key = (r: Pick<StewardReplica, 'pieceCid' | 'providerId'>) => `${r.pieceCid}@${r.providerId}`;

describe('steward upgrade', () => {
  let env: TestWorkflowEnvironment | undefined;
  let data: string;
  before(async (t) => {
    env = await startTemporal(t as never);
    data = tmpDir('pv-upgrade-');
    writeTree(path.join(data, 'src'), { 'model.bin': bytesOf(5 * 1024 * 1024 + 3, 'up'), 'cfg.json': '{"x":2}' });
  });
  after(async () => {
    await env?.teardown();
  });

  it('a steward started by the previous version continues under the new code and reaches the bounded state', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const oldWorkflows = previousWorkflows(path.join(data, 'previous'));
    if (!oldWorkflows) return t.skip(`commit ${PREVIOUS} not available`);
    const config = testConfig(path.join(data, 'cfg'), {
      steward: { verifyEvery: '1 hour', searchAttributes: true },
    } as Partial<ConfigInput>);
    // A dataset archived (copies stored, manifest written) without a steward of today's kind.
    const summary = await withWorker(env, config, async () =>
      (await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: 'upgrade' })).handle.result(),
    );
    const current = env.client.workflow.getHandle(summary.stewardWorkflowId!);
    const { replicas } = await readReplicaTable(
      config,
      (await withWorker(env, config, () => current.query(stewardStatusQuery))).replicaTable!.tableCid,
    );
    await current.terminate('replaced by a steward of the previous version for this test');
    assert.ok(replicas.length >= 6, `${replicas.length} replicas`);

    // The previous version's steward input: every replica inline, as its archive passed it.
    const legacy: StewardState = {
      datasetId: 'upgrade',
      manifestCid: summary.manifestCid,
      copies: 2,
      providers: config.providers.map((p) => ({ id: p.id, kind: p.kind })),
      policy: { preferEnergy: false, cooldownMs: 900_000 },
      settings: stewardSettings(config),
      replicas,
      audit: { cid: null, seq: 0 },
      rounds: 0,
      runs: 0,
      counters: { verifications: 0, repairs: 0, renewals: 0, retired: 0 },
    };
    const workflowId = `provenant-steward-upgrade-${crypto.randomBytes(4).toString('hex')}`;
    const steward = await env.client.workflow.start('stewardDataset', {
      workflowId,
      taskQueue: config.temporal.taskQueue,
      args: [legacy],
    });

    // 1. The previous version runs it: a round, with every replica in its state.
    const sets = createActivities({ config });
    const oldWorker = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      taskQueue: config.temporal.taskQueue,
      workflowsPath: oldWorkflows,
      activities: sets.shared,
    });
    const old = (await oldWorker.runUntil(steward.executeUpdate(verifyNowUpdate))) as StewardStatus;
    await sets.close();
    assert.equal(old.rounds, 1);
    assert.equal(old.replicas?.length, replicas.length, 'the previous version holds every replica');
    assert.equal(old.replicaTable, undefined);
    const firstRun = (await steward.describe()).runId;

    // 2. Today's worker takes over: it replays the old run, finishes its next round, moves to the table.
    const { upgraded, verified } = await withWorker(env, config, async () => {
      const during = await steward.executeUpdate(verifyNowUpdate);
      assert.equal(during.rounds, 2, 'the old run went on under the new code');
      let st: StewardStatus | undefined;
      for (let i = 0; i < 200; i++) {
        st = await steward.query(stewardStatusQuery).catch(() => undefined);
        if (st?.replicaTable?.tableCid) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(st?.replicaTable?.tableCid, `no replica table: ${JSON.stringify(st)}`);
      return { upgraded: st, verified: await steward.executeUpdate(verifyNowUpdate) };
    });
    const d = await steward.describe();
    assert.notEqual(d.runId, firstRun, 'continued as new');
    assert.equal(d.status.name, 'RUNNING');
    assert.equal(upgraded.runs, 1);
    assert.equal(upgraded.replicas, undefined, 'no replica list in the new state');
    assert.equal(upgraded.replicaCount, replicas.length);
    // The new run's input is the bounded state (a table reference), not the replicas.
    const input = (await steward.fetchHistory()).events?.[0]?.workflowExecutionStartedEventAttributes?.input
      ?.payloads?.[0];
    const state = JSON.parse(Buffer.from(input!.data!).toString('utf8')) as StewardState;
    assert.equal(state.replicas, undefined, 'the new run starts without the replicas');
    assert.equal(state.table?.tableCid, upgraded.replicaTable!.tableCid);
    assert.ok(JSON.stringify(state).length < JSON.stringify(legacy).length);
    assert.equal(verified.rounds, 3);
    assert.equal(verified.health, 'healthy');
    assert.equal(verified.counters.verifications, 3);
    const table = await readReplicaTable(config, verified.replicaTable!.tableCid);
    assert.deepEqual(table.replicas.map(key).sort(), replicas.map(key).sort(), 'the same replicas, now in the table');
    assert.ok(table.replicas.every((r) => r.state === 'healthy'));
    // One audit chain across both versions.
    const audit = await readAudit(config, verified.auditHead!);
    assert.deepEqual(audit.problems, []);
    assert.equal(audit.records.length, verified.auditRecords);
    assert.equal(audit.records[0]!.kind, 'archive');
    assert.ok(audit.records.filter((r) => r.kind === 'verify' && /replicas healthy/.test(r.result)).length >= 3);
  });

  it('a steward started with every replica inline (by an archive of the previous version) converts them into a table before its first round', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const config = testConfig(path.join(data, 'cfg-fresh'), {
      steward: { verifyEvery: '1 hour' },
    } as Partial<ConfigInput>);
    const { summary, replicas, status } = await withWorker(env, config, async () => {
      const summary = await (
        await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: 'upgrade-fresh' })
      ).handle.result();
      const current = env!.client.workflow.getHandle(summary.stewardWorkflowId!);
      const { replicas } = await readReplicaTable(
        config,
        (await current.query(stewardStatusQuery)).replicaTable!.tableCid,
      );
      await current.terminate('replaced for this test');
      const legacy: StewardState = {
        datasetId: 'upgrade-fresh',
        manifestCid: summary.manifestCid,
        copies: 2,
        providers: config.providers.map((p) => ({ id: p.id, kind: p.kind })),
        settings: stewardSettings(config),
        replicas,
        audit: { cid: null, seq: 0 },
        rounds: 0,
        runs: 0,
        counters: { verifications: 0, repairs: 0, renewals: 0, retired: 0 },
      };
      const h = await env!.client.workflow.start('stewardDataset', {
        workflowId: `provenant-steward-fresh-${crypto.randomBytes(4).toString('hex')}`,
        taskQueue: config.temporal.taskQueue,
        args: [legacy],
      });
      return { summary, replicas, status: (await h.executeUpdate(verifyNowUpdate)) as StewardStatus };
    });
    assert.ok(summary.shards >= 2);
    assert.equal(status.replicas, undefined);
    assert.equal(status.replicaCount, replicas.length);
    assert.equal(status.rounds, 1);
    assert.equal(status.health, 'healthy');
    const table = await readReplicaTable(config, status.replicaTable!.tableCid);
    assert.deepEqual(table.replicas.map(key).sort(), replicas.map(key).sort());
    const audit = await readAudit(config, status.auditHead!);
    assert.deepEqual(audit.problems, []);
    assert.equal(audit.records[0]!.kind, 'archive');
  });
});
