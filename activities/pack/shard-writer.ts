/**
 * Writes blocks into CAR shards no bigger than the target size (CAR framing included). Each
 * shard is written once, as it is produced: blocks are framed into large buffers shared with a
 * second thread, which writes them to the file and, from the same memory, computes their sha256
 * (the shard's CAR CID) and piece commitment (CommP), with no second read (see shard-hasher.ts).
 *
 * Each block's byte range goes to the shard's block index as it is framed (block-index.ts).
 * A shard is `shard-<i>.car.partial` until complete, then fsynced and renamed; only then is it
 * reported through `onShard`, in shard order. Reports arrive while later shards are being
 * written; `finish()` waits for the last ones.
 */
import fs from 'node:fs';
import path from 'node:path';
import varint from 'varint';
import { encode as cborEncode } from '@ipld/dag-cbor';
import type { CID } from 'multiformats/cid';
import { directWriteFlags } from '../direct-io.js';
import { PieceSizeExceededError } from '../errors.js';
import { BlockIndexWriter, blockIndexName } from './block-index.js';
import {
  partialPath,
  ShardHasher,
  shardFileName,
  SLOT_BYTES,
  type ShardDigest,
  type ShardHasherOptions,
} from './shard-hasher.js';

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

/** Closed shards that may wait for their fsync and digests at once. */
const MAX_UNREPORTED = 4;

/** Bytes of a CIDv1 raw sha2-256 CID: version, codec, hash code, digest length, 32-byte digest. */
const RAW_CID_BYTES = 36;

export function carHeader(root: CID): Uint8Array {
  const header = cborEncode({ version: 1, roots: [root] });
  const head = varint.encode(header.length);
  const out = new Uint8Array(head.length + header.length);
  out.set(head, 0);
  out.set(header, head.length);
  return out;
}

/** Bytes a block takes in a CAR: varint(len) + cid + data. */
export function framedSize(cid: CID, data: Uint8Array): number {
  const n = cid.bytes.length + data.length;
  return varint.encodingLength(n) + n;
}

/** A closed shard waiting for its digests, with what the caller attached when it closed. */
interface Sealed<M> {
  index: number;
  fd: number;
  rootCid: string;
  carBytes: number;
  blocks: number;
  memo: M;
}

export class ShardWriter<M = undefined> {
  private fd = -1;
  private index: BlockIndexWriter | undefined;
  private hasher: ShardHasher | undefined;
  /** The ring slot being filled (CAR bytes not yet written or hashed). */
  private slot: Uint8Array | undefined;
  private slotLen = 0;
  private carBytes = 0;
  private blocks = 0;
  private rootCid = '';
  private readonly sealed: Sealed<M>[] = [];
  private readonly head = new Uint8Array(10);
  /** Header length and data length of the leaf between `beginLeaf` and `endLeaf`. */
  private leafHead = 0;
  private leafLength = -1;
  /** Called before shard `index` is opened (the staging window waits here; see staging-window.ts). */
  beforeOpen: ((index: number) => void) | undefined;

  constructor(
    private readonly dir: string,
    private readonly shardBytes: number,
    /** Index of the next shard to open. */
    public nextIndex: number,
    /** Called when a shard is durable and hashed, in shard order, with the memo given at close. */
    private readonly onShard: (info: ShardInfo, memo: M) => void,
    /** Called as a shard closes (all its blocks written); the result is handed back to `onShard`. */
    private readonly onClose: (index: number) => M = () => undefined as M,
    private readonly hasherOptions: ShardHasherOptions = {},
  ) {}

  /** Starts the hash thread; call (and await) before writing. */
  async ready(): Promise<void> {
    if (this.hasher) return;
    const hasher = new ShardHasher(this.dir, this.hasherOptions);
    try {
      await hasher.ready();
    } catch (err) {
      hasher.stop({ wait: false });
      throw err;
    }
    this.hasher = hasher;
  }

