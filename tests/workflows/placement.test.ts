/** Placement policy: pure rules, then on the real server: failover and unsatisfiable policies. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ConfigInput } from '../../config/schema.js';
import { startArchive, startRestore } from '../../workers/client.js';
import { checkSatisfiable, nextProvider, NO_POLICY } from '../../workflows/placement.js';
import type { ProviderRef } from '../../shared/types.js';
import { bytesOf, readTree, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';

const P = (id: string, attrs: Partial<ProviderRef> = {}): ProviderRef => ({ id, kind: 'local', ...attrs });

describe('placement rules', () => {
  it('never puts two copies on one provider and rotates the first choice per piece', () => {
    const ps = [P('a'), P('b'), P('c')];
    const first = nextProvider(ps, NO_POLICY, { slot: 1, placed: [], tried: new Set() }).provider!;
    assert.equal(first.id, 'b');
    const second = nextProvider(ps, NO_POLICY, { slot: 1, placed: [first], tried: new Set() }).provider!;
    assert.equal(second.id, 'c');
    assert.equal(checkSatisfiable(ps, NO_POLICY, 4)?.startsWith('distinct providers'), true);
  });

  it('keeps caps per org and names the cap when it cannot be met', () => {
    const ps = [P('a', { org: 'acme' }), P('b', { org: 'acme' }), P('c', { org: 'other' })];
    const policy = { ...NO_POLICY, maxPerOrg: 1 };
    assert.equal(checkSatisfiable(ps, policy, 2), undefined);
    assert.match(checkSatisfiable(ps, policy, 3)!, /maxPerOrg 1/);
    const placed = [ps[0]!];
    assert.equal(nextProvider(ps, policy, { slot: 0, placed, tried: new Set() }).provider!.id, 'c');
  });

  it('applies price ceiling, energy minimum and max piece size, and prefers green when asked', () => {
    const ps = [
      P('cheap', { pricePerTiBMonth: 2, energyScore: 10 }),
      P('green', { pricePerTiBMonth: 4, energyScore: 90 }),
      P('pricey', { pricePerTiBMonth: 20, energyScore: 95 }),
    ];
    assert.match(checkSatisfiable(ps, { ...NO_POLICY, maxPricePerTiBMonth: 5 }, 3)!, /maxPricePerTiBMonth 5/);
    assert.match(checkSatisfiable(ps, { ...NO_POLICY, minEnergyScore: 50 }, 3)!, /minEnergyScore 50/);
    assert.equal(
      nextProvider(ps, { ...NO_POLICY, preferEnergy: true }, { slot: 0, placed: [], tried: new Set() }).provider!.id,
      'pricey',
    );
    assert.equal(
      nextProvider(
        ps,
        { ...NO_POLICY, preferEnergy: true, maxPricePerTiBMonth: 5 },
        { slot: 0, placed: [], tried: new Set() },
      ).provider!.id,
      'green',
    );
    assert.match(checkSatisfiable([P('small', { maxPieceBytes: 1000 })], NO_POLICY, 1, 5000)!, /maxPieceBytes/);
  });

  it('tries providers cooling down after failures last', () => {
    const ps = [P('a'), P('b'), P('c')];
    assert.equal(
      nextProvider(ps, NO_POLICY, { slot: 0, placed: [], tried: new Set(), avoid: new Set(['a']) }).provider!.id,
      'b',
    );
    assert.equal(
      nextProvider(ps, NO_POLICY, { slot: 0, placed: [P('b'), P('c')], tried: new Set(), avoid: new Set(['a']) })
        .provider!.id,
      'a',
    );
  });
});

function failureType(err: unknown): { type?: string; message: string } {
  let e: unknown = err;
  while (e instanceof WorkflowFailedError || e instanceof ActivityFailure) e = (e as Error).cause;
  return e instanceof ApplicationFailure ? { type: e.type ?? undefined, message: e.message } : { message: String(e) };
}

describe('placement on a real Temporal server', () => {
  let env: TestWorkflowEnvironment | undefined;
  let data: string;
  before(async (t) => {
    env = await startTemporal(t as never);
    data = tmpDir('pv-place-');
    writeTree(path.join(data, 'src'), { 'a.bin': bytesOf(3 * 1024 * 1024, 'place'), 'b.txt': 'b' });
  });
  after(async () => {
    await env?.teardown();
  });

  it('places replicas elsewhere when a provider is down, and avoids it on the next archive', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const blocker = path.join(data, 'not-a-dir');
    fs.writeFileSync(blocker, 'a file where the provider directory should be');
    const config = testConfig(path.join(data, 'down'), {
      replication: { copies: 2, putAttempts: 2 },
      providers: [
        { kind: 'local', id: 'down', path: path.join(blocker, 'provider') },
        { kind: 'local', id: 'up-1', path: path.join(data, 'down', 'p1') },
        { kind: 'local', id: 'up-2', path: path.join(data, 'down', 'p2') },
      ],
    } as Partial<ConfigInput>);
    const [first, second] = await withWorker(env, config, async () => {
      const one = await (
        await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: 'down-1', noSteward: true })
      ).handle.result();
      const two = await (
        await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: 'down-2', noSteward: true })
      ).handle.result();
      return [one, two];
    });
    assert.equal(first.replicas.down, undefined);
    assert.equal(first.replicas['up-1'], first.shards);
    assert.equal(first.replicas['up-2'], first.shards);
    assert.ok(
      first.failovers.some((f) => f.providerId === 'down'),
      'the failed attempt is reported',
    );
    // Health memory: the second archive does not even try the provider that just failed.
    assert.deepEqual(second.failovers, []);
    assert.equal(second.replicas['up-1'], second.shards);
  });

  it('replicates shards while the pack runs: a page child stores copies before the pack activity completes', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const root = path.join(data, 'pipeline');
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 12; i++) files[`part-${i}.bin`] = bytesOf(2 * 1024 * 1024 + 1000 * i, `pipe${i}`);
    writeTree(path.join(root, 'src'), files);
    const config = testConfig(root, {
      replication: { copies: 2 },
      providers: [
        { kind: 'local', id: 'p1', path: path.join(root, 'p1') },
        { kind: 'local', id: 'p2', path: path.join(root, 'p2') },
      ],
    } as Partial<ConfigInput>);
    const { result, history, children } = await withWorker(env, config, async () => {
      const { handle } = await startArchive(env!.client, config, {
        dir: path.join(root, 'src'),
        datasetId: 'pipeline',
        noSteward: true,
      });
      const result = await handle.result();
      const history = await handle.fetchHistory();
      const ids = (history.events ?? [])
        .map((e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId)
        .filter((id): id is string => !!id && id.includes('/replicate-'));
      const children = await Promise.all(ids.map((id) => env!.client.workflow.getHandle(id).fetchHistory()));
      return { result, history, children };
    });
    assert.ok(result.shards >= 10, `${result.shards} shards`);
    const ms = (e: { eventTime?: { seconds?: unknown; nanos?: number | null } | null }) =>
      Number(e.eventTime?.seconds ?? 0) * 1000 + (e.eventTime?.nanos ?? 0) / 1e6;
    const events = history.events ?? [];
    const packScheduled = events.find(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'provenantPack',
    )!;
    const packDone = events.find(
      (e) => String(e.activityTaskCompletedEventAttributes?.scheduledEventId) === String(packScheduled.eventId),
    );
    assert.ok(packDone, 'pack completed');
    assert.ok(children.length >= 1, 'replication runs in page children');
    const puts = children.flatMap((h) => {
      const scheduled = new Map(
        (h.events ?? [])
          .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'provenantPutPiece')
          .map((e) => [String(e.eventId), e]),
      );
      return (h.events ?? []).filter(
        (e) =>
          e.activityTaskCompletedEventAttributes &&
          scheduled.has(String(e.activityTaskCompletedEventAttributes.scheduledEventId)),
      );
    });
    assert.equal(puts.length, result.shards * 2, 'every copy stored by a page child');
    assert.ok(
      puts.some((e) => ms(e) < ms(packDone)),
      'copies are stored while the pack is still running',
    );
    assert.equal(result.replicas.p1, result.shards);
    assert.equal(result.replicas.p2, result.shards);
    const restored = path.join(root, 'restored');
    await withWorker(env, config, async () => {
      await (
        await startRestore(env!.client, config, { manifestCid: result.manifestCid, target: restored, force: false })
      ).result();
    });
    assert.deepEqual(readTree(restored), readTree(path.join(root, 'src')));
  });

  it('removes the copies it made and its staging when replication fails part-way', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const root = path.join(data, 'rollback');
    const blocker = path.join(root, 'not-a-dir');
    fs.mkdirSync(root, { recursive: true });
    fs.writeFileSync(blocker, 'a file where the provider directory should be');
    const config = testConfig(root, {
      replication: { copies: 2, putAttempts: 1 },
      providers: [
        { kind: 'local', id: 'ok', path: path.join(root, 'ok') },
        { kind: 'local', id: 'broken', path: path.join(blocker, 'provider') },
      ],
    } as Partial<ConfigInput>);
    const err = await withWorker(env, config, async () => {
      const { handle } = await startArchive(env!.client, config, {
        dir: path.join(data, 'src'),
        datasetId: 'rollback',
        noSteward: true,
      });
      return handle.result().then(
        () => undefined,
        (e) => e,
      );
    });
    const f = failureType(err);
    assert.equal(f.type, 'PolicyUnsatisfiableError');
    assert.match(f.message, /only 1 of 2 copies/);
    const left = fs.existsSync(path.join(root, 'ok', 'pieces'))
      ? fs.readdirSync(path.join(root, 'ok', 'pieces')).filter((n) => n.endsWith('.car'))
      : [];
    assert.ok(fs.existsSync(path.join(root, 'ok', 'pieces')), 'a copy was made before the failure');
    assert.deepEqual(left, [], 'copies made by the failed run are removed');
    const staging = fs.existsSync(config.stagingDir)
      ? fs.readdirSync(config.stagingDir).filter((n) => n.startsWith('rollback.'))
      : [];
    assert.deepEqual(staging, [], 'staging removed');
  });

  it('fails an unsatisfiable policy with the unmet constraint, before anything is read or uploaded', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const root = path.join(data, 'unsat');
    const config = testConfig(root, {
      replication: { copies: 2, policy: { maxPerOrg: 1 } },
      providers: [
        { kind: 'local', id: 'a', org: 'acme', path: path.join(root, 'a') },
        { kind: 'local', id: 'b', org: 'acme', path: path.join(root, 'b') },
      ],
    } as Partial<ConfigInput>);
    await withWorker(env, config, async () => {
      const { handle } = await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: 'unsat' });
      const err = await handle.result().then(
        () => undefined,
        (e) => e,
      );
      const f = failureType(err);
      assert.equal(f.type, 'PolicyUnsatisfiableError');
      assert.match(f.message, /maxPerOrg 1/);
      const history = JSON.stringify(await handle.fetchHistory());
      assert.ok(!history.includes('provenantScan') && !history.includes('provenantPutPiece'), 'no activity ran');
    });
    assert.equal(fs.existsSync(path.join(root, 'a')), false, 'nothing uploaded');
    assert.equal(fs.existsSync(path.join(root, 'b')), false, 'nothing uploaded');
  });
});
