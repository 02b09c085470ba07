/**
 * Remote sources mirrored into a local tree: an S3 prefix on a real MinIO, URLs on a loopback
 * HTTP server, and the path rules on a fake source. Every bad input is a typed error.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createSource, mirrorSource } from '../../../activities/ingest/mirror.js';
import { S3Source } from '../../../activities/ingest/s3.js';
import type { OpenedEntry, Source, SourceEntry } from '../../../activities/ingest/sources.js';
import { HttpSourceSchema, S3SourceSchema, type HttpSourceConfig } from '../../../config/schema.js';
import { bytesOf, readTree, tmpDir, writeTree } from '../../helpers/env.js';
import { freePort, MinioServer, serverOr, type Started } from '../../helpers/servers.js';

const MiB = 1024 * 1024;
/** Asserts the error's type (its name) and, when given, whether Temporal may retry it. */
const typed = (name: string, retryable?: boolean) => (e: unknown) =>
  e instanceof Error &&
  e.name === name &&
  (retryable === undefined || (e as { retryable?: boolean }).retryable === retryable);
const mtimeOf = (p: string) => Math.trunc(fs.statSync(p).mtimeMs);

// ---- servers ------------------------------------------------------------------------------------

let minio: Started<MinioServer> | undefined;
let bucket = '';
let web: http.Server;
let base = '';
const gets = new Map<string, number>();
const LAST_MODIFIED = new Date('2024-03-01T12:34:56Z');

/** What the loopback web server serves at /files/…. */
const WEB_FILES: Record<string, Buffer> = {
  '/files/weights.bin': bytesOf(3 * MiB + 5, 'web-weights'),
  '/files/config.json': Buffer.from('{"layers":4}'),
  '/files/empty.txt': Buffer.alloc(0),
  '/files/n%C3%A4me%20with%20space.txt': Buffer.from('percent-encoded name'),
  '/private/token.bin': Buffer.from('needs a bearer token'),
  '/presigned/model.bin': Buffer.from('HEAD is refused, GET works'),
};

