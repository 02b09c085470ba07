/**
 * Windowed staging on the real Temporal dev server: the staging directory is a tmpfs that holds a
 * few shards, the dataset is several times larger, and the providers are on another filesystem
 * (they copy, not move). The pack waits for replicated shards to leave staging before it runs
 * more than `pack.stagingWindowShards` ahead, so the archive succeeds (a full staging would fail
 * it with ENOSPC), staging never holds more than the window, and the restore is byte-identical.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startArchive, startRestore } from '../../workers/client.js';
import { bytesOf, readTree, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import type { Config } from '../../config/schema.js';
import { MinioServer, serverOr, type Started } from '../helpers/servers.js';

const MiB = 1024 * 1024;
const SHARD = 2 * MiB;
const WINDOW = 2;
const TMPFS = 12 * MiB;
const DATASET = 48 * MiB;

/** Mount a tmpfs of `bytes` on `dir` (root only); false when that is not possible here. */
function mountTmpfs(dir: string, bytes: number): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Shard files (and twins, partial or not) in any run's staging below `root`. */
function stagedShards(root: string): number {
  let n = 0;
  for (const run of fs.readdirSync(root, { withFileTypes: true })) {
    if (!run.isDirectory()) continue;
    try {
      for (const f of fs.readdirSync(path.join(root, run.name)))
        if (/^shard-\d+\.car(\.twin\d+)?(\.partial)?$/.test(f)) n++;
    } catch {
      // The run's staging was removed meanwhile.
    }
  }
  return n;
}

/** Samples the staging filesystem while `fn` runs: its peak use and peak count of staged shard files. */
async function watchStaging<T>(
  root: string,
  fn: () => Promise<T>,
): Promise<{ value: T; usedBytes: number; shards: number }> {
  const base = fs.statfsSync(root);
  const used = () => {
    const s = fs.statfsSync(root);
    return (base.bfree - s.bfree) * s.bsize;
  };
  let usedBytes = 0;
  let shards = 0;
  const sample = () => {
    usedBytes = Math.max(usedBytes, used());
    shards = Math.max(shards, stagedShards(root));
  };
  const timer = setInterval(sample, 10);
  try {
    const value = await fn();
    sample();
    return { value, usedBytes, shards };
  } finally {
    clearInterval(timer);
  }
}

