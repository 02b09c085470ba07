/**
 * An S3 bucket (AWS, MinIO or any S3-compatible store) as a storage provider.
 *
 * Layout under `<prefix>`:
 *   pieces/<pieceCid>.car   the CAR bytes; user metadata piececid, carcid, rootcid, bytes
 *   roots/<rootCid>         a pointer object whose body is the piece CID (for `locate`)
 *
 * Writes stream through a multipart upload of our own while the bytes are hashed; when the hash
 * or length does not match the piece, the stream fails before the upload completes, so S3 never
 * makes the object visible (the multipart upload is aborted). Bodies go UNSIGNED-PAYLOAD with a
 * CRC32 per part (see kit/s3.ts): one sha256 per byte, ours, instead of three. The SDK's own retries are off:
 * Temporal retries. Credentials come from environment variables named in the config, read
 * once when the provider is built, so secrets never enter config that reaches a workflow.
 */
import fsp from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { CompletedPart, HeadObjectCommandOutput, S3Client } from '@aws-sdk/client-s3';
import type { S3ProviderConfig } from '../../config/schema.js';
import {
  BucketNotFoundError,
  isNetworkError,
  PieceNotFoundError,
  ProviderAuthError,
  ProviderUnavailableError,
  ProvenantError,
} from '../errors.js';
import { httpStatusError, providerFailure, type ProviderOp as Op } from './kit/http-status.js';
import { createS3Client, s3ErrorInfo, s3Sdk } from './kit/s3.js';
import { verifiedStream } from './kit/verified-stream.js';
import type {
  CallOptions,
  PieceRef,
  Placement,
  PutOptions,
  ReplicaStatus,
  StorageProvider,
  RangeOptions,
} from './provider.js';

const SAFE_CID = /^[a-z0-9]+$/;
/** S3 allows at most 10,000 parts per multipart upload. */
const MAX_PARTS = 10_000;
/** Parts of one piece on the wire at once (one more is being filled meanwhile). */
const PUT_PARALLEL = 4;

/**
 * A local file's bytes through one reused 1 MiB buffer: each chunk must be consumed (hashed and
 * copied into a part) before the next is asked for, which the upload loop does. Reading this way
 * instead of through `open()` allocates nothing per chunk, so memory stays flat.
 */
