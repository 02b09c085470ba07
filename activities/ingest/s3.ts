/**
 * An S3 prefix (AWS, MinIO, any S3-compatible store) as a Source. ListObjectsV2 pages give every
 * key under the prefix, in UTF-8 byte order, with its size, LastModified and ETag; GetObject is
 * pinned to the listed ETag (If-Match), so a changed object fails with SourceChangedError instead
 * of mixing versions. The SDK's own retries are off: Temporal retries. Credentials come from the
 * environment variables the source config names, read when the source is built.
 */
import type { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { S3SourceConfig } from '../../config/schema.js';
import {
  BucketNotFoundError,
  isNetworkError,
  ProvenantError,
  SourceAccessDeniedError,
  SourceChangedError,
  SourceUnavailableError,
} from '../errors.js';
import { httpStatusError } from '../providers/kit/http-status.js';
import { createS3Client, s3ErrorInfo } from '../providers/kit/s3.js';
import type { ByteRange, OpenedEntry, Source, SourceEntry } from './sources.js';

/** An ETag that is the MD5 of the bytes: a single-part upload (multipart ETags end in `-<parts>`). */
const MD5_ETAG = /^"?([0-9a-fA-F]{32})"?$/;

export class S3Source implements Source {
  readonly uri: string;
  private readonly client: S3Client;

  constructor(
    private readonly cfg: S3SourceConfig,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.uri = `s3://${cfg.bucket}/${cfg.prefix}`;
    this.client = createS3Client(cfg, { path: 'source', env });
  }

  async *list(signal?: AbortSignal): AsyncIterable<SourceEntry> {
    const { bucket, prefix } = this.cfg;
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined, ContinuationToken: token }),
          { abortSignal: signal },
        );
      } catch (err) {
        throw this.typed(err, prefix);
      }
      for (const o of page.Contents ?? []) {
        const key = o.Key ?? '';
        // A zero-byte "folder" marker some tools create: directories are implied by the keys below them.
        if (key.endsWith('/') && !o.Size) continue;
        yield {
          path: key.slice(prefix.length),
          ref: key,
          size: o.Size,
          mtimeMs: o.LastModified?.getTime(),
          etag: o.ETag,
        };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async open(entry: SourceEntry, signal?: AbortSignal, range?: ByteRange): Promise<OpenedEntry> {
    let r;
    const bytes = range && range.length > 0 ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined;
    try {
      r = await this.client.send(
        new GetObjectCommand({ Bucket: this.cfg.bucket, Key: entry.ref, IfMatch: entry.etag, Range: bytes }),
        { abortSignal: signal },
      );
    } catch (err) {
      throw this.typed(err, entry.ref);
    }
    // Under SSE-KMS or SSE-C the ETag is not the MD5 of the plaintext.
    const encrypted = !!r.SSECustomerAlgorithm || (r.ServerSideEncryption ?? '').startsWith('aws:kms');
    const md5 = encrypted ? undefined : MD5_ETAG.exec(r.ETag ?? '')?.[1]?.toLowerCase();
    if (bytes) {
      // A range's body: the whole object's size is after the '/' of Content-Range; no MD5 for a part.
      const whole = /\/(\d+)$/.exec(r.ContentRange ?? '')?.[1];
      return {
        body: r.Body as Readable,
        mtimeMs: r.LastModified?.getTime(),
        ...(whole ? { size: Number(whole) } : {}),
      };
    }
    return {
      body: r.Body as Readable,
      size: r.ContentLength,
      mtimeMs: r.LastModified?.getTime(),
      ...(md5 ? { md5 } : {}),
    };
  }

  close(): void {
    this.client.destroy();
  }

  /**
   * Map an SDK or network error onto the error hierarchy, keeping it as the cause: S3's error
   * names first, then the kit's HTTP status rules. Every key read was listed, so a missing or
   * changed object (404, 412) is SourceChangedError: a retry lists again.
   */
  private typed(err: unknown, key: string): unknown {
    if (ProvenantError.is(err) || (err as Error)?.name === 'AbortError') return err;
    const { name, status, auth, why } = s3ErrorInfo(err);
    const where = `[bucket=${this.cfg.bucket}, key=${key}]`;
    if (name === 'NoSuchBucket')
      return new BucketNotFoundError(`source bucket does not exist ${where}`, { cause: err });
    if (auth)
      return new SourceAccessDeniedError(`credentials rejected or access denied ${where}: ${why}`, { cause: err });
    if (name === 'NoSuchKey' || name === 'PreconditionFailed' || status === 404 || status === 412) {
      return new SourceChangedError(`object changed or deleted since it was listed ${where}: ${why}`, { cause: err });
    }
    if (status !== undefined)
      return httpStatusError(status, { side: 'source', message: `S3 ${where}: ${why}`, cause: err });
    if (!isNetworkError(err)) return err;
    return new SourceUnavailableError(`S3 endpoint unavailable ${where}: ${why}`, { cause: err });
  }
}