  get open(): boolean {
    return this.fd >= 0;
  }

  /** True when the block does not fit in the open shard and a new one must start. */
  wouldOverflow(cid: CID, data: Uint8Array): boolean {
    return this.open && this.carBytes + framedSize(cid, data) > this.shardBytes;
  }

  /** Write a block; the caller closes the shard first when `wouldOverflow`. Returns the shard index. */
  write(cid: CID, data: Uint8Array): number {
    if (!this.open) this.start(cid);
    const cidBytes = cid.bytes;
    const n = cidBytes.length + data.length;
    const headLen = varint.encodingLength(n);
    if (this.carBytes + headLen + n > this.shardBytes) {
      throw new PieceSizeExceededError(
        `block ${cid} (${data.length} bytes) does not fit in a ${this.shardBytes}-byte shard`,
      );
    }
    varint.encode(n, this.head, 0);
    this.index!.add(cidBytes, this.carBytes + headLen + cidBytes.length, data.length);
    this.append(this.head.subarray(0, headLen));
    this.append(cidBytes);
    this.append(data);
    this.blocks++;
    return this.nextIndex;
  }

  /**
   * Zero-copy path for a raw leaf of `length` bytes: returns the place in the current slot
   * where its bytes go (the caller reads the file straight into it), or undefined when the
   * block must go through `write` instead (no shard open, the block would overflow the shard,
   * or its header would straddle two slots). When the leaf does not fit in the slot, only the
   * part that does is returned; `endLeaf` takes the rest.
   */
  beginLeaf(length: number): Uint8Array | undefined {
    if (!this.open) return undefined;
    const headLen = varint.encodingLength(RAW_CID_BYTES + length) + RAW_CID_BYTES;
    if (this.carBytes + headLen + length > this.shardBytes) return undefined;
    if (!this.slot) {
      this.slot = this.hasher!.acquire();
      this.slotLen = 0;
    }
    const room = SLOT_BYTES - this.slotLen - headLen;
    if (room <= 0 || length === 0) return undefined;
    this.leafHead = headLen;
    this.leafLength = length;
    const at = this.slotLen + headLen;
    return this.slot.subarray(at, at + Math.min(room, length));
  }

  /** Completes the leaf begun with `beginLeaf`; `rest` holds its bytes that did not fit. Returns the shard index. */
  endLeaf(cid: CID, rest: Uint8Array): number {
    const cidBytes = cid.bytes;
    if (cidBytes.length !== RAW_CID_BYTES || this.leafLength < 0)
      throw new Error('ShardWriter.endLeaf: no raw leaf begun');
    const slot = this.slot!;
    const n = RAW_CID_BYTES + this.leafLength;
    varint.encode(n, slot, this.slotLen);
    slot.set(cidBytes, this.slotLen + this.leafHead - RAW_CID_BYTES);
    const first = this.leafHead + this.leafLength - rest.length;
    this.index!.add(cidBytes, this.carBytes + this.leafHead, this.leafLength);
    this.leafLength = -1;
    this.slotLen += first;
    this.carBytes += first;
    if (this.slotLen === SLOT_BYTES) this.flushSlot();
    if (rest.length > 0) this.append(rest);
    this.blocks++;
    return this.nextIndex;
  }

  private start(root: CID): void {
    if (!this.hasher) throw new Error('ShardWriter: await ready() before writing');
    this.beforeOpen?.(this.nextIndex);
    const direct = this.hasher.direct ? directWriteFlags() : undefined;
    this.fd = fs.openSync(partialPath(this.dir, this.nextIndex), direct ?? 'w', 0o644);
    this.index = new BlockIndexWriter(path.join(this.dir, blockIndexName(shardFileName(this.nextIndex))));
    this.carBytes = 0;
    this.blocks = 0;
    this.rootCid = root.toString();
    this.append(carHeader(root));
  }

