/** Stewardship on the real Temporal server: verify, repair, fail over, renew, continue-as-new, audit. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CarIndexer } from '@ipld/car/indexer';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readAudit, readReplicaTable } from '../../activities/steward/activities.js';
import type { Config, ConfigInput } from '../../config/schema.js';
import { startArchive } from '../../workers/client.js';
import {
  addReplicasSignal,
  fleetSweep,
  retireSignal,
  stewardStatusQuery,
  verifyNowUpdate,
} from '../../workflows/index.js';
import type { StewardReplica, StewardStatus } from '../../shared/types.js';
import { bytesOf, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';

const MiB = 1024 * 1024;

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

/** The steward's replicas, read from its replica table (the status holds only the table's reference and counts). */
async function replicasOf(config: Config, s: StewardStatus): Promise<StewardReplica[]> {
  assert.equal(s.replicas, undefined, 'no replica list in the status');
  assert.ok(s.replicaTable?.tableCid, 'the status names the replica table');
  const { replicas } = await readReplicaTable(config, s.replicaTable.tableCid);
  assert.equal(replicas.length, s.replicaCount);
  return replicas;
}

async function perPieceHealthy(config: Config, s: StewardStatus): Promise<number[]> {
  const m = new Map<string, number>();
  for (const r of await replicasOf(config, s))
    m.set(r.pieceCid, (m.get(r.pieceCid) ?? 0) + (r.state === 'healthy' ? 1 : 0));
  return [...m.values()];
}

