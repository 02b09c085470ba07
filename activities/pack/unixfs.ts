/**
 * UnixFS encoding with the ipfs-car / w3up defaults, so CIDs are comparable with theirs:
 * 1 MiB raw leaves, balanced layout of width 1024, flat directories up to 1,000 entries and
 * HAMT-sharded directories above. Node encoding is @ipld/unixfs's; this file only drives the
 * layout as a stream so that packing can checkpoint, resume and run off the event loop.
 */
import crypto from 'node:crypto';
import * as UnixFS from '@ipld/unixfs';
import type { CID } from 'multiformats/cid';
import { cidOf, DAG_PB_CODE, RAW_CODE, sha256 } from './cids.js';

export const CHUNK_BYTES = 1024 * 1024;
export const FILE_WIDTH = 1024;
export const SHARD_DIRECTORY_AFTER = 1000;

export interface Block {
  cid: CID;
  bytes: Uint8Array;
}
export type BlockSink = (block: Block) => unknown;

export interface FileLink {
  cid: CID;
  contentByteLength: number;
  dagByteLength: number;
}
export interface DirEntry {
  name: string;
  cid: CID;
  dagByteLength: number;
}

/** The CID of a raw leaf whose bytes are `parts`, in order. */
export function rawLeafCid(...parts: Uint8Array[]): CID {
  if (parts.length === 1) return cidOf(RAW_CODE, sha256(parts[0]!));
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return cidOf(RAW_CODE, h.digest());
}

/**
 * Streaming balanced-layout file builder; mirrors @ipld/unixfs's balanced layout exactly.
 * Leaves are emitted as they come, so a caller may also write a leaf itself and only
 * announce it (`addLeaf`); a one-leaf file is that raw leaf.
 */
export class FileBuilder {
  private leaves: FileLink[] = [];
  /** rows[d] = pending nodes at depth d+1 */
  private rows: FileLink[][] = [];
  private leafCount = 0;

  constructor(
    private readonly emit: BlockSink,
    private readonly width = FILE_WIDTH,
  ) {}

  /** Add one leaf chunk (≤ 1 MiB): emits it as a raw block. */
  async addChunk(chunk: Uint8Array): Promise<void> {
    const cid = rawLeafCid(chunk);
    await this.emit({ cid, bytes: chunk });
    await this.addLeaf(cid, chunk.byteLength);
  }

  /** Add a raw leaf of `length` bytes that the caller has already written. */
  async addLeaf(cid: CID, length: number): Promise<void> {
    this.leaves.push({ cid, contentByteLength: length, dagByteLength: length });
    this.leafCount++;
    if (this.leaves.length > this.width) await this.flush(false);
  }

  private async branch(parts: FileLink[]): Promise<FileLink> {
    const bytes = UnixFS.encode({ type: UnixFS.NodeType.File, layout: 'advanced', parts } as never);
    const cid = cidOf(DAG_PB_CODE, sha256(bytes));
    await this.emit({ cid, bytes });
    let content = 0;
    let dag = bytes.byteLength;
    for (const p of parts) {
      content += p.contentByteLength;
      dag += p.dagByteLength;
    }
    return { cid, contentByteLength: content, dagByteLength: dag };
  }

  private async flush(close: boolean): Promise<FileLink[]> {
    const made: FileLink[] = [];
    while (this.leaves.length > this.width || (this.leaves.length > 0 && close)) {
      const node = await this.branch(this.leaves.splice(0, this.width));
      made.push(node);
      (this.rows[0] ??= []).push(node);
    }
    let depth = 0;
    while (depth < this.rows.length) {
      const row = this.rows[depth]!;
      depth++;
      while (row.length > this.width || (row.length > 0 && close && depth < this.rows.length)) {
        const node = await this.branch(row.splice(0, this.width));
        made.push(node);
        (this.rows[depth] ??= []).push(node);
      }
    }
    return made;
  }

  /** Finish the file and return the link to its root. */
  async close(): Promise<FileLink> {
    if (this.leafCount === 0) {
      const empty = new Uint8Array(0);
      const cid = rawLeafCid(empty);
      await this.emit({ cid, bytes: empty });
      return { cid, contentByteLength: 0, dagByteLength: 0 };
    }
    if (this.leafCount === 1) return this.leaves[0]!;
    // Mirror @ipld/unixfs: flush with close; the last made node is the root when the
    // top row holds one node, otherwise a new node over the top row is the root.
    return this.closeRows();
  }

  private async closeRows(): Promise<FileLink> {
    // flush(close) creates every node up to, but not including, a node over the top row.
    await this.flush(true);
    const top = this.rows[this.rows.length - 1]!;
    if (top.length === 1) return top[0]!;
    return this.branch(top.splice(0));
  }
}

/** Encode a directory; flat up to 1,000 entries, HAMT-sharded above (as ipfs-car does). */
export async function encodeDirectory(entries: DirEntry[], emit: BlockSink): Promise<FileLink> {
  if (entries.length <= SHARD_DIRECTORY_AFTER) {
    const bytes = UnixFS.encode({
      type: UnixFS.NodeType.Directory,
      entries: entries.map((e) => ({ name: e.name, cid: e.cid, dagByteLength: e.dagByteLength })),
    } as never);
    const cid = cidOf(DAG_PB_CODE, sha256(bytes));
    await emit({ cid, bytes });
    let dag = bytes.byteLength;
    for (const e of entries) dag += e.dagByteLength;
    return { cid, contentByteLength: 0, dagByteLength: dag };
  }
  const blocks: UnixFS.Block[] = [];
  const writable = new WritableStream<UnixFS.Block>(
    { write: (b) => void blocks.push(b) },
    { highWaterMark: Number.MAX_SAFE_INTEGER, size: () => 1 },
  );
  const writer = UnixFS.createWriter({ writable });
  const dir = UnixFS.createShardedDirectoryWriter(writer);
  for (const e of entries) dir.set(e.name, { cid: e.cid, dagByteLength: e.dagByteLength } as never);
  const link = await dir.close();
  await writer.close();
  for (const b of blocks) await emit({ cid: b.cid as unknown as CID, bytes: b.bytes });
  return { cid: link.cid as unknown as CID, contentByteLength: 0, dagByteLength: link.dagByteLength };
}
