/**
 * The remote scan on a real MinIO: an S3 prefix listed into the same depth-first listing the
 * local scan writes for the same tree (the pack then streams each object), through the external
 * merge sort with runs lowered to a few entries, so the merge of many runs is exercised.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { S3Source } from '../../../activities/ingest/s3.js';
import { scanRemote, treeKey } from '../../../activities/ingest/remote-scan.js';
import { scanLocal, type ListingLine } from '../../../activities/ingest/scan.js';
import { S3SourceSchema } from '../../../config/schema.js';
import { tmpDir, writeTree } from '../../helpers/env.js';
import { MinioServer, serverOr, type Started } from '../../helpers/servers.js';

/** Names around '/': '-', '.', ' ' and '0' sort below and above it, so key order and tree order differ. */
const TREE: Record<string, string> = {
  'a/y.txt': 'y',
  'a-1/x.txt': 'x',
  'a.txt': 'file a.txt',
  a0: 'file a0',
  'a b/c/d.txt': 'deep',
  'a/b/c.txt': 'c',
  'a/b-c.txt': 'b-c',
  'z/ünï/名前.txt': 'unicode',
  'empty.bin': '',
};

let minio: Started<MinioServer> | undefined;
let bucket = '';
const work = tmpDir('pv-remote-scan-');

before(async () => {
  minio = await MinioServer.start();
  if (!minio.ok) return;
  bucket = await minio.server.createBucket();
  const c = minio.server.client();
  for (const [key, body] of Object.entries(TREE))
    await c.send(new PutObjectCommand({ Bucket: bucket, Key: `ds/${key}`, Body: Buffer.from(body) }));
  c.destroy();
});
after(async () => {
  if (minio?.ok) await minio.server.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

const lines = (file: string) =>
  fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ListingLine);

describe('remote scan', () => {
  it('orders paths depth-first: "/" sorts below every byte', () => {
    const sorted = ['a-1/x', 'a/y', 'a0', 'a/b/c', 'a.txt'].sort((x, y) => Buffer.compare(treeKey(x), treeKey(y)));
    assert.deepEqual(sorted, ['a/b/c', 'a/y', 'a-1/x', 'a.txt', 'a0']);
  });

  for (const runEntries of [2, 1000]) {
    it(`lists an S3 prefix as the local scan lists the same tree (runs of ${runEntries})`, async (t) => {
      const m = serverOr(t, minio);
      if (!m) return;
      const env = { K: m.accessKeyId, S: m.secretAccessKey };
      const cfg = S3SourceSchema.parse({
        kind: 's3',
        bucket,
        prefix: 'ds/',
        endpoint: m.endpoint,
        forcePathStyle: true,
        accessKeyIdEnv: 'K',
        secretAccessKeyEnv: 'S',
      });
      const source = new S3Source(cfg, env);
      const remoteListing = path.join(work, `remote-${runEntries}.ndjson`);
      const r = await scanRemote(source, remoteListing, { runEntries }).finally(() => source.close());
      const tree = path.join(work, 'tree');
      writeTree(tree, TREE);
      const localListing = path.join(work, `local-${runEntries}.ndjson`);
      const l = await scanLocal(tree, localListing);

      assert.equal(r.files, l.files);
      assert.equal(r.dirs, l.dirs);
      assert.equal(r.bytes, l.bytes);
      // Same events in the same order; a file's src is its key (and its ETag follows) instead of a path.
      const remote = lines(remoteListing);
      const local = lines(localListing);
      assert.deepEqual(
        remote.map((e) => (e[0] === 'F' ? ['F', e[1], e[2]] : e)),
        local.map((e) => (e[0] === 'F' ? ['F', e[1], e[2]] : e)),
      );
      for (const e of remote)
        if (e[0] === 'F') {
          assert.match(e[4], /^ds\//, 'src is the object key');
          assert.ok(e[5], 'the listed ETag is kept');
        }
      assert.ok(!fs.existsSync(`${remoteListing}.runs`), 'sorted runs are removed');
    });
  }
});
