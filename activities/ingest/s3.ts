/**
 * An S3 prefix (AWS, MinIO, any S3-compatible store) as a Source. ListObjectsV2 pages give every
 * key under the prefix, in UTF-8 byte order, with its size, LastModified and ETag; GetObject is
 * pinned to the listed ETag (If-Match), so a changed object fails with SourceChangedError instead
 * of mixing versions. The SDK's own retries are off: Temporal retries. Credentials come from the
 * environment variables the source config names, read when the source is built.
 */
import type { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import type { S3SourceConfig } from '../../config/schema.js';
import {
  BucketNotFoundError, ConfigError, isNetworkError, ProvenantError, SourceAccessDeniedError, SourceChangedError,
  SourceUnavailableError, UnsupportedSourceError,
} from '../errors.js';
import type { OpenedEntry, Source, SourceEntry } from './sources.js';

/** The S3 protocol's default region (MinIO's too), used when the config names none. */
const S3_DEFAULT_REGION = 'us-east-1';
/** An ETag that is the MD5 of the bytes: a single-part upload (multipart ETags end in `-<parts>`). */
const MD5_ETAG = /^"?([0-9a-fA-F]{32})"?$/;
const AUTH_ERRORS = ['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidToken', 'ExpiredToken', 'CredentialsProviderError'];

export class S3Source implements Source {
  readonly uri: string;
  private readonly client: S3Client;

  constructor(private readonly cfg: S3SourceConfig, env: NodeJS.ProcessEnv = process.env) {
    this.uri = `s3://${cfg.bucket}/${cfg.prefix}`;
    const options: S3ClientConfig = {
      region: cfg.region ?? S3_DEFAULT_REGION,
      endpoint: cfg.endpoint,
      forcePathStyle: cfg.forcePathStyle,
      maxAttempts: 1,
    };
    if (cfg.accessKeyIdEnv && cfg.secretAccessKeyEnv) {
      const fields = { accessKeyIdEnv: cfg.accessKeyIdEnv, secretAccessKeyEnv: cfg.secretAccessKeyEnv, sessionTokenEnv: cfg.sessionTokenEnv };
      const missing = Object.entries(fields).filter((f): f is [string, string] => !!f[1] && !env[f[1]]);
      if (missing.length > 0) {
        throw new ConfigError(
          `source ${this.uri}: credentials environment variable(s) not set on this worker: ${missing.map(([, n]) => n).join(', ')}`,
          missing.map(([field, n]) => ({ path: `source.${field}`, message: `environment variable ${n} is not set` })),
        );
      }
      options.credentials = {
        accessKeyId: env[cfg.accessKeyIdEnv]!,
        secretAccessKey: env[cfg.secretAccessKeyEnv]!,
        sessionToken: cfg.sessionTokenEnv ? env[cfg.sessionTokenEnv] : undefined,
      };
    }
    this.client = new S3Client(options);
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
        yield { path: key.slice(prefix.length), ref: key, size: o.Size, mtimeMs: o.LastModified?.getTime(), etag: o.ETag };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async open(entry: SourceEntry, signal?: AbortSignal): Promise<OpenedEntry> {
    let r;
    try {
      r = await this.client.send(new GetObjectCommand({ Bucket: this.cfg.bucket, Key: entry.ref, IfMatch: entry.etag }), { abortSignal: signal });
    } catch (err) {
      throw this.typed(err, entry.ref);
    }
    // Under SSE-KMS or SSE-C the ETag is not the MD5 of the plaintext.
    const encrypted = !!r.SSECustomerAlgorithm || (r.ServerSideEncryption ?? '').startsWith('aws:kms');
    const md5 = encrypted ? undefined : MD5_ETAG.exec(r.ETag ?? '')?.[1]?.toLowerCase();
    return { body: r.Body as Readable, size: r.ContentLength, mtimeMs: r.LastModified?.getTime(), ...(md5 ? { md5 } : {}) };
  }

  close(): void {
    this.client.destroy();
  }

  /** Map an SDK or network error onto the error hierarchy, keeping it as the cause. */
  private typed(err: unknown, key: string): unknown {
    if (ProvenantError.is(err) || (err as Error)?.name === 'AbortError') return err;
    const name = (err as { name?: string } | undefined)?.name ?? '';
    const status = (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
    const where = `[bucket=${this.cfg.bucket}, key=${key}]`;
    const why = [status && `HTTP ${status}`, name, (err as Error)?.message].filter(Boolean).join(': ');
    if (name === 'NoSuchBucket') return new BucketNotFoundError(`source bucket does not exist ${where}`, { cause: err });
    if (status === 401 || status === 403 || AUTH_ERRORS.includes(name)) {
      return new SourceAccessDeniedError(`credentials rejected or access denied ${where}: ${why}`, { cause: err });
    }
    if (name === 'NoSuchKey' || name === 'PreconditionFailed' || status === 404 || status === 412) {
      return new SourceChangedError(`object changed or deleted since it was listed ${where}: ${why}`, { cause: err });
    }
    if (status !== undefined && status >= 300 && status < 500 && status !== 408 && status !== 429) {
      return new UnsupportedSourceError(`S3 refused the request ${where}: ${why}`, { cause: err });
    }
    if (status === undefined && !isNetworkError(err)) return err;
    return new SourceUnavailableError(`S3 endpoint unavailable ${where}: ${why}`, { cause: err });
  }
}
