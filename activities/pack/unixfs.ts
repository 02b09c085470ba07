/**
 * UnixFS encoding with the ipfs-car / w3up defaults, so CIDs are comparable with theirs:
 * 1 MiB raw leaves, balanced layout of width 1024, flat directories up to 1,000 entries and
 * HAMT-sharded directories above. Node encoding is @ipld/unixfs's; this file only drives the
 * layout as a stream so that packing can checkpoint, resume and run off the event loop.
 */
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

/** Streaming balanced-layout file builder; mirrors @ipld/unixfs's balanced layout exactly. */
export class FileBuilder {
  private head: FileLink | null = null;
  private leaves: FileLink[] = [];
  /** rows[d] = pending nodes at depth d+1 */
  private rows: FileLink[][] = [];
  private leafCount = 0;

  constructor(
    private readonly emit: BlockSink,
    private readonly width = FILE_WIDTH,
  ) {}

  /** Add one leaf chunk (≤ 1 MiB). */
  async addChunk(chunk: Uint8Array): Promise<void> {
    const cid = cidOf(RAW_CODE, sha256(chunk));
    const link = { cid, contentByteLength: chunk.byteLength, dagByteLength: chunk.byteLength };
    // The first chunk is held back: a one-chunk file is the raw leaf itself.
    if (this.leafCount === 0 && this.head === null) {
      this.head = link;
      this.headBytes = new Uint8Array(chunk); // a copy: the caller reuses its buffer (Buffer#slice would not copy)
      return;
    }
    if (this.head) {
      await this.emit({ cid: this.head.cid, bytes: this.headBytes! });
      this.leaves.push(this.head);
      this.leafCount++;
      this.head = null;
      this.headBytes = null;
    }
    await this.emit({ cid, bytes: chunk });
    this.leaves.push(link);
    this.leafCount++;
    if (this.leaves.length > this.width) await this.flush(false);
  }
  private headBytes: Uint8Array | null = null;

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
    if (this.head) {
      await this.emit({ cid: this.head.cid, bytes: this.headBytes! });
      const link = this.head;
      this.head = null;
      return link;
    }
    if (this.leafCount === 0) {
      const empty = new Uint8Array(0);
      const cid = cidOf(RAW_CODE, sha256(empty));
      await this.emit({ cid, bytes: empty });
      return { cid, contentByteLength: 0, dagByteLength: 0 };
    }
    // Mirror @ipld/unixfs: flush with close; the last made node is the root when the
    // top row holds one node, otherwise a new node over the top row is the root.
    const made = await this.closeRows();
    return made;
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
