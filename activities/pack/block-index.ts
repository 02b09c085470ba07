/**
 * The per-shard block index: where each block's bytes sit in its CAR (offset and length of the
 * block data, after the section's varint and CID), recorded by the shard writer as it frames the
 * blocks, so that the manifest never has to read a shard back. A verifier challenges any block of
 * a stored replica by this byte range.
 *
 * File `shard-<i>.car.idx` beside the shard (`.partial` until the shard closes), records of
 * [u8 cid length][cid bytes][f64 LE offset][u32 LE length], written in ~1 MiB batches.
 */
import fs from 'node:fs';
import { CID } from 'multiformats/cid';
import { showPath, StagingMissingError } from '../errors.js';

const FLUSH_BYTES = 1 << 20;

export function blockIndexName(shardFile: string): string {
  return `${shardFile}.idx`;
}

export class BlockIndexWriter {
  private readonly fd: number;
  private buf = Buffer.allocUnsafe(FLUSH_BYTES + 256);
  private len = 0;

  constructor(private readonly file: string) {
    this.fd = fs.openSync(`${file}.partial`, 'w');
  }

  add(cid: Uint8Array, offset: number, length: number): void {
    if (this.len + cid.length + 13 > this.buf.length) this.flush();
    const b = this.buf;
    b[this.len] = cid.length;
    b.set(cid, this.len + 1);
    let at = this.len + 1 + cid.length;
    at = b.writeDoubleLE(offset, at);
    this.len = b.writeUInt32LE(length, at);
    if (this.len >= FLUSH_BYTES) this.flush();
  }

  private flush(): void {
    let off = 0;
    while (off < this.len) off += fs.writeSync(this.fd, this.buf, off, this.len - off);
    this.len = 0;
  }

  /** Durable under its final name (before the shard is reported). */
  close(): void {
    this.flush();
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    fs.renameSync(`${this.file}.partial`, this.file);
  }

  abort(): void {
    fs.closeSync(this.fd);
    fs.rmSync(`${this.file}.partial`, { force: true });
  }
}

/**
 * The index of one shard as [offset, length, cid] triples, in CAR order. A damaged file (a record
 * cut short, a CID that does not decode, an offset that is no byte position) is a
 * StagingMissingError: the staging cannot be trusted, like a staged file that is gone.
 */
export function readBlockIndex(file: string): [number, number, string][] {
  const data = fs.readFileSync(file);
  const out: [number, number, string][] = [];
  let at = 0;
  const damaged = (why: string, cause?: unknown) =>
    new StagingMissingError(`block index ${showPath(file)} is damaged at byte ${at}: ${why}`, { cause });
  while (at < data.length) {
    const n = data[at]!;
    if (n === 0 || at + 1 + n + 12 > data.length) throw damaged(`a record of ${1 + n + 12} bytes is cut short`);
    let cid: string;
    try {
      cid = CID.decode(data.subarray(at + 1, at + 1 + n)).toString();
    } catch (err) {
      throw damaged('its CID does not decode', err);
    }
    const offset = data.readDoubleLE(at + 1 + n);
    const length = data.readUInt32LE(at + 1 + n + 8);
    if (!Number.isSafeInteger(offset) || offset < 0) throw damaged(`offset ${offset} is not a byte position`);
    at += 1 + n + 12;
    out.push([offset, length, cid]);
  }
  return out;
}
