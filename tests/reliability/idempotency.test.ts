/**
 * Idempotency: every activity the plugin registers, run twice with the same input, does no harm.
 * Temporal runs an activity again whenever a worker dies or a result is lost after the work was
 * done, so a second run must succeed (or fail the same typed way), give the same result, and
 * leave no second object, deal or piece for the same piece at the same provider.
 *
 * Two ways, both on real servers (Temporal dev server, MinIO for the S3 provider, local dirs):
 * - in real workflows (archive, steward round, restore, an archive in units): an activity
 *   interceptor runs every activity twice, back to back, with the same input and in the same
 *   activity context, and hands the workflow the second run's result, as a retry would;
 * - the activities no workflow of those reaches (repairs, renewals, the old steward's
 *   conversions, mirrors, a failed archive's clean-up) are called directly, twice, with
 *   MockActivityEnvironment (the SDK's activity harness: a real Context), and the providers'
 *   contents are compared after the first and the second run.
 * A registered activity covered by neither fails the suite.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type ActivityInterceptorsFactory } from '@temporalio/worker';
import { createActivities, type ActivitySets } from '../../activities/index.js';
import type { Config, ConfigInput } from '../../config/schema.js';
import type { ArchiveSummary, PieceRef, StewardReplica } from '../../shared/types.js';
import { startArchive, startRestore } from '../../workers/client.js';
import { ProvenantPlugin } from '../../workers/plugin.js';
import { rehomeProviders, rehomeWorkflowId, retireSignal, verifyNowUpdate } from '../../workflows/index.js';
import { recordReliability } from '../helpers/reliability.js';
import { bytesOf, readTree, startTemporal, testConfig, tmpDir, writeTree } from '../helpers/env.js';
import { MinioServer, serverOr } from '../helpers/servers.js';

const MiB = 1024 * 1024;

type Outcome = { ok: true; value: unknown } | { ok: false; type: string; message: string };

interface Run {
  name: string;
  how: 'workflow' | 'direct';
  args: unknown[];
  first: Outcome;
  second: Outcome;
}

/**
 * Result fields that say when or whether this very run did the work, not what the result is: a
 * repeated put finds the piece there (`existed`, and its `evidence` says so), times move on.
 */
const VOLATILE = new Set(['storedAt', 'existed', 'evidence', 'expiresAt', 'lastCheckedAt', 'checkedAt', 'at']);

/**
 * Result fields that count what this very call did, by activity: the state they leave is checked
 * instead (the providers' contents).
 */
const PER_RUN_COUNTS: Record<string, string[]> = {
  // How many superseded table blocks this call deleted: a second call finds them gone (0).
  provenantPruneReplicaTable: ['deleted'],
  // How many plan and result blocks this call deleted.
  provenantDropUnitBlocks: ['dropped'],
  // How many files this call fetched: a second finds them in place (a retry fetches only what is missing).
  provenantMirror: ['downloaded'],
};

function normalize(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>)
        .filter(([k]) => !VOLATILE.has(k))
        .map(([k, x]) => [k, normalize(x)]),
    );
  return v;
}

function errorType(err: unknown): string {
  if (err instanceof ApplicationFailure) return err.type ?? 'ApplicationFailure';
  return err instanceof Error ? err.name : String(err);
}

async function outcome(fn: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, type: errorType(err), message: (err as Error).message };
  }
}