before(async () => {
  minio = await MinioServer.start();
  if (minio.ok) bucket = await minio.server.createBucket();
  web = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'GET') gets.set(url.pathname, (gets.get(url.pathname) ?? 0) + 1);
    const body = WEB_FILES[url.pathname];
    const send = (b: Buffer, headers: http.OutgoingHttpHeaders = {}) => {
      res.writeHead(200, { 'content-length': b.length, 'last-modified': LAST_MODIFIED.toUTCString(), ...headers });
      res.end(req.method === 'HEAD' ? undefined : b);
    };
    if (url.pathname.startsWith('/private/') && req.headers.authorization !== 'Bearer t0ken')
      return void res.writeHead(401).end();
    if (url.pathname.startsWith('/presigned/') && req.method === 'HEAD') return void res.writeHead(403).end();
    if (body) return send(body);
    if (url.pathname === '/gone.bin') return void res.writeHead(410).end();
    if (url.pathname === '/denied.bin') return void res.writeHead(403).end();
    if (url.pathname === '/busy.bin') return void res.writeHead(503).end();
    if (url.pathname === '/bad-request.bin') return void res.writeHead(400).end();
    if (url.pathname === '/gzip.bin') return send(zlib.gzipSync(bytesOf(10_000, 'gz')), { 'content-encoding': 'gzip' });
    if (url.pathname === '/cut.bin') {
      // Announces 1,000,000 bytes, sends 100,000, then drops the connection.
      res.writeHead(200, { 'content-length': 1_000_000, 'last-modified': LAST_MODIFIED.toUTCString() });
      if (req.method === 'HEAD') return void res.end();
      res.write(bytesOf(100_000, 'cut'), () => res.socket?.destroy());
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(web.address() as { port: number }).port}`;
});

after(async () => {
  if (minio?.ok) await minio.server.stop();
  await new Promise<void>((resolve) => web.close(() => resolve()));
});

// ---- helpers ------------------------------------------------------------------------------------

async function put(m: MinioServer, key: string, body: Buffer | string): Promise<void> {
  const c = m.client();
  try {
    await c.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.from(body) }));
  } finally {
    c.destroy();
  }
}

/** Key → LastModified in ms, as the listing states it. */
async function listed(m: MinioServer, prefix: string): Promise<Map<string, number>> {
  const c = m.client();
  try {
    const r = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    return new Map((r.Contents ?? []).map((o) => [o.Key!, o.LastModified!.getTime()]));
  } finally {
    c.destroy();
  }
}

function s3Source(
  m: MinioServer,
  prefix: string,
  over: Record<string, unknown> = {},
  env: NodeJS.ProcessEnv = process.env,
): Source {
  const names = m.exportCredentials(env);
  return createSource(
    S3SourceSchema.parse({ kind: 's3', bucket, prefix, endpoint: m.endpoint, forcePathStyle: true, ...names, ...over }),
    env,
  );
}

function httpSource(
  urls: HttpSourceConfig['urls'],
  over: Partial<HttpSourceConfig> = {},
  env: NodeJS.ProcessEnv = process.env,
): Source {
  return createSource(HttpSourceSchema.parse({ kind: 'http', urls, ...over }), env);
}

/** Mirror into a fresh directory (or `into`) and return the result with the mirror's path. */
async function mirror(source: Source, into = path.join(tmpDir('pv-mirror-'), 'mirror')) {
  try {
    return { ...(await mirrorSource(source, into)), dir: into };
  } finally {
    source.close();
  }
}

/** A source of entries held in memory, for the rules that do not depend on where bytes come from. */
class FakeSource implements Source {
  readonly uri = 'fake://';
  opened = 0;
  constructor(
    private readonly entries: (SourceEntry & { body?: Buffer | (() => AsyncIterable<Buffer>); md5?: string })[],
  ) {}
  async *list(): AsyncIterable<SourceEntry> {
    for (const e of this.entries) yield e;
  }
  async open(entry: SourceEntry): Promise<OpenedEntry> {
    this.opened++;
    const e = this.entries.find((x) => x.path === entry.path)!;
    const body = typeof e.body === 'function' ? Readable.from(e.body()) : Readable.from([e.body ?? Buffer.alloc(0)]);
    return { body, size: e.size, ...(e.md5 ? { md5: e.md5 } : {}) };
  }
  close(): void {}
}
const fake = (paths: string[]) =>
  new FakeSource(paths.map((p) => ({ path: p, ref: `fake:${p}`, size: 1, body: Buffer.from('x') })));

// ---- S3 -----------------------------------------------------------------------------------------

describe('S3 source on MinIO', () => {
  it('mirrors every object under the prefix at its relative path, with its size and LastModified as mtime', async (t) => {
    const m = serverOr(t, minio);
    if (!m) return;
    const objects: Record<string, Buffer> = {
      'ds/weights.bin': bytesOf(6 * MiB + 3, 's3-weights'),
      'ds/nested/deeper/x.txt': Buffer.from('deep'),
      'ds/ünï cödé/名前.txt': Buffer.from('unicode keys survive'),
      'ds/empty.bin': Buffer.alloc(0),
    };
    for (const [k, v] of Object.entries(objects)) await put(m, k, v);
    await put(m, 'ds/nested/folder-marker/', ''); // a console's "folder": no file
    await put(m, 'ds-sibling/not-under-the-prefix.txt', 'no');
    await put(m, 'other/ignored.txt', 'no');
    // A multipart object: its ETag is not an MD5, so only its length is checked.
    const c = m.client();
    const big = bytesOf(11 * MiB, 's3-multipart');
    await new Upload({
      client: c,
      params: { Bucket: bucket, Key: 'ds/multipart.bin', Body: big },
      partSize: 5 * MiB,
    }).done();
    c.destroy();
    objects['ds/multipart.bin'] = big;

    const r = await mirror(s3Source(m, 'ds/'));
    const want = new Map(Object.entries(objects).map(([k, v]) => [k.slice('ds/'.length), v]));
    assert.deepEqual(readTree(r.dir), want);
    assert.equal(
      fs.existsSync(path.join(r.dir, 'nested', 'folder-marker')),
      false,
      'a folder marker makes no file or directory',
    );
    assert.deepEqual(
      { files: r.files, bytes: r.bytes, downloaded: r.downloaded },
      { files: 5, bytes: [...want.values()].reduce((a, b) => a + b.length, 0), downloaded: 5 },
    );
    for (const [key, ms] of await listed(m, 'ds/')) {
      if (!key.endsWith('/')) assert.equal(mtimeOf(path.join(r.dir, key.slice(3))), ms, key);
    }
    assert.equal(fs.existsSync(`${r.dir}.work`), false, 'no temp files left');
  });

  it('downloads nothing again on a second run, and refetches only files whose size or mtime is off', async (t) => {
    const m = serverOr(t, minio);
    if (!m) return;
    for (const [k, v] of Object.entries({
      'again/a.bin': bytesOf(MiB, 'again-a'),
      'again/b/c.bin': bytesOf(1000, 'again-c'),
      'again/d.txt': 'd',
    }))
      await put(m, k, v);
    const first = await mirror(s3Source(m, 'again/'));
    const before = readTree(first.dir);
    assert.equal(first.downloaded, 3);
    const second = await mirror(s3Source(m, 'again/'), first.dir);
    assert.equal(second.downloaded, 0);
    assert.equal(second.files, 3);

    fs.truncateSync(path.join(first.dir, 'a.bin'), 10); // a cut-off copy
    fs.utimesSync(path.join(first.dir, 'b', 'c.bin'), new Date(0), new Date(0)); // a stale copy
    const third = await mirror(s3Source(m, 'again/'), first.dir);
    assert.equal(third.downloaded, 2);
    assert.deepEqual(readTree(first.dir), before);
  });

  it('removes what an earlier attempt left for objects deleted since, and its partial downloads', async (t) => {
    const m = serverOr(t, minio);
    if (!m) return;
    for (const [k, v] of Object.entries({ 'prune/keep.txt': 'keep', 'prune/gone/soon.txt': 'soon', 'prune/x': 'file' }))
      await put(m, k, v);
    const first = await mirror(s3Source(m, 'prune/'));
    const c = m.client();
    await c.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'prune/gone/soon.txt' }));
    await c.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'prune/x' }));
    c.destroy();
    await put(m, 'prune/x/now-a-directory.txt', 'dir'); // where a file was, a directory now
    writeTree(`${first.dir}.work/tmp`, { 'partial-of-a-killed-attempt': 'half' });

    const again = await mirror(s3Source(m, 'prune/'), first.dir);
    assert.deepEqual([...readTree(first.dir).keys()].sort(), ['keep.txt', 'x/now-a-directory.txt']);
    assert.equal(fs.existsSync(path.join(first.dir, 'gone')), false, 'the emptied directory is gone too');
    assert.equal(fs.existsSync(`${first.dir}.work`), false);
    assert.equal(again.files, 2);
  });

  it('fails with BucketNotFoundError for a bucket that does not exist', async (t) => {
    const m = serverOr(t, minio);
    if (!m) return;
    await assert.rejects(
      mirror(s3Source(m, '', { bucket: `missing-${crypto.randomBytes(4).toString('hex')}` })),
      typed('BucketNotFoundError', false),
    );
  });

  it('fails with SourceAccessDeniedError, not retryable, when the credentials are rejected', async (t) => {
    const m = serverOr(t, minio);
    if (!m) return;
    await put(m, 'denied/a.txt', 'a');
    const env: NodeJS.ProcessEnv = { PV_SRC_KEY: m.accessKeyId, PV_SRC_SECRET: `${m.secretAccessKey}x` };
    const source = createSource(
      S3SourceSchema.parse({
        kind: 's3',
        bucket,
        prefix: 'denied/',
        endpoint: m.endpoint,
        forcePathStyle: true,
        accessKeyIdEnv: 'PV_SRC_KEY',
        secretAccessKeyEnv: 'PV_SRC_SECRET',
      }),
      env,
    );
    await assert.rejects(mirror(source), typed('SourceAccessDeniedError', false));
  });

  it('fails with EmptyDatasetError for a prefix with no objects (folder markers do not count)', async (t) => {
    const m = serverOr(t, minio);
    if (!m) return;
    await put(m, 'hollow/', '');
    await put(m, 'hollow/sub/', '');
    await assert.rejects(mirror(s3Source(m, 'hollow/')), typed('EmptyDatasetError', false));
    await assert.rejects(mirror(s3Source(m, 'nothing-here/')), typed('EmptyDatasetError', false));
  });

  it('fails with SourceChangedError, retryable, when an object changes between its listing and its download', async (t) => {
    const m = serverOr(t, minio);
    if (!m) return;
    await put(m, 'changing/a.bin', 'version 1');
    const source = s3Source(m, 'changing/');
    const entries: SourceEntry[] = [];
    for await (const e of source.list()) entries.push(e);
    await put(m, 'changing/a.bin', 'version 2, longer');
    await assert.rejects(source.open(entries[0]!), typed('SourceChangedError', true));
    source.close();
  });

  it('states the MD5 of a single-part object (its ETag) for the mirror to check, and none for a multipart one', async (t) => {
    const m = serverOr(t, minio);
    if (!m) return;
    const single = bytesOf(1000, 'md5-single');
    await put(m, 'md5/single.bin', single);
    const c = m.client();
    await new Upload({
      client: c,
      params: { Bucket: bucket, Key: 'md5/multi.bin', Body: bytesOf(6 * MiB, 'md5-multi') },
      partSize: 5 * MiB,
    }).done();
    c.destroy();
    const source = s3Source(m, 'md5/');
    const md5s: Record<string, string | undefined> = {};
    for await (const e of source.list()) {
      const opened = await source.open(e);
      opened.body.destroy();
      md5s[e.path] = opened.md5;
    }
    source.close();
    assert.deepEqual(md5s, {
      'multi.bin': undefined,
      'single.bin': crypto.createHash('md5').update(single).digest('hex'),
    });
  });

  it('fails with ConfigError when a named credentials variable is not set on the worker', () => {
    const cfg = S3SourceSchema.parse({
      kind: 's3',
      bucket: 'b-x',
      accessKeyIdEnv: 'PV_UNSET_KEY',
      secretAccessKeyEnv: 'PV_UNSET_SECRET',
    });
    assert.throws(
      () => new S3Source(cfg, {}),
      (e) => typed('ConfigError')(e) && /PV_UNSET_KEY/.test((e as Error).message),
    );
  });

  it('refuses a secret written into the source config, and a prefix that is not a directory', () => {
    assert.equal(
      S3SourceSchema.safeParse({ kind: 's3', bucket: 'b-x', secretAccessKey: 'do-not-store-me' }).success,
      false,
    );
    assert.equal(S3SourceSchema.safeParse({ kind: 's3', bucket: 'b-x', prefix: 'no-trailing-slash' }).success, false);
    assert.equal(S3SourceSchema.safeParse({ kind: 's3', bucket: 'b-x', prefix: '/absolute/' }).success, false);
  });

  it('reports an endpoint nothing answers on as SourceUnavailableError, which is retryable', async (t) => {
    const m = serverOr(t, minio);
    if (!m) return;
    await assert.rejects(
      mirror(s3Source(m, 'x/', { endpoint: `http://127.0.0.1:${await freePort()}` })),
      typed('SourceUnavailableError', true),
    );
  });
});

