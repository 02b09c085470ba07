/**
 * Writes blocks into CAR shards no bigger than the target size (CAR framing included). Each
 * shard is written once, as it is produced: the CAR bytes, their sha256 (the shard's CAR CID)
 * and their piece commitment (CommP) all come from the same pass, with no second read.
 * A shard is `shard-<i>.car.partial` until complete, then fsynced and renamed.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import varint from 'varint';
import { encode as cborEncode } from '@ipld/dag-cbor';
import type { CID } from 'multiformats/cid';
import { carCidFromSha256 } from './cids.js';
import { CommPHasher } from './commp.js';
import { PieceSizeExceededError } from '../errors.js';

export interface ShardInfo {
  index: number;
  /** Shard file name inside the dataset's staging directory. */
  file: string;
  carCid: string;
  pieceCid: string;
  /** CAR root in the header: the first block of the shard (the dataset root for a one-shard set is its last block). */
  rootCid: string;
  carBytes: number;
  paddedPieceBytes: number;
  blocks: number;
}

const BUF_BYTES = 8 * 1024 * 1024;

export function carHeader(root: CID): Uint8Array {
  const header = cborEncode({ version: 1, roots: [root] });
  return concat([Uint8Array.from(varint.encode(header.length)), header]);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Bytes a block takes in a CAR: varint(len) + cid + data. */
export function framedSize(cid: CID, data: Uint8Array): number {
  const n = cid.bytes.length + data.length;
  return varint.encodingLength(n) + n;
}

export class ShardWriter {
  private fd = -1;
  private buf = Buffer.allocUnsafe(BUF_BYTES);
  private bufLen = 0;
  private sha = crypto.createHash('sha256');
  private commp = new CommPHasher();
  private carBytes = 0;
  private blocks = 0;
  private rootCid = '';
  private file = '';

  constructor(
    private readonly dir: string,
    private readonly shardBytes: number,
    /** Index of the next shard to open. */
    public nextIndex: number,
    private readonly onShard: (info: ShardInfo) => void,
  ) {}

  get open(): boolean {
    return this.fd >= 0;
  }
  /** Index of the shard the next block goes into if it fits. */
  get currentIndex(): number {
    return this.open ? this.nextIndex : this.nextIndex;
  }

  /** True when the block does not fit in the open shard and a new one must start. */
  wouldOverflow(cid: CID, data: Uint8Array): boolean {
    return this.open && this.carBytes + framedSize(cid, data) > this.shardBytes;
  }

  /** Write a block; the caller closes the shard first when `wouldOverflow`. Returns the shard index. */
  write(cid: CID, data: Uint8Array): number {
    if (!this.open) this.start(cid);
    const n = cid.bytes.length + data.length;
    const head = varint.encode(n);
    if (this.carBytes + head.length + n > this.shardBytes) {
      throw new PieceSizeExceededError(
        `block ${cid} (${data.length} bytes) does not fit in a ${this.shardBytes}-byte shard`,
      );
    }
    this.append(Uint8Array.from(head));
    this.append(cid.bytes);
    this.append(data);
    this.blocks++;
    return this.nextIndex;
  }

  private start(root: CID): void {
    this.file = `shard-${String(this.nextIndex).padStart(6, '0')}.car`;
    this.fd = fs.openSync(path.join(this.dir, `${this.file}.partial`), 'w');
    this.sha = crypto.createHash('sha256');
    this.commp = new CommPHasher();
    this.carBytes = 0;
    this.blocks = 0;
    this.rootCid = root.toString();
    this.append(carHeader(root));
  }

  private append(bytes: Uint8Array): void {
    this.carBytes += bytes.length;
    if (bytes.length >= BUF_BYTES) {
      this.drain();
      this.emitBytes(bytes);
      return;
    }
    if (this.bufLen + bytes.length > BUF_BYTES) this.drain();
    this.buf.set(bytes, this.bufLen);
    this.bufLen += bytes.length;
  }

  private drain(): void {
    if (this.bufLen === 0) return;
    this.emitBytes(this.buf.subarray(0, this.bufLen));
    this.bufLen = 0;
  }

  private emitBytes(bytes: Uint8Array): void {
    this.sha.update(bytes);
    this.commp.update(bytes);
    let off = 0;
    while (off < bytes.length) off += fs.writeSync(this.fd, bytes, off, bytes.length - off);
  }

  /** Complete the open shard: flush, fsync, rename, report. */
  close(): ShardInfo | undefined {
    if (!this.open) return undefined;
    this.drain();
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.fd = -1;
    fs.renameSync(path.join(this.dir, `${this.file}.partial`), path.join(this.dir, this.file));
    const piece = this.commp.digest();
    const info: ShardInfo = {
      index: this.nextIndex,
      file: this.file,
      carCid: carCidFromSha256(this.sha.digest()),
      pieceCid: piece.pieceCid,
      rootCid: this.rootCid,
      carBytes: this.carBytes,
      paddedPieceBytes: piece.paddedPieceBytes,
      blocks: this.blocks,
    };
    this.nextIndex++;
    this.onShard(info);
    return info;
  }

  abort(): void {
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
      fs.rmSync(path.join(this.dir, `${this.file}.partial`), { force: true });
    }
  }
}
