/**
 * An S3 bucket (AWS, MinIO or any S3-compatible store) as a storage provider.
 *
 * Layout under `<prefix>`:
 *   pieces/<pieceCid>.car   the CAR bytes; user metadata piececid, carcid, rootcid, bytes
 *   roots/<rootCid>         a pointer object whose body is the piece CID (for `locate`)
 *
 * Writes stream through a multipart Upload (lib-storage) while the bytes are hashed; when the
 * hash or length does not match the piece, the stream fails before the upload completes, so S3
 * never makes the object visible (multipart parts are aborted). The SDK's own retries are off:
 * Temporal retries. Credentials come from environment variables named in the config, read
 * once when the provider is built, so secrets never enter config that reaches a workflow.
 */
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, PutObjectCommand, S3Client,
  type HeadObjectCommandOutput, type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { S3ProviderConfig } from '../../config/schema.js';
import {
  BucketNotFoundError, ConfigError, IntegrityError, isNetworkError, PieceNotFoundError, ProviderAuthError,
  ProviderUnavailableError, ProvenantError, StoreError,
} from '../errors.js';
import { carCidFromSha256 } from '../pack/cids.js';
import type { CallOptions, PieceRef, Placement, ReplicaStatus, StorageProvider } from './provider.js';

const SAFE_CID = /^[a-z0-9]+$/;
/** The S3 protocol's default region (MinIO's too), used when the config names none. */
const S3_DEFAULT_REGION = 'us-east-1';
/** S3 allows at most 10,000 parts per multipart upload. */
const MAX_PARTS = 10_000;

/** Where the SDK error came from, in the words of the error hierarchy. */
type Op = 'put' | 'read' | 'status' | 'locate' | 'delete';

export class S3Provider implements StorageProvider {
  readonly kind = 's3';
  readonly id: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly partBytes: number;

