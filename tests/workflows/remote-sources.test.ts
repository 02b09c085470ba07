/**
 * End to end on a real Temporal dev server: archive an S3 prefix (real MinIO) and HTTP URLs (a
 * loopback server), restore byte-identical with the source's mtimes, and find the original URI —
 * not the staging mirror — in the manifest. Also the `provenant archive s3://…` CLI path.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { manifestFiles } from '../../activities/manifest/manifest.js';
import { LocalProvider } from '../../activities/providers/local.js';
import { ProviderSet } from '../../activities/providers/registry.js';
import { locateManifest } from '../../activities/restore/restore.js';
import type { ArchiveSourceInput, Config } from '../../config/schema.js';
import { archiveInput, sourceFromArgs, startArchive, startRestore } from '../../workers/client.js';
import {
  bytesOf,
  readTree,
  REQUIRE_ALL,
  startTemporal,
  testConfig,
  tmpDir,
  withWorker,
  writeTree,
} from '../helpers/env.js';
import { freePort, MinioServer, serverOr, type Started } from '../helpers/servers.js';
import { resolveTemporalCli } from '../../workers/temporal-cli.js';

const MiB = 1024 * 1024;
const LAST_MODIFIED = new Date('2023-11-14T22:13:20Z');

/** The type of the ApplicationFailure at the root of a failed workflow. */
function failureType(err: unknown): string | undefined {
  let e: unknown = err;
  while (e instanceof WorkflowFailedError || e instanceof ActivityFailure) e = (e as Error).cause;
  return e instanceof ApplicationFailure ? (e.type ?? undefined) : undefined;
}

const OBJECTS: Record<string, Buffer> = {
  'weights/shard-0.bin': bytesOf(5 * MiB + 3, 'remote-w0'),
  'weights/shard-1.bin': bytesOf(MiB, 'remote-w1'),
  'config.json': Buffer.from(JSON.stringify({ layers: 2 })),
  'empty.bin': Buffer.alloc(0),
  'ünïcödé/名前.txt': Buffer.from('names survive'),
  // Listed in key order before weights/… ('-' and '.' sort below '/'), but the directory weights/ comes first.
  'weights-v2/x.bin': Buffer.from('a sibling directory whose name extends another'),
  'weights.txt': Buffer.from('a file whose name extends a directory'),
};

const WEB: Record<string, Buffer> = {
  '/models/model.safetensors': bytesOf(3 * MiB + 1, 'remote-web'),
  '/models/tokenizer.json': Buffer.from('{"vocab":32000}'),
  // 2.5 MiB each: with 2 MiB shards, 0.bin closes shard 0 and 1.bin shard 1 (the pack's checkpoint).
  '/flaky/0.bin': bytesOf(2.5 * 1024 * 1024, 'flaky-0'),
  '/flaky/1.bin': bytesOf(2.5 * 1024 * 1024, 'flaky-1'),
  '/flaky/a.bin': bytesOf(1000, 'flaky-a'),
  '/flaky/b.bin': bytesOf(2000, 'flaky-b'),
};
const gets = new Map<string, number>();