describe('bounded staging: a dataset several times larger than the staging filesystem', () => {
  let env: TestWorkflowEnvironment | undefined;
  let data: string;
  let staging: string;
  let mounted = false;
  let config: Config;
  let minio: Started<MinioServer> | undefined;

  /** The dataset: a few large files (each several shards) and many small ones. */
  const dataset = (tag: string) => {
    const files: Record<string, Buffer | string> = { 'small/readme.txt': `bounded staging ${tag}` };
    for (let i = 0; i < 6; i++) files[`big/part-${i}.bin`] = bytesOf(DATASET / 6 - i * 1013, `${tag}-${i}`);
    for (let i = 0; i < 40; i++) files[`small/f-${i}.bin`] = bytesOf(3000 + i * 17, `${tag}-small-${i}`);
    return files;
  };

  before(async (t) => {
    data = tmpDir('pv-bounded-');
    staging = path.join(data, 'staging');
    fs.mkdirSync(staging);
    mounted = mountTmpfs(staging, TMPFS);
    // Without a tmpfs (not root) the tests skip: staging would not be bounded by a filesystem.
    if (!mounted) return;
    env = await startTemporal(t as never);
    minio = await MinioServer.start();
    config = testConfig(path.join(data, 'home'), {
      stagingDir: staging,
      pack: { shardBytes: SHARD, stagingWindowShards: WINDOW },
      replication: { copies: 2 },
      // On the normal disk: another filesystem than staging, so the copies are copied, never moved.
      providers: [0, 1].map((i) => ({ kind: 'local', id: `disk-${i}`, path: path.join(data, 'providers', `${i}`) })),
    });
  });
  after(async () => {
    await env?.teardown();
    if (minio?.ok) await minio.server.stop();
    if (mounted) execFileSync('umount', [staging]);
    fs.rmSync(data, { recursive: true, force: true });
  });

  it('archives a local source through a staging window of 2 shards and restores it byte-identical', async (t) => {
    if (!env) return t.skip('no Temporal server or no tmpfs');
    const src = path.join(data, 'src');
    writeTree(src, dataset('bounded'));
    const target = path.join(data, 'restored');

    const {
      value: summary,
      usedBytes,
      shards,
    } = await watchStaging(staging, () =>
      withWorker(env!, config, async () => {
        const { handle } = await startArchive(env!.client, config, { dir: src, datasetId: 'bounded-local' });
        const summary = await handle.result();
        await (
          await startRestore(env!.client, config, { manifestCid: summary.manifestCid, target, force: false })
        ).result();
        return summary;
      }),
    );

    assert.ok(summary.carBytes > 3 * TMPFS, `the dataset (${summary.carBytes} bytes) is several times the staging`);
    assert.ok(summary.shards >= 24, `${summary.shards} shards`);
    assert.equal(summary.copies, 2);
    assert.equal(
      Object.values(summary.replicas).reduce((a, b) => a + b, 0),
      summary.shards * 2,
    );
    // At most the window (one more while the oldest is deleted as the next opens, seen by a sample).
    assert.ok(shards <= WINDOW + 1, `at most ${WINDOW + 1} shard files staged at once, saw ${shards}`);
    assert.ok(usedBytes < TMPFS, `staging peaked at ${usedBytes} bytes`);
    assert.deepEqual(readTree(target), readTree(src));
    assert.deepEqual(fs.readdirSync(staging), [], 'staging is empty at the end');
  });

  it('archives an S3 (MinIO) source through the same window, streaming it: nothing mirrored, restored byte-identical', async (t) => {
    if (!env) return t.skip('no Temporal server or no tmpfs');
    const m = serverOr(t, minio);
    if (!m) return;
    const files = dataset('bounded-s3');
    const bucket = await m.createBucket();
    const c = m.client();
    for (const [key, body] of Object.entries(files))
      await c.send(new PutObjectCommand({ Bucket: bucket, Key: `ds/${key}`, Body: Buffer.from(body) }));
    c.destroy();
    const source = {
      kind: 's3' as const,
      bucket,
      prefix: 'ds/',
      endpoint: m.endpoint,
      forcePathStyle: true,
      ...m.exportCredentials(),
    };
    const target = path.join(data, 'restored-s3');

    const {
      value: summary,
      usedBytes,
      shards,
    } = await watchStaging(staging, () =>
      withWorker(env!, config, async () => {
        const { handle } = await startArchive(env!.client, config, { source, datasetId: 'bounded-s3' });
        const summary = await handle.result();
        await (
          await startRestore(env!.client, config, { manifestCid: summary.manifestCid, target, force: false })
        ).result();
        return summary;
      }),
    );

    assert.ok(summary.carBytes > 3 * TMPFS, `the dataset (${summary.carBytes} bytes) is several times the staging`);
    assert.equal(
      Object.values(summary.replicas).reduce((a, b) => a + b, 0),
      summary.shards * 2,
    );
    assert.ok(shards <= WINDOW + 1, `at most ${WINDOW + 1} shard files staged at once, saw ${shards}`);
    // A mirror would need the whole dataset (48 MiB) in a 12 MiB staging: it would have failed with ENOSPC.
    assert.ok(usedBytes < TMPFS, `staging peaked at ${usedBytes} bytes`);
    const src = path.join(data, 'src-s3');
    writeTree(src, files);
    assert.deepEqual(readTree(target), readTree(src));
    assert.deepEqual(fs.readdirSync(staging), [], 'staging is empty at the end');
  });
});