  constructor(cfg: S3ProviderConfig, env: NodeJS.ProcessEnv = process.env) {
    this.id = cfg.id;
    this.bucket = cfg.bucket;
    this.prefix = cfg.prefix;
    this.partBytes = cfg.partBytes;
    const options: S3ClientConfig = {
      region: cfg.region ?? S3_DEFAULT_REGION,
      endpoint: cfg.endpoint,
      forcePathStyle: cfg.forcePathStyle,
      maxAttempts: 1,
      requestHandler: { connectionTimeout: cfg.connectTimeoutMs },
    };
    if (cfg.accessKeyIdEnv && cfg.secretAccessKeyEnv) {
      const fields = { accessKeyIdEnv: cfg.accessKeyIdEnv, secretAccessKeyEnv: cfg.secretAccessKeyEnv, sessionTokenEnv: cfg.sessionTokenEnv };
      const missing = Object.entries(fields).filter((f): f is [string, string] => !!f[1] && !env[f[1]]);
      if (missing.length > 0) {
        throw new ConfigError(
          `provider '${cfg.id}': credentials environment variable(s) not set: ${missing.map(([, n]) => n).join(', ')}`,
          missing.map(([field, n]) => ({ path: `providers.${cfg.id}.${field}`, message: `environment variable ${n} is not set` })),
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

  private pieceKey(pieceCid: string): string {
    if (!SAFE_CID.test(pieceCid)) throw new PieceNotFoundError(`not a piece CID [provider=${this.id}, piece=${pieceCid}]`);
    return `${this.prefix}pieces/${pieceCid}.car`;
  }

  private rootKey(rootCid: string): string {
    return `${this.prefix}roots/${rootCid}`;
  }

  private where(key: string): string {
    return `[provider=${this.id}, bucket=${this.bucket}, key=${key}]`;
  }

  /** HEAD the piece; undefined when absent (after making sure the bucket itself exists). */
  private async head(key: string, o: CallOptions, op: Op): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: o.signal });
    } catch (err) {
      if (httpStatus(err) !== 404) throw this.typed(err, key, op);
    }
    // HEAD answers 404 without a body for a missing bucket too: tell the two apart.
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: o.signal });
    } catch (err) {
      if (httpStatus(err) === 404) throw new BucketNotFoundError(`bucket does not exist ${this.where(key)}`, { cause: err });
      throw this.typed(err, key, op);
    }
    return undefined;
  }

  async put(piece: PieceRef, open: () => Readable, o: CallOptions = {}): Promise<Placement> {
    const key = this.pieceKey(piece.pieceCid);
    const existing = await this.head(key, o, 'put');
    if (existing && existing.ContentLength === piece.bytes && existing.Metadata?.carcid === piece.carCid) {
      await this.pointRoot(piece, o);
      return { providerId: this.id, pieceCid: piece.pieceCid, existed: true, storedAt: (existing.LastModified ?? new Date()).toISOString() };
    }

    const hash = crypto.createHash('sha256');
    let bytes = 0;
    let mismatch: IntegrityError | undefined;
    const where = this.where(key);
    const body = Readable.from(
      (async function* () {
        for await (const chunk of open() as AsyncIterable<Buffer>) {
          hash.update(chunk);
          bytes += chunk.length;
          yield chunk;
        }
        const got = carCidFromSha256(hash.digest());
        if (got !== piece.carCid || bytes !== piece.bytes) {
          // Thrown before the last part is handed over, so the upload never completes.
          mismatch = new IntegrityError(`bytes sent do not match the shard ${where}: expected ${piece.carCid}/${piece.bytes}, got ${got}/${bytes}`);
          throw mismatch;
        }
      })(),
    );
    const upload = new Upload({
      client: this.client,
      params: {
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentType: 'application/vnd.ipld.car',
        Metadata: { piececid: piece.pieceCid, carcid: piece.carCid, rootcid: piece.rootCid, bytes: String(piece.bytes) },
      },
      partSize: Math.max(this.partBytes, Math.ceil(piece.bytes / MAX_PARTS)),
      queueSize: 4,
      leavePartsOnError: false,
    });
    const onAbort = () => void upload.abort().catch(() => {});
    o.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await upload.done();
    } catch (err) {
      if (mismatch) throw mismatch;
      body.destroy();
      throw this.typed(err, key, 'put');
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
    }
    await this.pointRoot(piece, o);
    return { providerId: this.id, pieceCid: piece.pieceCid, existed: false, storedAt: new Date().toISOString() };
  }

  /** Write the roots/<rootCid> pointer unless it already points at this piece. */
  private async pointRoot(piece: PieceRef, o: CallOptions): Promise<void> {
    const key = this.rootKey(piece.rootCid);
    if ((await this.readPointer(key, o, 'put')) === piece.pieceCid) return;
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: piece.pieceCid, ContentType: 'text/plain' }),
        { abortSignal: o.signal },
      );
    } catch (err) {
      throw this.typed(err, key, 'put');
    }
  }

  private async readPointer(key: string, o: CallOptions, op: Op): Promise<string | undefined> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: o.signal });
      return (await r.Body!.transformToString()).trim();
    } catch (err) {
      if (errorName(err) === 'NoSuchKey') return undefined;
      throw this.typed(err, key, op);
    }
  }

  async status(piece: Pick<PieceRef, 'pieceCid'>, o: CallOptions = {}): Promise<ReplicaStatus> {
    const h = await this.head(this.pieceKey(piece.pieceCid), o, 'status');
    return { providerId: this.id, pieceCid: piece.pieceCid, present: !!h, bytes: h?.ContentLength };
  }

  readRange(piece: Pick<PieceRef, 'pieceCid'>, offset: number, length: number | undefined, o: CallOptions = {}): Readable {
    if (length === 0) return Readable.from([]);
    const key = this.pieceKey(piece.pieceCid);
    const range = length === undefined ? (offset > 0 ? `bytes=${offset}-` : undefined) : `bytes=${offset}-${offset + length - 1}`;
    const self = this;
    return Readable.from(
      (async function* () {
        let body: AsyncIterable<Uint8Array>;
        try {
          const r = await self.client.send(new GetObjectCommand({ Bucket: self.bucket, Key: key, Range: range }), { abortSignal: o.signal });
          body = r.Body as AsyncIterable<Uint8Array>;
        } catch (err) {
          if (errorName(err) === 'InvalidRange') return; // offset at or past the end: nothing to read
          throw self.typed(err, key, 'read');
        }
        try {
          for await (const chunk of body) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        } catch (err) {
          throw self.typed(err, key, 'read');
        }
      })(),
      { objectMode: false },
    );
  }

  async locate(rootCid: string, o: CallOptions = {}): Promise<PieceRef | undefined> {
    if (!SAFE_CID.test(rootCid)) return undefined;
    const pieceCid = await this.readPointer(this.rootKey(rootCid), o, 'locate');
    if (!pieceCid || !SAFE_CID.test(pieceCid)) return undefined;
    const h = await this.head(this.pieceKey(pieceCid), o, 'locate');
    const m = h?.Metadata;
    if (!h || !m?.carcid || !m.rootcid) return undefined;
    return { pieceCid, carCid: m.carcid, rootCid: m.rootcid, bytes: Number(m.bytes ?? h.ContentLength) };
  }

  async delete(piece: Pick<PieceRef, 'pieceCid'>, o: CallOptions = {}): Promise<void> {
    const key = this.pieceKey(piece.pieceCid);
    const h = await this.head(key, o, 'delete');
    if (!h) return;
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }), { abortSignal: o.signal });
      const rootCid = h.Metadata?.rootcid;
      if (rootCid && SAFE_CID.test(rootCid) && (await this.readPointer(this.rootKey(rootCid), o, 'delete')) === piece.pieceCid) {
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.rootKey(rootCid) }), { abortSignal: o.signal });
      }
    } catch (err) {
      throw this.typed(err, key, 'delete');
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** Map an SDK or network error onto the error hierarchy, keeping it as the cause. */
  private typed(err: unknown, key: string, op: Op): ProvenantError {
    if (ProvenantError.is(err)) return err;
    const name = errorName(err);
    const status = httpStatus(err);
    const where = this.where(key);
    const message = (err as Error)?.message ?? String(err);
    const why = [status && `HTTP ${status}`, name && name !== 'Unknown' && name !== 'Error' && name, message !== 'UnknownError' && message]
      .filter(Boolean)
      .join(': ');
    if (name === 'NoSuchBucket') return new BucketNotFoundError(`bucket does not exist ${where}`, { cause: err });
    if (name === 'NoSuchKey') return new PieceNotFoundError(`piece not stored ${where}`, { cause: err });
    if (
      status === 401 || status === 403 ||
      ['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidToken', 'ExpiredToken', 'CredentialsProviderError'].includes(name ?? '')
    ) {
      return new ProviderAuthError(`credentials rejected or access denied ${where}: ${why}`, { cause: err });
    }
    if ((status === undefined && isNetworkError(err)) || (status !== undefined && (status >= 500 || status === 429)) || name === 'SlowDown') {
      return new ProviderUnavailableError(`S3 endpoint unavailable ${where}: ${why}`, { cause: err });
    }
    if (op === 'read' || op === 'locate' || op === 'status') return new ProviderUnavailableError(`${op} failed ${where}: ${why}`, { cause: err });
    return new StoreError(`${op} failed ${where}: ${why}`, { cause: err });
  }
}

function errorName(err: unknown): string | undefined {
  return (err as { name?: string } | undefined)?.name;
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}