/** The paths where two JSON values differ, with both values. */
function differences(a: unknown, b: unknown, at = ''): string[] {
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    return keys.flatMap((k) =>
      differences((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${at}.${k}`),
    );
  }
  return a === b ? [] : [`${at || '(value)'}: ${JSON.stringify(a)} then ${JSON.stringify(b)}`];
}

/** What is wrong with a run twice, or undefined when the second run did no harm. */
function judge(r: Run): string | undefined {
  const { first, second } = r;
  if (first.ok !== second.ok)
    return `${r.name}: first ${first.ok ? 'succeeded' : `failed (${first.type})`}, second ${second.ok ? 'succeeded' : `failed (${second.type}: ${second.message})`}`;
  if (!first.ok && !second.ok)
    return first.type === second.type ? undefined : `${r.name}: failed as ${first.type}, then as ${second.type}`;
  const drop = (v: unknown) => {
    const keys = PER_RUN_COUNTS[r.name];
    if (!keys || !v || typeof v !== 'object') return v;
    return Object.fromEntries(Object.entries(v).filter(([k]) => !keys.includes(k)));
  };
  const [a, b] = [
    normalize(drop((first as { value: unknown }).value)),
    normalize(drop((second as { value: unknown }).value)),
  ];
  // A page of a pack still running may have more shards durable the second time: never fewer.
  if (r.name === 'provenantShardPage' && Array.isArray(a) && Array.isArray(b)) {
    try {
      assert.deepEqual(b.slice(0, a.length), a);
      return undefined;
    } catch {
      return `${r.name}: the second page does not start with the first`;
    }
  }
  try {
    assert.deepEqual(b, a);
    return undefined;
  } catch {
    return `${r.name}: results differ at ${differences(a, b).slice(0, 4).join('; ')}`;
  }
}

/** How many objects each provider of an inventory holds, in ascending order (provider ids differ between configs). */
const objectCounts = (inv: Record<string, string[]>) =>
  Object.values(inv)
    .map((keys) => keys.length)
    .sort((x, y) => x - y);

/** Every file below `dir`, relative, sorted (temporary files included: they must not be left). */
function filesBelow(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const abs = path.join(dir, rel);
    if (!fs.existsSync(abs)) return;
    for (const d of fs.readdirSync(abs, { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) walk(r);
      else out.push(r);
    }
  };
  walk('');
  return out.sort();
}

describe('idempotency: every activity run twice with the same input', () => {
  let env: TestWorkflowEnvironment | undefined;
  let minio: MinioServer | undefined;
  let dir: string;
  let src: string;
  const runs: Run[] = [];
  const problems: string[] = [];
  let credentials: { accessKeyIdEnv: string; secretAccessKeyEnv: string };

  /** Providers of one test config: two local dirs and a MinIO bucket. */
  const providersFor = async (tag: string): Promise<ConfigInput['providers']> => [
    { kind: 'local', id: `${tag}-a`, path: path.join(dir, tag, 'a'), retention: '540 days' },
    { kind: 'local', id: `${tag}-b`, path: path.join(dir, tag, 'b') },
    {
      kind: 's3',
      id: `${tag}-s3`,
      endpoint: minio!.endpoint,
      bucket: await minio!.createBucket(),
      prefix: 'archive/',
      forcePathStyle: true,
      ...credentials,
    },
  ];

  const configFor = async (tag: string, over: Partial<ConfigInput> = {}): Promise<Config> =>
    testConfig(path.join(dir, tag, 'home'), {
      providers: await providersFor(tag),
      replication: { copies: 2 },
      steward: { verifyEvery: '1 day' },
      ...over,
    });

  /** What each provider of `config` holds: files of local dirs, object keys and open multipart uploads of buckets. */
  const inventory = async (config: Config): Promise<Record<string, string[]>> => {
    const out: Record<string, string[]> = {};
    const s3 = minio!.client();
    try {
      for (const p of config.providers) {
        if (p.kind === 'local') out[p.id] = filesBelow(p.path);
        else if (p.kind === 's3') {
          const keys: string[] = [];
          let token: string | undefined;
          do {
            const r = await s3.send(new ListObjectsV2Command({ Bucket: p.bucket, ContinuationToken: token }));
            keys.push(...(r.Contents ?? []).map((o) => o.Key!));
            token = r.IsTruncated ? r.NextContinuationToken : undefined;
          } while (token);
          const mp = await s3.send(new ListMultipartUploadsCommand({ Bucket: p.bucket }));
          keys.push(...(mp.Uploads ?? []).map((u) => `(open multipart upload) ${u.Key}`));
          out[p.id] = keys.sort();
        }
      }
    } finally {
      s3.destroy();
    }
    return out;
  };

  /** Run every activity twice, back to back, in the same context; the workflow gets the second run's result. */
  const twice: ActivityInterceptorsFactory = (ctx) => ({
    inbound: {
      async execute(input, next) {
        const first = await outcome(() => next(input));
        const second = await outcome(() => next(input));
        const cancelled = ctx.cancellationSignal.aborted;
        if (!cancelled) {
          const run: Run = {
            name: ctx.info.activityType,
            how: 'workflow',
            args: input.args as unknown[],
            first,
            second,
          };
          runs.push(run);
          const why = judge(run);
          if (why) console.error(`[idempotency] ${why}`);
        }
        if (second.ok) return second.value;
        // Rethrow what the second run threw, typed as it was.
        throw cancelled
          ? new CancelledFailure('cancelled')
          : ApplicationFailure.create({ type: second.type, message: second.message, nonRetryable: true });
      },
    },
  });

  const withTwiceWorker = async <T>(config: Config, fn: () => Promise<T>): Promise<T> => {
    const worker = await Worker.create({
      connection: env!.nativeConnection,
      namespace: env!.namespace ?? 'default',
      taskQueue: config.temporal.taskQueue,
      interceptors: { activity: [twice] },
      plugins: [new ProvenantPlugin({ config })],
    });
    return worker.runUntil(fn());
  };

  const plainWorker = async <T>(config: Config, fn: () => Promise<T>): Promise<T> => {
    const worker = await Worker.create({
      connection: env!.nativeConnection,
      namespace: env!.namespace ?? 'default',
      taskQueue: config.temporal.taskQueue,
      plugins: [new ProvenantPlugin({ config })],
    });
    return worker.runUntil(fn());
  };

  /** Archive `src`, run one steward round, restore and compare: the lifecycle every activity of it serves. */
  const lifecycle = async (config: Config, datasetId: string): Promise<ArchiveSummary> => {
    const { handle } = await startArchive(env!.client, config, { dir: src, datasetId });
    const summary = await handle.result();
    if (summary.stewardWorkflowId)
      await env!.client.workflow.getHandle(summary.stewardWorkflowId).executeUpdate(verifyNowUpdate);
    const target = path.join(dir, `restored-${datasetId}`);
    await (
      await startRestore(env!.client, config, { manifestCid: summary.manifestCid, target, force: false })
    ).result();
    assert.deepEqual(readTree(target), readTree(src), `${datasetId}: the restore differs from the source`);
    return summary;
  };

  const stagingLeft = (config: Config): string[] =>
    filesBelow(config.stagingDir).filter((f) => !f.startsWith('.') && !f.includes('/.'));

  before(async (t) => {
    env = await startTemporal(t as never);
    if (!env) return;
    minio = serverOr(t as never, await MinioServer.start());
    if (!minio) return;
    credentials = minio.exportCredentials();
    dir = tmpDir('pv-idem-');
    src = path.join(dir, 'src');
    writeTree(src, {
      'weights/part-1.bin': bytesOf(3 * MiB + 17, 'idem-1'),
      'weights/part-2.bin': bytesOf(MiB, 'idem-2'),
      'config.json': '{"layers": 2}',
      'empty.txt': '',
    });
  });
  after(async () => {
    await minio?.stop();
    await env?.teardown();
  });

  let doubled: { config: Config; summary: ArchiveSummary } | undefined;
  let units: { config: Config; summary: ArchiveSummary } | undefined;
  const stewards: string[] = [];

  it('archive, steward round and restore with every activity run twice: same CIDs and objects as a plain run', async (t) => {
    if (!env || !minio) return t.skip('no Temporal server or MinIO');
    const config = await configFor('twice');
    const summary = await withTwiceWorker(config, () => lifecycle(config, 'idem-twice'));
    doubled = { config, summary };
    const plainConfig = await configFor('plain');
    const plain = await plainWorker(plainConfig, () => lifecycle(plainConfig, 'idem-plain'));
    for (const s of [summary, plain]) if (s.stewardWorkflowId) stewards.push(s.stewardWorkflowId);

    assert.equal(summary.rootCid, plain.rootCid, 'the root CID is the one of a run without repeats');
    assert.equal(summary.shards, plain.shards);
    const sorted = (r: Record<string, number>) => Object.values(r).sort((x, y) => x - y);
    assert.deepEqual(sorted(summary.replicas), sorted(plain.replicas));
    // Each provider holds as many objects as it does after a run without repeats: no second copy of anything.
    const [a, b] = [await inventory(config), await inventory(plainConfig)];
    assert.deepEqual(
      objectCounts(a),
      objectCounts(b),
      `objects per provider: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`,
    );
    for (const keys of Object.values(a))
      for (const k of keys) assert.doesNotMatch(k, /\.tmp$|open multipart/, `a partial object was left: ${k}`);
    assert.deepEqual(stagingLeft(config), [], 'staging is clean');
    assert.ok(runs.length > 10, `the interceptor saw ${runs.length} runs`);
  });

  it('an archive in units (pack.unitShards) with every activity run twice', async (t) => {
    if (!env || !minio) return t.skip('no Temporal server or MinIO');
    const config = await configFor('units', { pack: { shardBytes: 2 * MiB, unitShards: 1 } });
    const summary = await withTwiceWorker(config, async () => {
      const { handle } = await startArchive(env!.client, config, { dir: src, datasetId: 'idem-units' });
      return handle.result();
    });
    units = { config, summary };
    assert.equal(summary.rootCid, doubled?.summary.rootCid, 'units give the same root CID');
    assert.deepEqual(stagingLeft(config), [], 'staging is clean');
    // The same objects as a units archive without repeats: no second result block, replica table or call record.
    const plainConfig = await configFor('units-plain', { pack: { shardBytes: 2 * MiB, unitShards: 1 } });
    await plainWorker(plainConfig, async () => {
      const { handle } = await startArchive(env!.client, plainConfig, { dir: src, datasetId: 'idem-units-plain' });
      return handle.result();
    });
    const [a, b] = [await inventory(config), await inventory(plainConfig)];
    assert.deepEqual(
      objectCounts(a),
      objectCounts(b),
      `objects per provider: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`,
    );
  });

  it('the activities no workflow here reaches, called directly twice: providers unchanged by the second run', async (t) => {
    if (!env || !minio || !doubled) return t.skip('no Temporal server or MinIO, or the archive test failed');
    const { config, summary } = doubled;
    const acts: ActivitySets = createActivities({ config });
    const all = { ...acts.shared, ...acts.host } as Record<string, (...a: unknown[]) => Promise<unknown>>;
    const direct = async (name: string, ...args: unknown[]): Promise<unknown> => {
      const fn = all[name];
      if (!fn) throw new Error(`no activity ${name}`);
      const harness = () =>
        new MockActivityEnvironment({ activityType: name, heartbeatTimeoutMs: 60_000 }, { client: env!.client });
      const first = await outcome(() => harness().run(fn, ...args));
      const between = await inventory(config);
      const second = await outcome(() => harness().run(fn, ...args));
      const afterwards = await inventory(config);
      runs.push({ name, how: 'direct', args, first, second });
      try {
        assert.deepEqual(afterwards, between);
      } catch {
        problems.push(`${name}: the second run changed what the providers hold`);
      }
      return second.ok ? second.value : undefined;
    };
    try {
      const [pa, pb, ps] = config.providers.map((p) => p.id) as [string, string, string];
      await direct('provenantHostQueue');
      await direct('provenantArchiveInput', { source: { kind: 'local', path: src }, datasetId: 'idem-request' });
      const pieces = (await direct('provenantShardPieces', { manifestCid: summary.manifestCid })) as PieceRef[] &
        { shard: number }[];
      assert.ok(pieces?.length, 'the manifest lists shard pieces');
      // Where each shard piece is, from the puts the archive made.
      const holders = new Map<string, string[]>();
      for (const r of runs)
        if (r.name === 'provenantPutPiece' && r.how === 'workflow') {
          const a = r.args[0] as { piece: PieceRef; providerId: string };
          holders.set(a.piece.pieceCid, [...new Set([...(holders.get(a.piece.pieceCid) ?? []), a.providerId])]);
        }
      const replicas = (pieces as (PieceRef & { shard: number })[]).flatMap((p) =>
        (holders.get(p.pieceCid) ?? []).map((providerId) => ({ ...p, providerId })),
      );
      assert.equal(replicas.length, pieces.length * 2, 'two copies of every shard piece');
      await direct('provenantVerifyReplicas', {
        manifestCid: summary.manifestCid,
        replicas,
        seed: 'idem',
        probability: 0.99,
        lossFraction: 0.01,
      });
      const table: StewardReplica[] = replicas.map((r) => ({
        ...r,
        state: 'healthy',
        lastCheckedAt: '2026-01-01T00:00:00.000Z',
        lastEvidence: 'test',
      }));
      await direct('provenantReplicaTableFromList', {
        datasetId: summary.datasetId,
        manifestCid: summary.manifestCid,
        replicas: table,
        providerIds: [pa, pb, ps],
        pageReplicas: 2,
      });

      // A repair copy onto the provider that lacks the piece, then its retirement.
      const piece = (pieces as (PieceRef & { shard: number })[])[0]!;
      const has = holders.get(piece.pieceCid)!;
      const lacks = [pa, pb, ps].find((id) => !has.includes(id))!;
      await direct('provenantCopyPiece', { piece, from: has, to: lacks });
      const inv = await inventory(config);
      assert.equal(
        inv[lacks]!.filter((k) => k.includes(piece.pieceCid) && !k.endsWith('.json')).length,
        1,
        `one copy of the piece at ${lacks}`,
      );
      await direct('provenantRetirePiece', { pieceCid: piece.pieceCid, providerId: lacks });
      assert.equal((await inventory(config))[lacks]!.filter((k) => k.includes(piece.pieceCid)).length, 0);
      await direct('provenantRenewPiece', { pieceCid: piece.pieceCid, providerId: has[0] });
      await direct('provenantSweepStewards', {});

      // A failed archive's clean-up: a staged piece put onto the provider that lacks it, journaled, retired.
      const stage = { datasetId: 'idem-retire', runKey: 'r1' };
      const stageDir = path.join(config.stagingDir, `${stage.datasetId}.${stage.runKey}`);
      fs.mkdirSync(stageDir, { recursive: true });
      const held = has.find((id) => config.providers.find((p) => p.id === id)?.kind === 'local')!;
      const heldDir = (config.providers.find((p) => p.id === held) as { path: string }).path;
      const car = filesBelow(heldDir).find((f) => f.endsWith(`${piece.pieceCid}.car`))!;
      fs.copyFileSync(path.join(heldDir, car), path.join(stageDir, 'shard-000000.car'));
      await direct('provenantPutPiece', {
        ...stage,
        file: 'shard-000000.car',
        piece,
        providerId: lacks,
        last: true,
        shard: 0,
      });
      assert.equal((await inventory(config))[lacks]!.filter((k) => k.includes(piece.pieceCid)).length >= 1, true);
      await direct('provenantRetireJournaled', stage);
      assert.equal((await inventory(config))[lacks]!.filter((k) => k.includes(piece.pieceCid)).length, 0);
      await direct('provenantCleanup', stage);
      assert.equal(fs.existsSync(stageDir), false, 'the run staging is gone');

      // A mirror of an HTTP source (archives started before streaming remote sources), then its clean-up.
      const web = http.createServer((req, res) => {
        const body = bytesOf(70_000, req.url ?? '');
        res.writeHead(200, { 'Content-Length': body.length, 'Last-Modified': new Date(0).toUTCString() });
        res.end(req.method === 'HEAD' ? undefined : body);
      });
      await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
      try {
        const base = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
        const mirrorStage = { datasetId: 'idem-mirror', runKey: 'r1' };
        await direct('provenantMirror', { ...mirrorStage, source: { kind: 'http', urls: [`${base}/a.bin`] } });
        await direct('provenantCleanup', mirrorStage);
      } finally {
        web.close();
      }

      // The units archive's copies, retired as a failed units archive retires them.
      const resultPages = runs
        .filter((r) => r.name === 'provenantStoreResultPage' && r.how === 'workflow')
        .flatMap((r) => (r.args[0] as { results: string[] }).results);
      if (resultPages.length) await direct('provenantRetireUnits', { results: resultPages });
    } finally {
      await acts.close();
    }
    assert.deepEqual(stagingLeft(config), [], 'staging is clean');
  });

  it('rehome off a provider, then retire with delete, with every activity run twice', async (t) => {
    if (!env || !minio || !units) return t.skip('no Temporal server or MinIO, or the units test failed');
    const { config, summary } = units;
    // Only the units archive's steward takes part (the others' task queues have no worker now).
    for (const id of stewards) await env.client.workflow.getHandle(id).terminate('idempotency: not part of the rehome');
    const [pa, pb, ps] = config.providers.map((p) => p.id) as [string, string, string];
    const acts = createActivities({ config });
    const pieces = (await new MockActivityEnvironment().run(acts.shared.provenantShardPieces, {
      manifestCid: summary.manifestCid,
    })) as { pieceCid: string }[];
    await acts.close();
    assert.ok(pieces.length > 0);
    await withTwiceWorker(config, async () => {
      const rehome = await env!.client.workflow.start(rehomeProviders, {
        workflowId: rehomeWorkflowId([pb]),
        taskQueue: config.temporal.taskQueue,
        args: [{ from: [pb], pageSize: 100, concurrency: 4, pagesPerRun: 10 }],
      });
      const p = await rehome.result();
      assert.equal(p.remaining, 0, `nothing left on ${pb}: ${JSON.stringify(p)}`);
      const steward = env!.client.workflow.getHandle(summary.stewardWorkflowId!);
      await steward.signal(retireSignal, { delete: true });
      await steward.result();
    });
    const inv = await inventory(config);
    for (const id of [pa, pb, ps])
      assert.deepEqual(
        inv[id]!.filter((k) => pieces.some((p) => k.includes(p.pieceCid))),
        [],
        `no shard copy is left at ${id} after the deletion`,
      );
  });

  it('covers every registered activity, and every one ran twice without harm', async (t) => {
    if (!env || !minio) return t.skip('no Temporal server or MinIO');
    const config = testConfig(tmpDir('pv-idem-reg-'));
    const acts = createActivities({ config });
    // The names the plugin registers: the shared set on the worker's queue, the host set on the host queue.
    const plugin = new ProvenantPlugin({ config, hostWorker: false });
    const onQueue = Object.keys(plugin.configureWorker({ taskQueue: 'q' }).activities ?? {});
    const registered = [...new Set([...onQueue, ...Object.keys(acts.host)])].sort();
    assert.deepEqual(onQueue.sort(), Object.keys(acts.shared).sort());
    await acts.close();
    const covered = new Set(runs.map((r) => r.name));
    const missing = registered.filter((n) => !covered.has(n));
    assert.deepEqual(
      missing,
      [],
      `activities registered but never run twice (cover them in tests/reliability/idempotency.test.ts): ${missing.join(', ')}`,
    );
    for (const r of runs) {
      const why = judge(r);
      if (why) problems.push(`${why} (${r.how})`);
    }
    recordReliability({
      suite: 'idempotency',
      trials: runs.length,
      faultsInjected: runs.length,
      faultsDetected: runs.length - problems.length,
      // Every restore above was byte-identical (lifecycle asserts it): the problems left are orphaned blocks.
      dataLost: 0,
    });
    assert.deepEqual(problems, []);
  });
});