// ---- HTTP ---------------------------------------------------------------------------------------

describe('HTTP source on a loopback server', () => {
  it('mirrors URLs under their file names or given paths, with Last-Modified as mtime', async () => {
    const r = await mirror(
      httpSource([
        `${base}/files/weights.bin`,
        `${base}/files/n%C3%A4me%20with%20space.txt`,
        `${base}/files/empty.txt?download=1`,
        { url: `${base}/files/config.json`, path: 'model/config.json' },
      ]),
    );
    assert.deepEqual(
      readTree(r.dir),
      new Map([
        ['empty.txt', WEB_FILES['/files/empty.txt']!],
        ['model/config.json', WEB_FILES['/files/config.json']!],
        ['näme with space.txt', WEB_FILES['/files/n%C3%A4me%20with%20space.txt']!],
        ['weights.bin', WEB_FILES['/files/weights.bin']!],
      ]),
    );
    assert.equal(mtimeOf(path.join(r.dir, 'weights.bin')), LAST_MODIFIED.getTime());
    assert.equal(mtimeOf(path.join(r.dir, 'model', 'config.json')), LAST_MODIFIED.getTime());
  });

  it('does not fetch a file again that is already in place with its size and mtime', async () => {
    const url = `${base}/files/weights.bin`;
    const first = await mirror(httpSource([url]));
    const before = gets.get('/files/weights.bin');
    const again = await mirror(httpSource([url]), first.dir);
    assert.equal(again.downloaded, 0);
    assert.equal(gets.get('/files/weights.bin'), before, 'no second GET');
  });

  it('fetches where HEAD is refused (a pre-signed URL), taking size and mtime from the GET', async () => {
    const r = await mirror(httpSource([`${base}/presigned/model.bin`]));
    assert.deepEqual(readTree(r.dir), new Map([['model.bin', WEB_FILES['/presigned/model.bin']!]]));
    assert.equal(mtimeOf(path.join(r.dir, 'model.bin')), LAST_MODIFIED.getTime());
  });

  it('sends the Authorization header from the variable authorizationEnv names, and says so when it is unset', async () => {
    const url = `${base}/private/token.bin`;
    await assert.rejects(mirror(httpSource([url])), typed('SourceAccessDeniedError', false));
    const r = await mirror(httpSource([url], { authorizationEnv: 'PV_TEST_AUTH' }, { PV_TEST_AUTH: 'Bearer t0ken' }));
    assert.equal(r.files, 1);
    assert.throws(() => httpSource([url], { authorizationEnv: 'PV_TEST_AUTH_UNSET' }, {}), typed('ConfigError'));
  });

  it('maps 404 and 410 to SourceNotFoundError, 403 to SourceAccessDeniedError and 400 to UnsupportedSourceError, none retryable', async () => {
    await assert.rejects(
      mirror(httpSource([`${base}/files/weights.bin`, `${base}/no-such-file.bin`])),
      typed('SourceNotFoundError', false),
    );
    await assert.rejects(mirror(httpSource([`${base}/gone.bin`])), typed('SourceNotFoundError', false));
    await assert.rejects(mirror(httpSource([`${base}/denied.bin`])), typed('SourceAccessDeniedError', false));
    await assert.rejects(mirror(httpSource([`${base}/bad-request.bin`])), typed('UnsupportedSourceError', false));
  });

  it('maps 5xx and an unreachable server to SourceUnavailableError, which is retryable', async () => {
    await assert.rejects(mirror(httpSource([`${base}/busy.bin`])), typed('SourceUnavailableError', true));
    await assert.rejects(
      mirror(httpSource([`http://127.0.0.1:${await freePort()}/x.bin`])),
      typed('SourceUnavailableError', true),
    );
  });

  it('reports a transfer cut short of its Content-Length as retryable SourceUnavailableError, leaving no partial file', async () => {
    const into = path.join(tmpDir('pv-mirror-'), 'mirror');
    await assert.rejects(mirror(httpSource([`${base}/cut.bin`]), into), typed('SourceUnavailableError', true));
    assert.equal(fs.existsSync(path.join(into, 'cut.bin')), false);
    assert.deepEqual(fs.readdirSync(path.join(`${into}.work`, 'tmp')), []);
  });

  it('refuses content-encoded bytes as UnsupportedSourceError rather than archive other bytes than the file', async () => {
    await assert.rejects(mirror(httpSource([`${base}/gzip.bin`])), typed('UnsupportedSourceError', false));
  });

  it('refuses a URL with no file name and a target path with ".." as InvalidFileNameError', () => {
    assert.throws(() => httpSource([`${base}/`]), typed('InvalidFileNameError', false));
    assert.throws(() => httpSource([`${base}/dir/`]), typed('InvalidFileNameError', false));
    assert.throws(
      () => httpSource([{ url: `${base}/files/config.json`, path: '../escape.json' }]),
      typed('InvalidFileNameError', false),
    );
  });

  it('refuses two URLs for one path, and a path that is both a file and a directory, as PathConflictError, before any request', () => {
    const before = [...gets.values()].reduce((a, b) => a + b, 0);
    assert.throws(
      () => httpSource([`${base}/files/config.json`, `${base}/other/config.json`]),
      typed('PathConflictError', false),
    );
    assert.throws(
      () =>
        httpSource([
          { url: `${base}/files/config.json`, path: 'model' },
          { url: `${base}/files/empty.txt`, path: 'model/empty.txt' },
        ]),
      typed('PathConflictError', false),
    );
    assert.equal(
      [...gets.values()].reduce((a, b) => a + b, 0),
      before,
    );
  });

  it('refuses URLs with a password or another scheme in the config', () => {
    assert.equal(
      HttpSourceSchema.safeParse({ kind: 'http', urls: ['https://user:secret@example.com/a.bin'] }).success,
      false,
    );
    assert.equal(HttpSourceSchema.safeParse({ kind: 'http', urls: ['ftp://example.com/a.bin'] }).success, false);
    assert.equal(HttpSourceSchema.safeParse({ kind: 'http', urls: [] }).success, false);
  });
});