async function* readFileChunks(file: string, signal?: AbortSignal): AsyncGenerator<Buffer> {
  const fh = await fsp.open(file, 'r');
  try {
    const buf = Buffer.allocUnsafeSlow(1 << 20);
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

export class S3Provider implements StorageProvider {
  readonly kind = 's3';
  readonly id: string;
  private readonly client: S3Client;
  /** The SDK's command classes (loaded with the first S3 provider: kit/s3.ts). */
  private readonly sdk = s3Sdk();
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly partBytes: number;

  constructor(cfg: S3ProviderConfig, env: NodeJS.ProcessEnv = process.env) {
    this.id = cfg.id;
    this.bucket = cfg.bucket;
    this.prefix = cfg.prefix;
    this.partBytes = cfg.partBytes;
    this.client = createS3Client(cfg, { path: `providers.${cfg.id}`, env, verifiesBytes: true });
  }

  private pieceKey(pieceCid: string): string {
    if (!SAFE_CID.test(pieceCid))
      throw new PieceNotFoundError(`not a piece CID [provider=${this.id}, piece=${pieceCid}]`);
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
      return await this.client.send(new this.sdk.HeadObjectCommand({ Bucket: this.bucket, Key: key }), {
        abortSignal: o.signal,
      });
    } catch (err) {
      if (s3ErrorInfo(err).status !== 404) throw this.typed(err, key, op);
    }
    // HEAD answers 404 without a body for a missing bucket too: tell the two apart.
    try {
      await this.client.send(new this.sdk.HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: o.signal });
    } catch (err) {
      if (s3ErrorInfo(err).status === 404)
        throw new BucketNotFoundError(`bucket does not exist ${this.where(key)}`, { cause: err });
      throw this.typed(err, key, op);
    }
    return undefined;
  }

  async put(piece: PieceRef, open: () => Readable, o: PutOptions = {}): Promise<Placement> {
    const key = this.pieceKey(piece.pieceCid);
    const existing = await this.head(key, o, 'put');
    if (existing && existing.ContentLength === piece.bytes && existing.Metadata?.carcid === piece.carCid) {
      await this.pointRoot(piece, o);
      return {
        providerId: this.id,
        pieceCid: piece.pieceCid,
        existed: true,
        storedAt: (existing.LastModified ?? new Date()).toISOString(),
      };
    }

    // The file reader goes in bare: a Readable around it would read ahead into the buffer it reuses.
    await this.upload(key, piece, o.localFile ? readFileChunks(o.localFile, o.signal) : open(), o);
    await this.pointRoot(piece, o);
    return { providerId: this.id, pieceCid: piece.pieceCid, existed: false, storedAt: new Date().toISOString() };
  }

  /**
   * Stream the CAR into `key` through a multipart upload of our own: the bytes pass the kit's
   * verified stream (CAR CID and length), are copied into one of a few reused part buffers, and
   * go out `PUT_PARALLEL` parts at a time, each with its CRC32 checked by the server. Memory is
   * bounded by (PUT_PARALLEL + 1) parts whatever the piece's size, with no buffer churn (lib-storage
   * concatenates a fresh buffer per part). The upload completes only once the stream has ended
   * and matched; on any failure it is aborted, so S3 never shows the object.
   */
  private async upload(key: string, piece: PieceRef, src: AsyncIterable<Uint8Array>, o: CallOptions): Promise<void> {
    const done = () => void (src as Partial<Readable>).destroy?.();
    const checked = verifiedStream(src, piece, { provider: this.id, piece: piece.pieceCid, what: 'bytes sent' });
    const partBytes = Math.max(this.partBytes, Math.ceil(piece.bytes / MAX_PARTS));
    const meta = {
      Bucket: this.bucket,
      Key: key,
      ContentType: 'application/vnd.ipld.car',
      Metadata: { piececid: piece.pieceCid, carcid: piece.carCid, rootcid: piece.rootCid, bytes: String(piece.bytes) },
    };
    const at = { abortSignal: o.signal };
    if (piece.bytes <= partBytes) {
      // One part's worth: a single PUT of the verified bytes (they are all read before it is sent).
      const chunks: Buffer[] = [];
      try {
        for await (const c of checked) chunks.push(Buffer.from(c));
      } finally {
        done();
      }
      try {
        await this.client.send(
          new this.sdk.PutObjectCommand({ ...meta, Body: Buffer.concat(chunks), ChecksumAlgorithm: 'CRC32' }),
          at,
        );
      } catch (err) {
        throw this.typed(err, key, 'put');
      }
      return;
    }
    let uploadId: string | undefined;
    const inFlight = new Set<Promise<void>>();
    const parts: CompletedPart[] = [];
    const free: Buffer[] = [];
    let failure: unknown;
    try {
      const created = await this.client.send(
        new this.sdk.CreateMultipartUploadCommand({ ...meta, ChecksumAlgorithm: 'CRC32' }),
        at,
      );
      uploadId = created.UploadId;
      const sendPart = (buf: Buffer, length: number, partNumber: number) => {
        const p: Promise<void> = this.client
          .send(
            new this.sdk.UploadPartCommand({
              Bucket: this.bucket,
              Key: key,
              UploadId: uploadId,
              PartNumber: partNumber,
              Body: buf.subarray(0, length),
              ContentLength: length,
              ChecksumAlgorithm: 'CRC32',
            }),
            at,
          )
          .then((r) => {
            parts.push({ PartNumber: partNumber, ETag: r.ETag, ChecksumCRC32: r.ChecksumCRC32 });
            free.push(buf);
          })
          .catch((err: unknown) => {
            failure ??= err;
          })
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
      };
      let buf: Buffer | undefined;
      let filled = 0;
      let partNumber = 0;
      for await (const chunk of checked) {
        for (let from = 0; from < chunk.length;) {
          if (failure) throw failure;
          if (!buf) {
            o.signal?.throwIfAborted();
            while (inFlight.size >= PUT_PARALLEL && !failure) await Promise.race(inFlight);
            if (failure) throw failure;
            buf = free.pop() ?? Buffer.allocUnsafeSlow(partBytes);
            filled = 0;
          }
          const n = Math.min(chunk.length - from, partBytes - filled);
          chunk.copy(buf, filled, from, from + n);
          filled += n;
          from += n;
          if (filled === partBytes) {
            sendPart(buf, filled, ++partNumber);
            buf = undefined;
          }
        }
      }
      // The stream has ended and matched the piece: the last bytes may go, then the whole.
      if (buf && filled > 0) sendPart(buf, filled, ++partNumber);
      await Promise.all(inFlight);
      if (failure) throw failure;
      parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
      await this.client.send(
        new this.sdk.CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: parts },
        }),
        at,
      );
      uploadId = undefined;
    } catch (err) {
      done();
      await Promise.allSettled(inFlight);
      if (uploadId) {
        await this.client
          .send(new this.sdk.AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }))
          .catch(() => {});
      }
      if (checked.failure) throw checked.failure;
      throw this.typed(err, key, 'put');
    }
  }

  /** Write the roots/<rootCid> pointer unless it already points at this piece. */
  private async pointRoot(piece: PieceRef, o: CallOptions): Promise<void> {
    const key = this.rootKey(piece.rootCid);
    if ((await this.readPointer(key, o, 'put')) === piece.pieceCid) return;
    try {
      await this.client.send(
        new this.sdk.PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: piece.pieceCid,
          ContentType: 'text/plain',
        }),
        { abortSignal: o.signal },
      );
    } catch (err) {
      throw this.typed(err, key, 'put');
    }
  }

  private async readPointer(key: string, o: CallOptions, op: Op): Promise<string | undefined> {
    try {
      const r = await this.client.send(new this.sdk.GetObjectCommand({ Bucket: this.bucket, Key: key }), {
        abortSignal: o.signal,
      });
      return (await r.Body!.transformToString()).trim();
    } catch (err) {
      if (s3ErrorInfo(err).name === 'NoSuchKey') return undefined;
      throw this.typed(err, key, op);
    }
  }

  async status(piece: Pick<PieceRef, 'pieceCid'>, o: CallOptions = {}): Promise<ReplicaStatus> {
    const h = await this.head(this.pieceKey(piece.pieceCid), o, 'status');
    return { providerId: this.id, pieceCid: piece.pieceCid, present: !!h, bytes: h?.ContentLength };
  }

  readRange(piece: Pick<PieceRef, 'pieceCid'>, o: RangeOptions = {}): Readable {
    const { offset = 0, length } = o;
    if (length === 0) return Readable.from([]);
    const key = this.pieceKey(piece.pieceCid);
    const range =
      length === undefined ? (offset > 0 ? `bytes=${offset}-` : undefined) : `bytes=${offset}-${offset + length - 1}`;
    const self = this;
    return Readable.from(
      (async function* () {
        let body: AsyncIterable<Uint8Array>;
        try {
          const r = await self.client.send(
            new self.sdk.GetObjectCommand({ Bucket: self.bucket, Key: key, Range: range }),
            {
              abortSignal: o.signal,
            },
          );
          body = r.Body as AsyncIterable<Uint8Array>;
        } catch (err) {
          if (s3ErrorInfo(err).name === 'InvalidRange') return; // offset at or past the end: nothing to read
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
      await this.client.send(new this.sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: key }), {
        abortSignal: o.signal,
      });
      const rootCid = h.Metadata?.rootcid;
      if (
        rootCid &&
        SAFE_CID.test(rootCid) &&
        (await this.readPointer(this.rootKey(rootCid), o, 'delete')) === piece.pieceCid
      ) {
        await this.client.send(new this.sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: this.rootKey(rootCid) }), {
          abortSignal: o.signal,
        });
      }
    } catch (err) {
      throw this.typed(err, key, 'delete');
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** Map an SDK or network error onto the error hierarchy, keeping it as the cause. */
  /** Map an SDK or network error onto the error hierarchy (S3's error names first, then the HTTP status rules), keeping it as the cause. */
  private typed(err: unknown, key: string, op: Op): ProvenantError {
    if (ProvenantError.is(err)) return err;
    const { name, status, auth, why } = s3ErrorInfo(err);
    const where = this.where(key);
    if (name === 'NoSuchBucket') return new BucketNotFoundError(`bucket does not exist ${where}`, { cause: err });
    if (name === 'NoSuchKey') return new PieceNotFoundError(`piece not stored ${where}`, { cause: err });
    if (auth) return new ProviderAuthError(`credentials rejected or access denied ${where}: ${why}`, { cause: err });
    if (name === 'SlowDown' || (status === undefined && isNetworkError(err))) {
      return new ProviderUnavailableError(`S3 endpoint unavailable ${where}: ${why}`, { cause: err });
    }
    if (status !== undefined)
      return httpStatusError(status, { side: 'provider', op, message: `S3 ${op} failed ${where}: ${why}`, cause: err });
    return providerFailure(op, `${op} failed ${where}: ${why}`, err);
  }
}