  private append(bytes: Uint8Array): void {
    this.carBytes += bytes.length;
    let off = 0;
    while (off < bytes.length) {
      if (!this.slot) {
        this.slot = this.hasher!.acquire();
        this.slotLen = 0;
      }
      const take = Math.min(SLOT_BYTES - this.slotLen, bytes.length - off);
      if (take < 64) {
        for (let i = 0; i < take; i++) this.slot[this.slotLen + i] = bytes[off + i]!;
      } else {
        this.slot.set(off === 0 && take === bytes.length ? bytes : bytes.subarray(off, off + take), this.slotLen);
      }
      this.slotLen += take;
      off += take;
      if (this.slotLen === SLOT_BYTES) this.flushSlot();
    }
  }

  /** Hand the filled part of the slot to the hash thread, which writes it to the shard file and hashes it. */
  private flushSlot(end?: { index: number; fd: number }): void {
    if (!this.slot) this.hasher!.acquire();
    this.hasher!.publish(this.slotLen, end?.fd ?? this.fd, end?.index ?? this.nextIndex, !!end);
    this.slot = undefined;
    this.slotLen = 0;
    this.report(this.hasher!.poll());
  }

  private report(digests: ShardDigest[]): void {
    for (const d of digests) {
      const s = this.sealed.shift()!;
      if (!s || s.index !== d.index || s.carBytes !== d.carBytes) {
        throw new Error(
          `shard hasher out of step: expected shard ${s?.index}/${s?.carBytes}, got ${d.index}/${d.carBytes}`,
        );
      }
      fs.closeSync(s.fd);
      const info: ShardInfo = {
        index: s.index,
        file: shardFileName(s.index),
        carCid: d.carCid,
        pieceCid: d.pieceCid,
        rootCid: s.rootCid,
        carBytes: s.carBytes,
        paddedPieceBytes: d.paddedPieceBytes,
        blocks: s.blocks,
      };
      this.onShard(info, s.memo);
    }
  }

  /**
   * Complete the open shard: its last bytes go out and the hash thread takes it over (digest,
   * fsync, rename); `onShard` follows once that is done. The file stays open until then.
   */
  close(): void {
    if (!this.open) return;
    const index = this.nextIndex;
    const memo = this.onClose(index);
    this.index!.close();
    this.index = undefined;
    const fd = this.fd;
    this.sealed.push({ index, fd, rootCid: this.rootCid, carBytes: this.carBytes, blocks: this.blocks, memo });
    // The shard is sealed before its last bytes go out: if the hash thread's failure surfaces here,
    // its descriptor is the sealed shard's alone (abort closes it once).
    this.fd = -1;
    this.nextIndex++;
    this.flushSlot({ index, fd });
    // Each unreported shard holds a descriptor and a memo: bound them (tiny shards, slow fsync).
    if (this.sealed.length > MAX_UNREPORTED) this.report(this.hasher!.drain(MAX_UNREPORTED));
  }

  /** Waits until shard `index` and every shard before it are reported through `onShard`. */
  reportThrough(index: number): void {
    if (!this.hasher) return;
    const later = this.sealed.filter((s) => s.index > index).length;
    if (this.sealed.length > later) this.report(this.hasher.drain(later));
  }

  /** Close the open shard and wait until every shard is reported. */
  finish(): void {
    this.close();
    if (this.hasher) {
      this.report(this.hasher.drain());
      this.hasher.stop();
    }
  }

  abort(): void {
    const twins = this.hasher?.twins ?? 0;
    this.hasher?.stop();
    this.hasher = undefined;
    const remove = (index: number) => {
      for (let t = 0; t <= twins; t++) fs.rmSync(partialPath(this.dir, index, t), { force: true });
    };
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
      remove(this.nextIndex);
    }
    this.index?.abort();
    this.index = undefined;
    for (const s of this.sealed.splice(0)) {
      fs.closeSync(s.fd);
      remove(s.index);
    }
  }
}