// ---- the mirror's own rules ---------------------------------------------------------------------

describe('mirrorSource', () => {
  for (const bad of ['../escape', 'a/../../escape', 'a//b', './a', 'a/.', 'a\\b', `${'n'.repeat(256)}`, '/abs']) {
    it(`refuses the key ${JSON.stringify(bad.length > 40 ? `${bad.slice(0, 10)}…` : bad)} as InvalidFileNameError, writing nothing outside the mirror`, async () => {
      const source = fake(['a.txt', bad].sort());
      const into = path.join(tmpDir('pv-mirror-'), 'mirror');
      await assert.rejects(mirror(source, into), typed('InvalidFileNameError', false));
      assert.ok(!fs.existsSync(path.join(into, '..', 'escape')));
    });
  }

  it('finds a key that is both a file and a directory prefix, with other keys sorting between them', async () => {
    await assert.rejects(mirror(fake(['a', 'a-b', 'a.c', 'a/b'])), typed('PathConflictError', false));
    await assert.rejects(mirror(fake(['x/y', 'x/y/z'])), typed('PathConflictError', false));
    const ok = await mirror(fake(['a', 'a-b', 'a.c', 'ab/c']));
    assert.equal(ok.files, 4);
  });

  it('refuses a listing out of key order as UnsupportedSourceError (path conflicts could not be found)', async () => {
    await assert.rejects(mirror(fake(['b', 'a'])), typed('UnsupportedSourceError', false));
  });

  it('fails with IntegrityError when the bytes do not match the MD5 the source states', async () => {
    const body = Buffer.from('the bytes');
    const good = crypto.createHash('md5').update(body).digest('hex');
    const ok = await mirror(new FakeSource([{ path: 'f', ref: 'fake:f', size: body.length, body, md5: good }]));
    assert.equal(ok.files, 1);
    const bad = new FakeSource([
      {
        path: 'f',
        ref: 'fake:f',
        size: body.length,
        body,
        md5: crypto.createHash('md5').update('other').digest('hex'),
      },
    ]);
    await assert.rejects(mirror(bad), typed('IntegrityError', false));
  });

  it('streams each object to disk as it arrives, never holding it whole', async () => {
    const into = path.join(tmpDir('pv-mirror-'), 'mirror');
    const chunks = 48;
    let maxLag = 0;
    const tmp = path.join(`${into}.work`, 'tmp');
    const body = async function* () {
      for (let i = 0; i < chunks; i++) {
        const onDisk = fs.readdirSync(tmp).reduce((n, f) => n + fs.statSync(path.join(tmp, f)).size, 0);
        maxLag = Math.max(maxLag, i * MiB - onDisk);
        yield Buffer.alloc(MiB, i);
      }
    };
    const r = await mirror(new FakeSource([{ path: 'big.bin', ref: 'fake:big', size: chunks * MiB, body }]), into);
    assert.equal(r.bytes, chunks * MiB);
    assert.ok(maxLag <= 4 * MiB, `bytes produced but not yet on disk stayed small (max ${maxLag})`);
  });
});