describe('steward', () => {
  let env: TestWorkflowEnvironment | undefined;
  let data: string;
  before(async (t) => {
    env = await startTemporal(t as never);
    data = tmpDir('pv-steward-');
    writeTree(path.join(data, 'src'), { 'model.bin': bytesOf(3 * MiB + 5, 'st'), 'cfg.json': '{"x":1}' });
  });
  after(async () => {
    await env?.teardown();
  });

  const setup = (name: string, over: Partial<ConfigInput> = {}) =>
    testConfig(path.join(data, name), {
      ...over,
      steward: { verifyEvery: '1 hour', searchAttributes: true, ...(over.steward ?? {}) },
    } as Partial<ConfigInput>);

  it('detects a corrupted byte, repairs the replica and records both in the audit log', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const config = setup('corrupt');
    let victim = '';
    const after = await withWorker(env, config, async () => {
      const summary = await (
        await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: 'corrupt' })
      ).handle.result();
      assert.ok(summary.stewardWorkflowId);
      const steward = env!.client.workflow.getHandle(summary.stewardWorkflowId!);
      const before = await steward.query(stewardStatusQuery);
      victim = `${(await replicasOf(config, before)).find((r) => r.providerId === 'local-1' && r.shard >= 0)!.pieceCid}.car`;
      await corruptBlock(path.join(piecesDir(config, 'local-1'), victim));
      return steward.executeUpdate(verifyNowUpdate);
    });
    assert.equal(after.counters.repairs >= 1, true, 'repaired');
    assert.equal(after.health, 'healthy');
    assert.ok(
      (await perPieceHealthy(config, after)).every((n) => n === 2),
      'every piece back to 2 healthy copies',
    );
    const audit = await readAudit(config, after.auditHead!);
    assert.deepEqual(audit.problems, []);
    const victimPiece = victim.replace(/\.car$/, '');
    assert.ok(
      audit.records.some(
        (r) =>
          r.kind === 'verify' && r.result === 'corrupt' && r.pieceCid === victimPiece && r.providerId === 'local-1',
      ),
      JSON.stringify(audit.records.map((r) => [r.seq, r.kind, r.result, r.pieceCid?.slice(-6), r.providerId])) +
        victimPiece,
    );
    assert.ok(
      audit.records.some((r) => r.kind === 'repair' && r.pieceCid === victimPiece && r.result.startsWith('new copy')),
    );
    assert.ok(audit.records[0]!.kind === 'archive' && audit.records[0]!.seq === 1);
  });

  it('replaces a deleted replica', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const config = setup('deleted');
    const after = await withWorker(env, config, async () => {
      const summary = await (
        await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: 'deleted' })
      ).handle.result();
      const steward = env!.client.workflow.getHandle(summary.stewardWorkflowId!);
      const before = await steward.query(stewardStatusQuery);
      fs.rmSync(
        path.join(
          piecesDir(config, 'local-2'),
          `${(await replicasOf(config, before)).find((r) => r.providerId === 'local-2' && r.shard >= 0)!.pieceCid}.car`,
        ),
      );
      return steward.executeUpdate(verifyNowUpdate);
    });
    assert.ok((await perPieceHealthy(config, after)).every((n) => n === 2));
    const audit = await readAudit(config, after.auditHead!);
    assert.ok(audit.records.some((r) => r.kind === 'verify' && r.result === 'missing' && r.providerId === 'local-2'));
    assert.ok(audit.records.some((r) => r.kind === 'repair'));
  });

  it('repairs within the placement policy: a lost copy is replaced in the organisation the cap leaves', async (t) => {
    if (!env) return t.skip('no Temporal server');
    // Two organisations, at most one copy each: every piece has one copy in x and one in y.
    const root = path.join(data, 'policy');
    const org = (id: string) => (id < 'c' ? 'x' : 'y');
    const config = setup('policy', {
      providers: ['a', 'b', 'c', 'd'].map((id) => ({ kind: 'local', id, path: path.join(root, id), org: org(id) })),
      replication: { copies: 2, policy: { maxPerOrg: 1 } },
    } as Partial<ConfigInput>);
    const after = await withWorker(env, config, async () => {
      const summary = await (
        await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: 'policy' })
      ).handle.result();
      const steward = env!.client.workflow.getHandle(summary.stewardWorkflowId!);
      const before = await steward.query(stewardStatusQuery);
      // Lose the y copy of every piece. The first providers in config order without a copy are
      // in x, which the cap rules out; the copies must go to the other y provider.
      for (const r of (await replicasOf(config, before)).filter((x) => org(x.providerId) === 'y'))
        fs.rmSync(path.join(piecesDir(config, r.providerId), `${r.pieceCid}.car`));
      return steward.executeUpdate(verifyNowUpdate);
    });
    assert.equal(after.health, 'healthy');
    const byPiece = new Map<string, string[]>();
    for (const r of (await replicasOf(config, after)).filter((x) => x.state === 'healthy'))
      byPiece.set(r.pieceCid, [...(byPiece.get(r.pieceCid) ?? []), r.providerId]);
    assert.ok(byPiece.size >= 2);
    for (const [piece, ids] of byPiece)
      assert.deepEqual(ids.map(org).sort(), ['x', 'y'], `${piece}: copies on ${ids.join(', ')}`);
    assert.ok(after.counters.repairs >= byPiece.size, `${after.counters.repairs} repairs`);
  });

  it('fails over from a provider unreachable past the grace period, not before', async (t) => {
    if (!env) return t.skip('no Temporal server');
    // Short configured intervals: the steward's own durable timer runs the next rounds.
    const config = setup('unreachable', {
      steward: { unreachableGrace: '2 seconds', verifyEvery: '1 second' },
    } as Partial<ConfigInput>);
    const root = path.dirname(piecesDir(config, 'local-1'));
    const second = await withWorker(env, config, async () => {
      const summary = await (
        await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: 'unreachable' })
      ).handle.result();
      const steward = env!.client.workflow.getHandle(summary.stewardWorkflowId!);
      // Let the steward write its first audit record before the provider goes away.
      for (let i = 0; i < 100 && (await steward.query(stewardStatusQuery)).auditRecords < 1; i++)
        await new Promise((r) => setTimeout(r, 50));
      const onLocal1 = (await replicasOf(config, await steward.query(stewardStatusQuery))).filter(
        (r) => r.providerId === 'local-1',
      ).length;
      assert.ok(onLocal1 > 0);
      fs.renameSync(root, `${root}.unmounted`);
      const first = await steward.executeUpdate(verifyNowUpdate);
      assert.equal(
        (await replicasOf(config, first)).filter((r) => r.state === 'unreachable').length,
        onLocal1,
        JSON.stringify(
          (await readAudit(config, first.auditHead!)).records.map((r) => [r.kind, r.result, r.providerId, r.evidence]),
        ),
      );
      assert.equal(
        first.counters.repairs,
        0,
        JSON.stringify(
          (await readAudit(config, first.auditHead!)).records.map((r) => [r.kind, r.result, r.providerId, r.evidence]),
        ),
      );
      // Wait for the steward's timer-driven rounds to pass the grace period and fail over.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const st = await steward.query(stewardStatusQuery);
        const reps = await replicasOf(config, st);
        if (reps.every((r) => r.providerId !== 'local-1') && st.health === 'healthy') return st;
        assert.ok(Date.now() < deadline, `no failover: ${JSON.stringify(reps.map((r) => [r.providerId, r.state]))}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    });
    assert.equal(
      (await replicasOf(config, second)).filter((r) => r.providerId === 'local-1').length,
      0,
      'no replica left on the unreachable provider',
    );
    assert.ok(
      (await perPieceHealthy(config, second)).every((n) => n === 2),
      'copies placed elsewhere',
    );
    assert.equal(fs.existsSync(root), false, 'nothing written to the unreachable provider');
  });

  /**
   * A dataset archived while its three local providers kept pieces for 1 day: inside a 2-day
   * renewal window at once. `providers(retention)` gives the same providers with another retention.
   */
  const archiveDueForRenewal = async (name: string) => {
    const providers = (retention: string) =>
      [1, 2, 3].map((i) => ({
        kind: 'local' as const,
        id: `local-${i}`,
        path: path.join(data, name, 'providers', `local-${i}`),
        retention,
      }));
    const archiveConfig = setup(name, {
      providers: providers('1 day'),
      steward: { renewWindow: '2 days' },
    } as Partial<ConfigInput>);
    const { summary, before } = await withWorker(env!, archiveConfig, async () => {
      const summary = await (
        await startArchive(env!.client, archiveConfig, { dir: path.join(data, 'src'), datasetId: name })
      ).handle.result();
      // The steward's first round starts at once (renewal is due): let it end on this worker, so
      // that no round is cut short by the worker's shutdown and retried under the next config.
      const steward = env!.client.workflow.getHandle(summary.stewardWorkflowId!);
      const deadline = Date.now() + 30_000;
      let before = await steward.query(stewardStatusQuery);
      while (before.rounds < 1) {
        assert.ok(Date.now() < deadline, `no first round: ${JSON.stringify(before)}`);
        await new Promise((r) => setTimeout(r, 50));
        before = await steward.query(stewardStatusQuery);
      }
      return { summary, before };
    });
    return { providers, archiveConfig, summary, before };
  };

  it('renews a replica inside the renewal window before it expires', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const { providers, archiveConfig, summary, before } = await archiveDueForRenewal('renew');
    const steward = env.client.workflow.getHandle(summary.stewardWorkflowId!);
    const earliest = Date.parse(before.earliestExpiry!);
    assert.ok(earliest - Date.now() < 2 * 86_400_000, 'inside the window');
    // The first round renewed by the 1-day retention, still inside the window: the next renewal
    // waits a pause instead of starting round after round.
    assert.ok(before.counters.renewals > 0, 'the first round renewed');
    assert.ok(Date.parse(before.nextRenewalAt!) > Date.parse(before.lastVerifiedAt!), 'the next renewal waits');
    // The providers now extend pieces by 10 days on renewal.
    const renewConfig = { ...archiveConfig, providers: providers('10 days') };
    const after = await withWorker(env, renewConfig, () => steward.executeUpdate(verifyNowUpdate));
    const renewed = after.counters.renewals - before.counters.renewals;
    assert.ok(
      renewed >= before.replicaCount,
      `renewed ${renewed} of ${before.replicaCount}: ${JSON.stringify({ error: after.lastRoundError, rounds: after.rounds })}`,
    );
    assert.ok(
      (await replicasOf(archiveConfig, after)).every((r) => Date.parse(r.expiresAt!) - Date.now() > 9 * 86_400_000),
      'every replica extended',
    );
    assert.ok(Date.parse(after.earliestExpiry!) - Date.now() > 9 * 86_400_000, "the table's earliest expiry moved too");
    assert.equal(after.health, 'healthy');
    const audit = await readAudit(archiveConfig, after.auditHead!);
    assert.ok(audit.records.filter((r) => r.kind === 'renew').length >= before.replicaCount);
  });

  it('replaces a replica whose renewal fails, and goes on stewarding', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const { providers, archiveConfig, summary, before } = await archiveDueForRenewal('renew-fail');
    // local-1 loses its record of one piece: it still serves the bytes but refuses to renew them.
    const victim = (await replicasOf(archiveConfig, before)).find((r) => r.providerId === 'local-1' && r.shard >= 0)!;
    fs.rmSync(path.join(piecesDir(archiveConfig, 'local-1'), `${victim.pieceCid}.json`));
    const renewConfig = { ...archiveConfig, providers: providers('10 days') };
    const steward = env.client.workflow.getHandle(summary.stewardWorkflowId!);
    const after = await withWorker(env, renewConfig, () => steward.executeUpdate(verifyNowUpdate));
    const kept = await replicasOf(archiveConfig, after);
    const copies = kept.filter((r) => r.pieceCid === victim.pieceCid);
    assert.equal(copies.length, 2, JSON.stringify(copies));
    assert.ok(
      copies.every((r) => r.providerId !== 'local-1' && r.state === 'healthy'),
      JSON.stringify(copies.map((r) => [r.providerId, r.state])),
    );
    assert.ok(
      kept.every((r) => Date.parse(r.expiresAt!) - Date.now() > 9 * 86_400_000),
      'every replica kept is extended',
    );
    assert.equal(after.health, 'healthy');
    assert.equal(after.lastRoundError, undefined);
    assert.equal((await steward.describe()).status.name, 'RUNNING');
    const audit = await readAudit(archiveConfig, after.auditHead!);
    assert.ok(
      audit.records.some(
        (r) =>
          r.kind === 'renew' &&
          r.pieceCid === victim.pieceCid &&
          r.providerId === 'local-1' &&
          r.result.startsWith('renewal failed'),
      ),
    );
    assert.ok(
      audit.records.some((r) => r.kind === 'retire' && r.pieceCid === victim.pieceCid && r.providerId === 'local-1'),
    );
  });

  it('lives through every provider being unreachable, keeping its audit events until one answers', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const config = setup('all-down', { steward: { unreachableGrace: '1 day' } } as Partial<ConfigInput>);
    const roots = config.providers.map((p) => path.dirname(piecesDir(config, p.id)));
    await withWorker(env, config, async () => {
      const summary = await (
        await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: 'all-down' })
      ).handle.result();
      const steward = env!.client.workflow.getHandle(summary.stewardWorkflowId!);
      for (let i = 0; i < 100 && (await steward.query(stewardStatusQuery)).auditRecords < 1; i++)
        await new Promise((r) => setTimeout(r, 50));
      const head = (await steward.query(stewardStatusQuery)).auditRecords;
      for (const r of roots) fs.renameSync(r, `${r}.unmounted`);
      const down = await steward.executeUpdate(verifyNowUpdate);
      // Nothing to verify against (the manifest cannot be fetched either): the round is recorded as not completed.
      assert.ok(down.lastRoundError, JSON.stringify(down));
      assert.match(down.lastRoundError.message, /manifest/i);
      assert.ok(Date.parse(down.lastRoundError.retryAt) > Date.parse(down.lastRoundError.at));
      assert.ok(down.unauditedEvents > 0, "the round's events wait for a provider");
      assert.equal(down.auditRecords, head, 'nothing appended while no provider answers');
      assert.equal((await steward.describe()).status.name, 'RUNNING');
      for (const r of roots) fs.renameSync(`${r}.unmounted`, r);
      const back = await steward.executeUpdate(verifyNowUpdate);
      assert.equal(back.health, 'healthy');
      assert.equal(back.lastRoundError, undefined);
      assert.equal(back.unauditedEvents, 0);
      const audit = await readAudit(config, back.auditHead!);
      assert.deepEqual(audit.problems, []);
      assert.ok(
        audit.records.some((r) => r.kind === 'verify' && r.result.startsWith('round not completed')),
        'the outage is in the log',
      );
      assert.equal(audit.records.length, back.auditRecords);
    });
  });

  it('continues as new with its state intact', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const config = setup('can', { steward: { maxRoundsPerRun: 1 } } as Partial<ConfigInput>);
    let firstRun = '';
    let steward!: ReturnType<typeof env.client.workflow.getHandle>;
    const one = await withWorker(env, config, async () => {
      const summary = await (
        await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: 'can' })
      ).handle.result();
      steward = env!.client.workflow.getHandle(summary.stewardWorkflowId!);
      firstRun = (await steward.describe()).runId;
      const s = await steward.executeUpdate(verifyNowUpdate);
      // Wait for the new run, then query it.
      for (let i = 0; i < 100 && (await steward.describe()).runId === firstRun; i++)
        await new Promise((r) => setTimeout(r, 100));
      return s;
    });
    const d = await steward.describe();
    assert.notEqual(d.runId, firstRun, 'a new run');
    assert.equal(d.status.name, 'RUNNING');
    const two = await withWorker(env, config, async () => {
      const s = await steward.query(stewardStatusQuery);
      assert.equal(s.runs, 1);
      assert.equal(s.auditHead, one.auditHead);
      assert.equal(s.replicaTable?.tableCid, one.replicaTable?.tableCid, 'the same table');
      assert.deepEqual(
        (await replicasOf(config, s)).map((r) => [r.pieceCid, r.providerId]),
        (await replicasOf(config, one)).map((r) => [r.pieceCid, r.providerId]),
      );
      return steward.executeUpdate(verifyNowUpdate);
    });
    assert.equal(two.rounds, one.rounds + 1);
    const audit = await readAudit(config, two.auditHead!);
    assert.deepEqual(audit.problems, []);
  });

  it('reports an edited audit record as tampering and a dropped one as missing', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const config = setup('tamper');
    const s = await withWorker(env, config, async () => {
      const summary = await (
        await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: 'tamper' })
      ).handle.result();
      return env!.client.workflow.getHandle(summary.stewardWorkflowId!).executeUpdate(verifyNowUpdate);
    });
    const clean = await readAudit(config, s.auditHead!);
    assert.deepEqual(clean.problems, []);
    assert.ok(clean.records.length >= 2);
    // Edit the first record's copy on local-1: same length, one letter changed.
    const first = clean.records[0]!;
    const dir = piecesDir(config, 'local-1');
    const pieceCid = fs.readFileSync(path.join(path.dirname(dir), 'roots', first.cid), 'utf8');
    const file = path.join(dir, `${pieceCid}.car`);
    const text = fs.readFileSync(file, 'latin1');
    fs.writeFileSync(file, Buffer.from(text.replace('archived', 'ARCHIVED'), 'latin1'));
    const tampered = await readAudit(config, s.auditHead!);
    assert.ok(
      tampered.problems.some((p) => p.problem === 'tampered' && p.providerId === 'local-1' && p.cid === first.cid),
    );
    // Drop every copy of the first record.
    for (const p of config.providers) {
      const d = piecesDir(config, p.id);
      const f = path.join(d, `${pieceCid}.car`);
      if (fs.existsSync(f)) fs.rmSync(f);
    }
    const dropped = await readAudit(config, s.auditHead!);
    assert.ok(
      dropped.problems.some((p) => p.cid === first.cid && (p.problem === 'missing' || p.problem === 'tampered')),
    );
  });

  it('adds replicas on request and stops stewarding when retired', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const config = setup('add-retire');
    await withWorker(env, config, async () => {
      const summary = await (
        await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: 'add-retire' })
      ).handle.result();
      const steward = env!.client.workflow.getHandle(summary.stewardWorkflowId!);
      await steward.signal(addReplicasSignal, 1);
      const s = await steward.executeUpdate(verifyNowUpdate);
      assert.equal(s.copies, 3);
      assert.ok(
        (await perPieceHealthy(config, s)).every((n) => n === 3),
        'a third copy of every piece',
      );
      await steward.signal(retireSignal);
      const final = (await steward.result()) as StewardStatus;
      assert.equal(final.retired, true);
      const audit = await readAudit(config, final.auditHead!);
      assert.equal(audit.records[audit.records.length - 1]!.kind, 'retire');
    });
  });

  it('sweeps every steward from a Temporal Schedule, and lists them by health', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const config = setup('fleet');
    await withWorker(env, config, async () => {
      const ids: string[] = [];
      for (const id of ['fleet-a', 'fleet-b']) {
        const s = await (
          await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: id })
        ).handle.result();
        ids.push(s.stewardWorkflowId!);
      }
      const schedule = await env!.client.schedule.create({
        scheduleId: `sweep-${Date.now()}`,
        spec: { intervals: [{ every: '1 day' }] },
        action: { type: 'startWorkflow', workflowType: fleetSweep, taskQueue: config.temporal.taskQueue, args: [{}] },
      });
      await schedule.trigger();
      const deadline = Date.now() + 30_000;
      for (const id of ids) {
        const h = env!.client.workflow.getHandle(id);
        while ((await h.query(stewardStatusQuery)).rounds < 1) {
          assert.ok(Date.now() < deadline, `${id} was never swept`);
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      await schedule.delete();
      // Ops can list datasets by health through the search attributes.
      const listed: string[] = [];
      for (let i = 0; i < 50 && listed.length < 2; i++) {
        listed.length = 0;
        for await (const w of env!.client.workflow.list({
          query: `ProvenantHealth = 'healthy' AND ProvenantDataset IN ('fleet-a', 'fleet-b')`,
        }))
          listed.push(w.workflowId);
        if (listed.length < 2) await new Promise((r) => setTimeout(r, 200));
      }
      assert.deepEqual(listed.sort(), [...ids].sort());
    });
  });
});