describe('archive from remote sources on a real Temporal server', () => {
  let env: TestWorkflowEnvironment | undefined;
  let minio: Started<MinioServer> | undefined;
  let web: http.Server;
  let base = '';
  let data: string;
  let config: Config;
  let bucket = '';
  let credentials: { accessKeyIdEnv: string; secretAccessKeyEnv: string } | undefined;

  before(async (t) => {
    env = await startTemporal(t as never);
    minio = await MinioServer.start();
    data = tmpDir();
    config = testConfig(path.join(data, 'home'));
    if (minio.ok) {
      bucket = await minio.server.createBucket();
      credentials = minio.server.exportCredentials();
      const c = minio.server.client();
      for (const [k, v] of Object.entries(OBJECTS))
        await c.send(new PutObjectCommand({ Bucket: bucket, Key: `datasets/v1/${k}`, Body: v }));
      await c.send(
        new PutObjectCommand({ Bucket: bucket, Key: 'datasets/v1-other/not-included.txt', Body: Buffer.from('no') }),
      );
      c.destroy();
    }
    web = http.createServer((req, res) => {
      const at = new URL(req.url ?? '/', 'http://x').pathname;
      const body = WEB[at];
      if (!body) return void res.writeHead(404).end();
      if (req.method === 'GET') gets.set(at, (gets.get(at) ?? 0) + 1);
      // The first GET of b.bin fails (after a moment, so that a.bin is in place by then).
      if (at === '/flaky/b.bin' && req.method === 'GET' && gets.get(at) === 1)
        return void setTimeout(() => res.writeHead(503).end(), 300);
      res.writeHead(200, { 'content-length': body.length, 'last-modified': LAST_MODIFIED.toUTCString() });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(web.address() as { port: number }).port}`;
  });
  after(async () => {
    await env?.teardown();
    if (minio?.ok) await minio.server.stop();
    await new Promise<void>((resolve) => web.close(() => resolve()));
  });

  /** Archive, restore into a fresh directory, and read the manifest back from the providers. */
  async function roundTrip(e: TestWorkflowEnvironment, datasetId: string, source: ArchiveSourceInput) {
    return withWorker(e, config, async () => {
      const { handle } = await startArchive(e.client, config, { source, datasetId, noSteward: true });
      const summary = await handle.result();
      const history = JSON.stringify(await handle.fetchHistory());
      const target = path.join(data, `restored-${datasetId}`);
      await (await startRestore(e.client, config, { manifestCid: summary.manifestCid, target, force: false })).result();
      const providers = new ProviderSet(config.providers);
      const { manifest, pages } = await locateManifest(summary.manifestCid, providers.all(), tmpDir('pv-manifest-'));
      await providers.close();
      return { summary, history, target, manifest, files: [...manifestFiles(manifest, pages)] };
    });
  }

  it('archives an S3 prefix and restores it byte-identical, with s3://bucket/prefix in the manifest', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const m = serverOr(t, minio);
    if (!m) return;
    const r = await roundTrip(env, 'from-s3', {
      kind: 's3',
      bucket,
      prefix: 'datasets/v1/',
      endpoint: m.endpoint,
      forcePathStyle: true,
      ...credentials!,
    });
    assert.deepEqual(readTree(r.target), new Map(Object.entries(OBJECTS)));
    assert.equal(r.summary.files, Object.keys(OBJECTS).length);
    // Streamed, not mirrored: no mirror activity ran, and the DAG is the one a local tree of the same files makes.
    assert.ok(!r.history.includes('provenantMirror'), 'the source is not mirrored into staging');
    const local = path.join(data, 'same-as-s3');
    writeTree(local, OBJECTS);
    const same = await withWorker(env, config, async () => {
      const { handle } = await startArchive(env!.client, config, {
        dir: local,
        datasetId: 'same-as-s3',
        noSteward: true,
      });
      return handle.result();
    });
    assert.equal(r.summary.rootCid, same.rootCid, 'root CID equals a local archive of the same tree');
    assert.deepEqual(r.manifest.source, {
      kind: 's3',
      uri: `s3://${bucket}/datasets/v1/`,
      host: r.manifest.source.host,
    });
    // mtimes are the objects' LastModified, in the manifest and on the restored files.
    const c = m.client();
    const listing = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'datasets/v1/' }));
    c.destroy();
    for (const o of listing.Contents ?? []) {
      const rel = o.Key!.slice('datasets/v1/'.length);
      assert.equal(r.files.find((f) => f.path === rel)?.mtimeMs, o.LastModified!.getTime(), rel);
      // restore sets mtimes through a Date, which can land up to 1 ms early (float seconds → ns truncation).
      assert.ok(
        Math.abs(Math.trunc(fs.statSync(path.join(r.target, rel)).mtimeMs) - o.LastModified!.getTime()) <= 1,
        rel,
      );
    }
    assert.ok(!r.history.includes(m.secretAccessKey), 'the secret never enters workflow history');
    assert.deepEqual(
      fs.readdirSync(config.stagingDir).filter((d) => d.startsWith('from-s3.')),
      [],
      'the mirror is cleaned with the staging',
    );
  });

  it('archives HTTP URLs (one under a given path) and restores them byte-identical, with the URLs in the manifest', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const urls = [
      `${base}/models/model.safetensors`,
      { url: `${base}/models/tokenizer.json`, path: 'tokenizer/tokenizer.json' },
    ];
    const r = await roundTrip(env, 'from-http', { kind: 'http', urls });
    assert.deepEqual(
      readTree(r.target),
      new Map([
        ['model.safetensors', WEB['/models/model.safetensors']!],
        ['tokenizer/tokenizer.json', WEB['/models/tokenizer.json']!],
      ]),
    );
    assert.deepEqual(r.manifest.source, {
      kind: 'http',
      uri: `${base}/models/model.safetensors ${base}/models/tokenizer.json`,
      host: r.manifest.source.host,
    });
    assert.deepEqual(
      r.files.map((f) => f.mtimeMs),
      [LAST_MODIFIED.getTime(), LAST_MODIFIED.getTime()],
    );
    assert.ok(!r.history.includes('provenantMirror'), 'the URLs are streamed, not mirrored into staging');
    assert.deepEqual(
      fs.readdirSync(config.stagingDir).filter((d) => d.startsWith('from-http.')),
      [],
    );
  });

  it('retries a pack that failed on a 503 from its checkpoint: files before the last closed shard are not fetched again', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const names = ['0.bin', '1.bin', 'a.bin', 'b.bin'];
    const r = await roundTrip(env, 'flaky', { kind: 'http', urls: names.map((n) => `${base}/flaky/${n}`) });
    assert.deepEqual(readTree(r.target), new Map(names.map((n) => [n, WEB[`/flaky/${n}`]!])));
    // The checkpoint at shard 1's close is inside 1.bin: the retry streams from there, 0.bin only once.
    assert.deepEqual(
      names.map((n) => gets.get(`/flaky/${n}`)),
      [1, 2, 2, 2],
      'GETs per file: 0.bin once, the rest again from the checkpoint',
    );
    assert.match(r.history, /SourceUnavailableError/, 'the failed attempt is in the history');
  });

  it('fails the archive with the source error type, without retrying: a missing URL, an empty prefix', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const m = serverOr(t, minio);
    if (!m) return;
    await withWorker(env, config, async () => {
      const cases: [string, ArchiveSourceInput, string][] = [
        [
          'missing-url',
          { kind: 'http', urls: [`${base}/models/model.safetensors`, `${base}/models/nope.bin`] },
          'SourceNotFoundError',
        ],
        [
          'empty-prefix',
          { kind: 's3', bucket, prefix: 'nothing/here/', endpoint: m.endpoint, forcePathStyle: true, ...credentials! },
          'EmptyDatasetError',
        ],
      ];
      for (const [id, source, type] of cases) {
        const { handle } = await startArchive(env!.client, config, { source, datasetId: id, noSteward: true });
        await assert.rejects(handle.result(), (err) => failureType(err) === type, `${id} → ${type}`);
        const attempts = (await handle.fetchHistory()).events
          ?.filter((ev) => ev.activityTaskStartedEventAttributes)
          .map((ev) => ev.activityTaskStartedEventAttributes!.attempt);
        assert.ok(
          attempts?.every((a) => a === 1),
          `${id}: one attempt`,
        );
      }
    });
  });

  it('builds the source from `provenant archive` arguments, with S3 settings from flags or PROVENANT_S3_*', () => {
    const env = {
      PROVENANT_S3_ENDPOINT: 'http://127.0.0.1:9000',
      PROVENANT_S3_PATH_STYLE: '1',
      PROVENANT_S3_ACCESS_KEY_ID_ENV: 'K',
      PROVENANT_S3_SECRET_ACCESS_KEY_ENV: 'S',
    };
    assert.deepEqual(sourceFromArgs(['s3://bkt/some/prefix'], {}, env), {
      kind: 's3',
      bucket: 'bkt',
      prefix: 'some/prefix/',
      endpoint: 'http://127.0.0.1:9000',
      region: undefined,
      forcePathStyle: true,
      accessKeyIdEnv: 'K',
      secretAccessKeyEnv: 'S',
    });
    assert.equal(
      (
        sourceFromArgs(['s3://bkt'], { s3Endpoint: 'https://flag.example', s3PathStyle: false }, env) as {
          endpoint: string;
        }
      ).endpoint,
      'https://flag.example',
    );
    assert.deepEqual(sourceFromArgs(['https://h/a.bin', 'sub/b.bin=https://h/x?y=1'], {}, {}), {
      kind: 'http',
      urls: ['https://h/a.bin', { url: 'https://h/x?y=1', path: 'sub/b.bin' }],
    });
    assert.deepEqual(sourceFromArgs(['rel-dir'], {}, {}), { kind: 'local', path: path.resolve('rel-dir') });
    assert.throws(
      () => sourceFromArgs(['https://h/a.bin', './dir'], {}, {}),
      (e) => (e as Error).name === 'ConfigError',
    );
    assert.throws(
      () => sourceFromArgs(['s3://a-bucket/x/', 's3://b-bucket/y/'], {}, {}),
      (e) => (e as Error).name === 'ConfigError',
    );
    // Validated before anything starts: a URL with no file name, a secret in the URL.
    assert.throws(
      () => archiveInput(config, { source: sourceFromArgs(['https://h/dir/'], {}, {}) }),
      (e) => (e as Error).name === 'InvalidFileNameError',
    );
    assert.throws(
      () => archiveInput(config, { source: sourceFromArgs(['https://u:pw@h/a.bin'], {}, {}) }),
      (e) => (e as Error).name === 'ConfigError',
    );
  });

  it('`provenant archive s3://…` archives a prefix on the embedded server and `restore` brings it back', async (t) => {
    const m = serverOr(t, minio);
    if (!m) return;
    if (!resolveTemporalCli({ build: true })) {
      if (REQUIRE_ALL) throw new Error('Temporal CLI unavailable');
      return t.skip('Temporal CLI unavailable');
    }
    const root = tmpDir('pv-cli-remote-');
    const cliEnv = {
      PROVENANT_DATA_DIR: path.join(root, 'home'),
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      PROVENANT_EMBEDDED: 'auto',
      PROVENANT_S3_ENDPOINT: m.endpoint,
      PROVENANT_S3_PATH_STYLE: '1',
      PROVENANT_S3_ACCESS_KEY_ID_ENV: credentials!.accessKeyIdEnv,
      PROVENANT_S3_SECRET_ACCESS_KEY_ENV: credentials!.secretAccessKeyEnv,
      [credentials!.accessKeyIdEnv]: m.accessKeyId,
      [credentials!.secretAccessKeyEnv]: m.secretAccessKey,
    };
    const a = await run(['archive', `s3://${bucket}/datasets/v1`, '--id', 'cli-s3', '--json'], cliEnv);
    assert.equal(a.code, 0, a.stderr);
    const summary = JSON.parse(a.stdout) as { manifestCid: string; files: number };
    assert.equal(summary.files, Object.keys(OBJECTS).length);
    const provs = ['local-1', 'local-2', 'local-3'].map(
      (id) => new LocalProvider(id, path.join(cliEnv.PROVENANT_DATA_DIR, 'providers', id)),
    );
    const { manifest } = await locateManifest(summary.manifestCid, provs, tmpDir('pv-cli-m-'));
    assert.equal(manifest.source.uri, `s3://${bucket}/datasets/v1/`);
    const target = path.join(root, 'out');
    const r = await run(['restore', 'cli-s3', target, '--json'], cliEnv);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readTree(target), new Map(Object.entries(OBJECTS)));
  });
});

function run(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [path.resolve('dist/cli/provenant.js'), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
