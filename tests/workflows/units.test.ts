/**
 * Packing in units (pack.unitShards) on the real Temporal dev server: one worker, then two
 * worker processes on one task queue, each with its own staging, then two of which one is killed
 * mid-unit. All three make the same manifest (so the same shards, piece CIDs and DAG), the root
 * CID equals the ordinary single pack's, and the restores, full and by path, are byte-identical.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startArchive, startRestore } from '../../workers/client.js';
import { bytesOf, readTree, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import type { Config } from '../../config/schema.js';
import type { ArchiveSummary } from '../../shared/types.js';
import { MinioServer, serverOr, type Started } from '../helpers/servers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CREATED = '2026-01-01T00:00:00.000Z';

describe('packing in units that any worker runs', () => {
  let env: TestWorkflowEnvironment | undefined;
  let data: string;
  let src: string;
  let config: Config;
  let cfgFile: (staging: string) => string;
  let single: ArchiveSummary;
  const workers: ChildProcess[] = [];
  let minio: Started<MinioServer> | undefined;

  before(async (t) => {
    env = await startTemporal(t as never);
    minio = await MinioServer.start();
    data = tmpDir('pv-units-');
    src = path.join(data, 'src');
    const files: Record<string, Buffer | string> = {
      'big/model.bin': bytesOf(5 * MiB + 12_345, 'units-model'), // split across several units
      'big/weights.bin': bytesOf(3 * MiB + 7, 'units-weights'),
      'empty.txt': '',
      'a-b/x.txt': 'a sibling whose name sorts after a/',
      'a/y.txt': 'inside a/',
    };
    for (let i = 0; i < 30; i++)
      files[`small/f-${String(i).padStart(2, '0')}.bin`] = bytesOf(1000 + i * 2311, `u-${i}`);
    writeTree(src, files);
    const home = path.join(data, 'home');
    const base = {
      pack: { shardBytes: 512 * KiB, chunkBytes: 64 * KiB, unitShards: 2 },
      replication: { copies: 2 },
      providers: [0, 1].map((i) => ({ kind: 'local', id: `disk-${i}`, path: path.join(data, 'providers', `${i}`) })),
    };
    config = testConfig(home, { ...base, stagingDir: path.join(data, 'staging-0') } as never);
    cfgFile = (staging: string) => {
      const f = path.join(data, `config-${path.basename(staging)}.json`);
      fs.writeFileSync(
        f,
        JSON.stringify({
          dataDir: home,
          stagingDir: staging,
          ...base,
          temporal: { taskQueue: config.temporal.taskQueue, heartbeatTimeout: '3 seconds' },
        }),
      );
      return f;
    };
  });
  after(async () => {
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
    await env?.teardown();
    if (minio?.ok) await minio.server.stop();
    fs.rmSync(data, { recursive: true, force: true });
  });

  const worker = (name: string): ChildProcess => {
    const w = spawn(process.execPath, [path.resolve('dist/workers/main.js')], {
      env: {
        ...process.env,
        PROVENANT_CONFIG: cfgFile(path.join(data, name)),
        TEMPORAL_ADDRESS: env!.address,
        TEMPORAL_NAMESPACE: env!.namespace ?? 'default',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    workers.push(w);
    return w;
  };

  const archive = (workflowId: string, cfg = config) =>
    startArchive(env!.client, cfg, { dir: src, datasetId: 'units', createdAt: CREATED, workflowId, noSteward: true });

  /** Who ran each unit of the first page (worker identities, pid@host) and the highest attempt. */
  const unitRuns = async (workflowId: string) => {
    const history = await env!.client.workflow.getHandle(`${workflowId}/units-0`).fetchHistory();
    const identities = new Set<string>();
    let attempts = 1;
    for (const e of history.events ?? []) {
      const a = e.activityTaskStartedEventAttributes;
      if (!a) continue;
      identities.add(a.identity ?? '');
      attempts = Math.max(attempts, a.attempt ?? 1);
    }
    return { identities, attempts };
  };

  const restoreAndCompare = async (s: ArchiveSummary, tag: string) => {
    const target = path.join(data, `restored-${tag}`);
    await withWorker(env!, config, async () => {
      await (await startRestore(env!.client, config, { manifestCid: s.manifestCid, target, force: false })).result();
    });
    assert.deepEqual(readTree(target), readTree(src), `${tag}: full restore byte-identical`);
  };

  it('one worker: the root CID equals the single pack, restores (full and by path) are byte-identical', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const plain = testConfig(path.join(data, 'home-plain'), {
      pack: { shardBytes: 512 * KiB, chunkBytes: 64 * KiB },
      stagingDir: path.join(data, 'staging-plain'),
    } as never);
    const reference = await withWorker(env, plain, async () => (await archive('units-plain', plain)).handle.result());
    single = await withWorker(env, config, async () => (await archive('units-one')).handle.result());
    assert.equal(single.rootCid, reference.rootCid, 'the stitched DAG is the single pack’s');
    assert.ok(single.shards >= 18, `${single.shards} shards`);
    assert.equal(
      Object.values(single.replicas).reduce((a, b) => a + b, 0),
      single.shards * 2,
      'every data and tree shard has 2 copies',
    );
    // Each provider holds every shard and the manifest, nothing else: the plan and result blocks went.
    for (const i of [0, 1])
      assert.equal(
        fs.readdirSync(path.join(data, 'providers', `${i}`, 'pieces')).filter((f) => f.endsWith('.car')).length,
        single.shards + 1,
        `disk-${i} holds the shards and the manifest only`,
      );
    await restoreAndCompare(single, 'one');
    const part = path.join(data, 'restored-path');
    await withWorker(env, config, async () => {
      await (
        await startRestore(env!.client, config, {
          manifestCid: single.manifestCid,
          target: part,
          force: false,
          paths: ['big/model.bin'],
        })
      ).result();
    });
    assert.deepEqual(readTree(part), new Map([['big/model.bin', fs.readFileSync(path.join(src, 'big/model.bin'))]]));
    assert.deepEqual(
      fs.readdirSync(path.join(data, 'staging-0')).filter((d) => d.startsWith('units.')),
      [],
      'staging is empty',
    );
  });

  it('two worker processes, each with its own staging, both pack units: the same manifest as one worker', async (t) => {
    if (!env || !single) return t.skip('no Temporal server');
    worker('staging-a');
    worker('staging-b');
    const { handle } = await archive('units-two');
    const s = await handle.result();
    assert.equal(s.manifestCid, single.manifestCid, 'manifest (and so every shard and piece CID) as one worker’s');
    assert.equal(s.rootCid, single.rootCid);
    const { identities } = await unitRuns('units-two');
    assert.ok(identities.size >= 2, `units ran on ${identities.size} workers: ${[...identities].join(', ')}`);
    for (const w of workers.splice(0)) {
      w.kill('SIGTERM');
      await new Promise((r) => w.once('exit', r));
    }
  });

  it('a worker killed mid-unit: another takes its unit over and the archive ends with the same manifest', async (t) => {
    if (!env || !single) return t.skip('no Temporal server');
    const a = worker('staging-c');
    worker('staging-d');
    const { handle } = await archive('units-kill');
    // Kill `a` while it runs a unit (a pending, started activity whose last worker is a).
    const child = env.client.workflow.getHandle('units-kill/units-0');
    const deadline = Date.now() + 120_000;
    for (;;) {
      assert.ok(Date.now() < deadline, 'worker a never ran a unit');
      const d = await child.describe().catch(() => undefined);
      const busy = d?.raw.pendingActivities?.some(
        // PENDING_ACTIVITY_STATE_STARTED (2): picked up by a worker and running.
        (p) => p.lastWorkerIdentity?.startsWith(`${a.pid}@`) && Number(p.state) === 2,
      );
      if (busy) break;
      assert.notEqual(d?.status.name, 'COMPLETED', 'the page ended before worker a ran a unit');
      await new Promise((r) => setTimeout(r, 5));
    }
    a.kill('SIGKILL');
    const s = await handle.result();
    assert.equal(s.manifestCid, single.manifestCid);
    const { attempts } = await unitRuns('units-kill');
    assert.ok(attempts >= 2, 'the killed worker’s unit was run again');
    for (const w of workers.splice(0)) {
      if (w.exitCode !== null || w.signalCode !== null) continue; // `a`, killed and gone
      w.kill('SIGTERM');
      await new Promise((r) => w.once('exit', r));
    }
    await restoreAndCompare(s, 'kill');
  });

  it('an S3 (MinIO) source in units: ranged reads, the same root CID, restored byte-identical', async (t) => {
    if (!env || !single) return t.skip('no Temporal server');
    const m = serverOr(t, minio);
    if (!m) return;
    const bucket = await m.createBucket();
    const c = m.client();
    for (const [rel, body] of readTree(src))
      await c.send(new PutObjectCommand({ Bucket: bucket, Key: `ds/${rel}`, Body: body }));
    c.destroy();
    const source = {
      kind: 's3' as const,
      bucket,
      prefix: 'ds/',
      endpoint: m.endpoint,
      forcePathStyle: true,
      ...m.exportCredentials(),
    };
    const s = await withWorker(env, config, async () => {
      const { handle } = await startArchive(env!.client, config, {
        source,
        datasetId: 'units-s3',
        createdAt: CREATED,
        noSteward: true,
      });
      return handle.result();
    });
    assert.equal(s.rootCid, single.rootCid, 'the same tree from S3 makes the same DAG');
    assert.equal(s.shards, single.shards);
    await restoreAndCompare(s, 's3');
  });
});
