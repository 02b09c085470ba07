/** S3 provider on a real MinIO: multipart uploads, and every fault as a typed error. */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { ConfigError } from '../../../activities/errors.js';
import { createProvider } from '../../../activities/providers/registry.js';
import { S3Provider } from '../../../activities/providers/s3.js';
import { ProviderSchema, S3ProviderSchema } from '../../../config/schema.js';
import { bytesOf, tmpDir } from '../../helpers/env.js';
import { freePort, MinioServer, serverOr, type Started } from '../../helpers/servers.js';
import { collect, piece, s3Provider } from './fixtures.js';

const MiB = 1024 * 1024;
const named = (name: string) => (e: unknown) => e instanceof Error && e.name === name;

let minio: Started<MinioServer> | undefined;
let bucket = '';
before(async () => {
  minio = await MinioServer.start();
  if (minio.ok) bucket = await minio.server.createBucket();
});
after(async () => {
  if (minio?.ok) await minio.server.stop();
});

/** The running server, or skip the test with the reason it is missing. */
function server(t: { skip(m: string): void }): MinioServer | undefined {
  return serverOr(t, minio);
}

describe('s3 provider on MinIO', () => {
  it('uploads a piece larger than a part in several parts and reads it back exactly', async (t) => {
    const m = server(t);
    if (!m) return;
    const p = s3Provider(m, { bucket, prefix: 'multipart/', partBytes: 5 * MiB });
    const bytes = bytesOf(12 * MiB + 7, 'multipart');
    const ref = piece(bytes);
    const chunks = Array.from({ length: Math.ceil(bytes.length / (256 * 1024)) }, (_, i) =>
      bytes.subarray(i * 256 * 1024, (i + 1) * 256 * 1024),
    );
    await p.put(ref, () => Readable.from(chunks));
    const c = m.client();
    const head = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: `multipart/pieces/${ref.pieceCid}.car` }));
    c.destroy();
    assert.match(head.ETag ?? '', /-3"$/, 'a multipart ETag names its 3 parts');
    assert.deepEqual(head.Metadata, {
      piececid: ref.pieceCid,
      carcid: ref.carCid,
      rootcid: ref.rootCid,
      bytes: String(ref.bytes),
    });
    assert.ok((await collect(p.readRange(ref))).equals(bytes));
    assert.ok(
      (await collect(p.readRange(ref, { offset: 5 * MiB - 3, length: 10 }))).equals(
        bytes.subarray(5 * MiB - 3, 5 * MiB + 7),
      ),
    );
    await p.close();
  });

  it('aborts a multipart upload whose bytes do not match, leaving no object and no parts', async (t) => {
    const m = server(t);
    if (!m) return;
    const prefix = `abort-${crypto.randomBytes(3).toString('hex')}/`;
    const p = s3Provider(m, { bucket, prefix, partBytes: 5 * MiB });
    const bytes = bytesOf(11 * MiB, 'abort');
    const ref = piece(bytes);
    const wrong = Buffer.from(bytes);
    wrong[wrong.length - 1]! ^= 1; // the last byte: every part but the last is already uploaded
    await assert.rejects(
      p.put(ref, () => Readable.from([wrong])),
      named('IntegrityError'),
    );
    assert.equal((await p.status(ref)).present, false);
    const c = m.client();
    const objects = await c.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const uploads = await c.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    c.destroy();
    assert.equal(objects.KeyCount ?? 0, 0);
    assert.equal(uploads.Uploads?.length ?? 0, 0);
    await p.close();
  });

  it('reads a staged piece from its local file, checking its bytes as they are sent', async (t) => {
    const m = server(t);
    if (!m) return;
    const prefix = `local-${crypto.randomBytes(3).toString('hex')}/`;
    const p = s3Provider(m, { bucket, prefix, partBytes: 5 * MiB });
    const bytes = bytesOf(11 * MiB + 3, 'local-file');
    const ref = piece(bytes);
    const dir = tmpDir('pv-s3-local-');
    const file = path.join(dir, 'shard.car');
    fs.writeFileSync(file, bytes);
    const unused = (): Readable => {
      throw new Error('open() must not be called when the local file is given');
    };
    await p.put(ref, unused, { localFile: file });
    assert.ok((await collect(p.readRange(ref))).equals(bytes));
    // A staged file that changed since the pack: nothing is kept, no parts are left.
    const other = piece(bytesOf(11 * MiB + 3, 'other'));
    await assert.rejects(p.put(other, unused, { localFile: file }), named('IntegrityError'));
    assert.equal((await p.status(other)).present, false);
    const c = m.client();
    const uploads = await c.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    c.destroy();
    assert.equal(uploads.Uploads?.length ?? 0, 0);
    await p.close();
  });

  it('is built from config with the credentials read from the environment variables it names', async (t) => {
    const m = server(t);
    if (!m) return;
    const env: NodeJS.ProcessEnv = {};
    const names = m.exportCredentials(env);
    const cfg = ProviderSchema.parse({
      kind: 's3',
      id: 'from-config',
      endpoint: m.endpoint,
      bucket,
      forcePathStyle: true,
      prefix: 'cfg/',
      ...names,
    });
    assert.ok(!JSON.stringify(cfg).includes(m.secretAccessKey), 'the config holds names, not secrets');
    const p = createProvider(cfg, env);
    assert.ok(p instanceof S3Provider);
    const bytes = bytesOf(1000, 'cfg');
    await p.put(piece(bytes), () => Readable.from([bytes]));
    assert.equal((await p.status(piece(bytes))).present, true);
    await p.close?.();
  });

  it('fails with ConfigError when a named credentials variable is not set', () => {
    const cfg = S3ProviderSchema.parse({
      kind: 's3',
      id: 'x',
      bucket: 'b-x',
      accessKeyIdEnv: 'PV_UNSET_KEY_ID',
      secretAccessKeyEnv: 'PV_UNSET_SECRET',
    });
    assert.throws(
      () => new S3Provider(cfg, {}),
      (e) => e instanceof ConfigError && /PV_UNSET_KEY_ID/.test(e.message),
    );
  });

  it('refuses a secret written into the config', () => {
    const r = S3ProviderSchema.safeParse({
      kind: 's3',
      id: 'x',
      bucket: 'b-x',
      accessKeyId: 'id',
      secretAccessKey: 'do-not-store-me',
    });
    assert.equal(r.success, false);
  });

  it('maps wrong credentials to ProviderAuthError, which is not retryable', async (t) => {
    const m = server(t);
    if (!m) return;
    const env = { PV_KEY: m.accessKeyId, PV_SECRET: `${m.secretAccessKey}x` };
    const p = new S3Provider(
      S3ProviderSchema.parse({
        kind: 's3',
        id: 'bad-creds',
        endpoint: m.endpoint,
        bucket,
        forcePathStyle: true,
        accessKeyIdEnv: 'PV_KEY',
        secretAccessKeyEnv: 'PV_SECRET',
      }),
      env,
    );
    const bytes = bytesOf(1000, 'creds');
    const ref = piece(bytes);
    const auth = (e: unknown) => named('ProviderAuthError')(e) && (e as { retryable: boolean }).retryable === false;
    await assert.rejects(
      p.put(ref, () => Readable.from([bytes])),
      auth,
    );
    await assert.rejects(p.status(ref), auth);
    await assert.rejects(collect(p.readRange(ref, { length: 10 })), auth);
    await assert.rejects(p.locate(ref.rootCid), auth);
    await p.close();
  });

  it('maps a missing bucket to BucketNotFoundError, also where S3 answers a bare 404', async (t) => {
    const m = server(t);
    if (!m) return;
    const p = s3Provider(m, { bucket: `missing-${crypto.randomBytes(4).toString('hex')}` });
    const bytes = bytesOf(1000, 'bucket');
    const ref = piece(bytes);
    await assert.rejects(
      p.put(ref, () => Readable.from([bytes])),
      named('BucketNotFoundError'),
    );
    await assert.rejects(p.status(ref), named('BucketNotFoundError'), 'HEAD: 404 without a body');
    await assert.rejects(collect(p.readRange(ref, { length: 10 })), named('BucketNotFoundError'));
    await assert.rejects(p.locate(ref.rootCid), named('BucketNotFoundError'));
    await p.close();
  });

  it('maps a stopped server to ProviderUnavailableError, which is retryable', async (t) => {
    if (!server(t)) return;
    const m = serverOr(t, await MinioServer.start());
    if (!m) return;
    const p = s3Provider(m, { bucket: await m.createBucket() });
    const bytes = bytesOf(1000, 'down');
    const ref = piece(bytes);
    await p.put(ref, () => Readable.from([bytes]));
    await m.stop();
    const down = (e: unknown) =>
      named('ProviderUnavailableError')(e) && (e as { retryable: boolean }).retryable === true;
    await assert.rejects(p.status(ref), down);
    await assert.rejects(collect(p.readRange(ref, { length: 10 })), down);
    await assert.rejects(p.locate(ref.rootCid), down);
    await assert.rejects(
      p.put(piece(bytesOf(10, 'x')), () => Readable.from([bytesOf(10, 'x')])),
      down,
    );
    await p.close();
  });

  it('maps an endpoint where nothing listens to ProviderUnavailableError', async () => {
    const endpoint = `http://127.0.0.1:${await freePort()}`;
    const env = { K: 'k', S: 's' };
    const p = new S3Provider(
      S3ProviderSchema.parse({
        kind: 's3',
        id: 'nobody',
        endpoint,
        bucket: 'nobody-home',
        accessKeyIdEnv: 'K',
        secretAccessKeyEnv: 'S',
      }),
      env,
    );
    await assert.rejects(p.status(piece(bytesOf(10, 'y'))), named('ProviderUnavailableError'));
    await p.close();
  });
});
