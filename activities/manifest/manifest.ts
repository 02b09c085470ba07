/**
 * The provenance manifest: what was archived, from where, how it was packed, by which tool.
 * It is a CAR of dag-json blocks, stored and replicated exactly like a shard; its root block's
 * CID (in the CAR header) is the handle users keep.
 *
 * No block grows with the dataset (each stays well under 1 MiB, what Kubo and bitswap move):
 * the shard list, the file records and each shard's block index are paged lists, a tree of
 * `{ pages: [cid…] }` nodes over leaf pages (`{ shards }`, `{ files }`, `{ blocks }`). Every
 * node but the last on its level is full, so item i is found by arithmetic, reading one block
 * per level. 100,000 shards are 100 pages under one node; 10^6 are 1,000 pages, still one node;
 * past 4,096 pages a level is added.
 *
 * Manifests written before the paging (version 1: `shards` inline in the root, a flat
 * `filePages` list, one block-index block per shard) are still read.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import * as dagJson from '@ipld/dag-json';
import { CarIndexer } from '@ipld/car/indexer';
import { CID } from 'multiformats/cid';
import varint from 'varint';
import { z } from 'zod';
import { blockMatches, carCidFromSha256, cidOf, parseCid } from '../pack/cids.js';
import { CommPHasher } from '../pack/commp.js';
import type { FileRecord } from '../pack/packer.js';
import type { ShardInfo } from '../pack/shard-writer.js';
import { carHeader } from '../pack/shard-writer.js';
import { IntegrityError, ManifestInvalidError, PieceSizeExceededError, StagingMissingError } from '../errors.js';
import { blockIndexName, readBlockIndex } from '../pack/block-index.js';
import type { PieceRef } from '../providers/provider.js';
import { DatasetEncryptionSchema } from '../encryption/record.js';

/** Re-exported from its home in pack/cids.ts, for the callers that import it from here. */
export { parseCid };

export const MANIFEST_TYPE = 'provenant/manifest';
/** Bound on every block the writer makes; the page sizes below keep well under it. */
export const MAX_MANIFEST_BLOCK_BYTES = 1 << 20;
/** At most this many file records per file page (pages also close at `filePageBytes`). */
export const FILES_PER_PAGE = 1000;

/**
 * Page sizes of the paged lists. A shard record is ~450 B of dag-json, a block-index entry ~90 B,
 * a link ~65 B, so the defaults keep every page under half a MiB. Tests lower them.
 */
export interface PageLayout {
  shardsPerPage: number;
  blocksPerPage: number;
  filesPerPage: number;
  /** A file page closes once its records reach this many bytes (a record grows with its ranges). */
  filePageBytes: number;
  /** Links per inner node of a list's tree. */
  linksPerNode: number;
}
export const PAGE_LAYOUT: PageLayout = {
  shardsPerPage: 1000,
  blocksPerPage: 4096,
  filesPerPage: FILES_PER_PAGE,
  filePageBytes: 512 * 1024,
  linksPerNode: 4096,
};

const FileRecordSchema = z.object({
  path: z.string(),
  size: z.number().int().min(0),
  mtimeMs: z.number(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  cid: z.string(),
  shards: z.tuple([z.number().int(), z.number().int()]),
  ranges: z.array(z.object({ shard: z.number().int(), offset: z.number().int(), length: z.number().int() })).optional(),
});

/** A paged list: `root` is a leaf page (depth 0) or a `{ pages }` node `depth` levels above the leaves. */
const ListSchema = z.object({
  root: z.string(),
  depth: z.number().int().min(0),
  count: z.number().int().min(0),
  /** Items per leaf page (every page but the last is full); absent when pages close by size. */
  perPage: z.number().int().min(1).optional(),
  perNode: z.number().int().min(2),
});
export type ListRef = z.infer<typeof ListSchema>;

const ShardSchema = z.object({
  index: z.number().int().min(0),
  carCid: z.string(),
  pieceCid: z.string(),
  rootCid: z.string(),
  carBytes: z.number().int().positive(),
  paddedPieceBytes: z.number().int().positive(),
  blocks: z.number().int().positive(),
  /** Indexes (in manifest order) of the first and last file with blocks in this shard. */
  files: z.tuple([z.number().int(), z.number().int()]).nullable(),
  /** Version 1: CID of a block listing [offset, length, CID] of every block in the shard (for spot checks). */
  blockIndex: z.string().optional(),
  /** Version 2: the same entries as a paged list. */
  blockList: ListSchema.optional(),
});

const BaseFields = {
  type: z.literal(MANIFEST_TYPE),
  datasetId: z.string(),
  root: z.string(),
  source: z.object({ kind: z.string(), uri: z.string(), host: z.string().optional() }),
  meta: z.record(z.string(), z.string()),
  /** Manifest CIDs of the datasets or models this one derives from (lineage). */
  derivedFrom: z.array(z.string()).optional(),
  tool: z.object({ name: z.string(), version: z.string() }),
  createdAt: z.string(),
  totals: z.object({
    files: z.number().int(),
    bytes: z.number().int(),
    shards: z.number().int(),
    carBytes: z.number().int(),
  }),
  layout: z.object({ chunkBytes: z.number().int(), fileWidth: z.number().int(), shardBytes: z.number().int() }),
  /** Present when the shards are stored encrypted: what a restore needs besides the key-encryption key (never a key). */
  encryption: DatasetEncryptionSchema.optional(),
};
/** The layout before paging: every shard inline in the root. */
const LegacyManifestSchema = z.object({
  ...BaseFields,
  version: z.literal(1),
  shards: z.array(ShardSchema),
  filePages: z.array(z.string()),
});
const PagedManifestSchema = z.object({
  ...BaseFields,
  version: z.literal(2),
  shardList: ListSchema,
  fileList: ListSchema,
});
export const ManifestSchema = z.discriminatedUnion('version', [LegacyManifestSchema, PagedManifestSchema]);
export type Manifest = z.infer<typeof ManifestSchema>;
export type ManifestShard = z.infer<typeof ShardSchema>;
/** One block-index entry: [offset of the block data in the shard CAR, its length, its CID]. */
export type BlockEntry = [number, number, string];

export interface ManifestHeader {
  datasetId: string;
  root: string;
  source: Manifest['source'];
  meta: Record<string, string>;
  derivedFrom?: string[];
  tool: Manifest['tool'];
  createdAt: string;
  layout: Manifest['layout'];
  encryption?: Manifest['encryption'];
}

function frame(cid: CID, bytes: Uint8Array): Uint8Array[] {
  return [Uint8Array.from(varint.encode(cid.bytes.length + bytes.length)), cid.bytes, bytes];
}

type Emit = (value: unknown) => string;

/**
 * Builds one paged list as items arrive: leaf pages are emitted as they fill, and each level of
 * links becomes a node once it holds `perNode` of them, so the writer holds one page per level.
 */
class ListWriter {
  private readonly levels: string[][] = [[]];
  private page: unknown[] = [];
  private pageBytes = 0;
  private count = 0;

  constructor(
    private readonly emit: Emit,
    private readonly key: 'shards' | 'files' | 'blocks',
    private readonly perNode: number,
    private readonly perPage: number,
    private readonly maxPageBytes = Infinity,
  ) {}

  add(item: unknown, bytes = 0): void {
    if (this.page.length > 0 && this.pageBytes + bytes > this.maxPageBytes) this.flushPage();
    this.page.push(item);
    this.pageBytes += bytes;
    this.count++;
    if (this.page.length >= this.perPage) this.flushPage();
  }

  private flushPage(): void {
    this.link(0, this.emit({ [this.key]: this.page }));
    this.page = [];
    this.pageBytes = 0;
  }

  private link(level: number, cid: string): void {
    const links = (this.levels[level] ??= []);
    links.push(cid);
    if (links.length >= this.perNode) {
      this.levels[level] = [];
      this.link(level + 1, this.emit({ pages: links }));
    }
  }

  finish(): ListRef {
    if (this.page.length > 0 || this.count === 0) this.flushPage();
    const fixed = this.maxPageBytes === Infinity ? { perPage: this.perPage } : {};
    for (let level = 0; ; level++) {
      const links = this.levels[level] ?? [];
      const above = this.levels.slice(level + 1).some((l) => l.length > 0);
      if (!above && links.length === 1)
        return { root: links[0]!, depth: level, count: this.count, ...fixed, perNode: this.perNode };
      this.levels[level] = [];
      if (links.length > 0) (this.levels[level + 1] ??= []).push(this.emit({ pages: links }));
    }
  }
}

/** Build the manifest CAR from the pack output; returns its piece reference. */
export async function writeManifest(
  header: ManifestHeader,
  shards: ShardInfo[],
  filesPath: string,
  outPath: string,
  maxBytes: number,
  opts: { layout?: Partial<PageLayout> } = {},
): Promise<PieceRef> {
  const layout = { ...PAGE_LAYOUT, ...opts.layout };
  const pagesPath = `${outPath}.pages`;
  const pagesFd = fs.openSync(pagesPath, 'w');
  const emit: Emit = (value) => {
    const data = dagJson.encode(value);
    if (data.length > MAX_MANIFEST_BLOCK_BYTES) {
      // Only a single file record with tens of thousands of shard ranges can get here.
      throw new ManifestInvalidError(
        `a manifest block would be ${data.length} bytes, over ${MAX_MANIFEST_BLOCK_BYTES}`,
      );
    }
    const cid = cidOf(dagJson.code, crypto.createHash('sha256').update(data).digest());
    for (const part of frame(cid, data)) fs.writeSync(pagesFd, part);
    return cid.toString();
  };
  let fileList: ListRef;
  let shardList: ListRef;
  let files = 0;
  let bytes = 0;
  try {
    const shardFiles: ([number, number] | null)[] = shards.map(() => null);
    const fileWriter = new ListWriter(emit, 'files', layout.linksPerNode, layout.filesPerPage, layout.filePageBytes);
    const rl = readline.createInterface({ input: fs.createReadStream(filesPath), crlfDelay: Infinity });
    for await (const line of rl) {
      if (!line) continue;
      const rec = JSON.parse(line) as FileRecord;
      for (let s = rec.shards[0]; s <= rec.shards[1]; s++) {
        const r = shardFiles[s];
        if (r) r[1] = files;
        else shardFiles[s] = [files, files];
      }
      fileWriter.add(rec, line.length);
      files++;
      bytes += rec.size;
    }
    fileList = fileWriter.finish();
    // Per-shard block index, so a verifier can challenge any block by its byte range.
    const stagingDir = path.dirname(filesPath);
    const shardWriter = new ListWriter(emit, 'shards', layout.linksPerNode, layout.shardsPerPage);
    for (const [i, s] of shards.entries()) {
      const blocks = readBlockIndex(path.join(stagingDir, blockIndexName(s.file)));
      if (blocks.length !== s.blocks)
        throw new StagingMissingError(`block index of shard ${s.index} has ${blocks.length} of ${s.blocks} blocks`);
      const blockWriter = new ListWriter(emit, 'blocks', layout.linksPerNode, layout.blocksPerPage);
      for (const b of blocks) blockWriter.add(b);
      const record: ManifestShard = {
        index: s.index,
        carCid: s.carCid,
        pieceCid: s.pieceCid,
        rootCid: s.rootCid,
        carBytes: s.carBytes,
        paddedPieceBytes: s.paddedPieceBytes,
        blocks: s.blocks,
        files: shardFiles[i] ?? null,
        blockList: blockWriter.finish(),
      };
      shardWriter.add(record);
    }
    shardList = shardWriter.finish();
  } finally {
    fs.closeSync(pagesFd);
  }

  const manifest: Manifest = {
    type: MANIFEST_TYPE,
    version: 2,
    ...header,
    totals: { files, bytes, shards: shards.length, carBytes: shards.reduce((n, s) => n + s.carBytes, 0) },
    shardList,
    fileList,
  };
  const rootBytes = dagJson.encode(manifest);
  const rootCid = cidOf(dagJson.code, crypto.createHash('sha256').update(rootBytes).digest());

  const sha = crypto.createHash('sha256');
  const commp = new CommPHasher();
  const tmp = `${outPath}.partial`;
  const fd = fs.openSync(tmp, 'w');
  let carBytes = 0;
  const put = (b: Uint8Array) => {
    sha.update(b);
    commp.update(b);
    fs.writeSync(fd, b);
    carBytes += b.length;
  };
  put(carHeader(rootCid));
  for (const part of frame(rootCid, rootBytes)) put(part);
  const pages = fs.createReadStream(pagesPath, { highWaterMark: 4 << 20 });
  for await (const chunk of pages) put(chunk as Buffer);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.rmSync(pagesPath, { force: true });
  if (carBytes > maxBytes) {
    fs.rmSync(tmp, { force: true });
    throw new PieceSizeExceededError(`manifest CAR is ${carBytes} bytes, over the ${maxBytes}-byte piece limit`);
  }
  fs.renameSync(tmp, outPath);
  const piece = commp.digest();
  return {
    pieceCid: piece.pieceCid,
    carCid: carCidFromSha256(sha.digest()),
    rootCid: rootCid.toString(),
    bytes: carBytes,
  };
}

/** Where blocks of a manifest come from: a manifest CAR on disk, or (in tests) a Map. */
export interface BlockSource {
  get(cid: string): Uint8Array | undefined;
}

/**
 * The blocks of a manifest CAR on disk, read one at a time by their byte range (positional reads,
 * nothing else held but the CID → range index) and checked against their CID on every read.
 */
export class ManifestBlocks implements BlockSource {
  private readonly at = new Map<string, number>();
  private readonly offsets: number[] = [];
  private readonly lengths: number[] = [];

  private constructor(readonly file: string) {}

  static async open(carPath: string): Promise<{ roots: CID[]; blocks: ManifestBlocks }> {
    const indexer = await CarIndexer.fromIterable(fs.createReadStream(carPath));
    const blocks = new ManifestBlocks(carPath);
    const size = fs.statSync(carPath).size;
    for await (const e of indexer) {
      // A section length the CAR cannot hold (cut short, or a hostile varint) is refused here, not allocated.
      if (e.blockLength > MAX_MANIFEST_BLOCK_BYTES || e.blockOffset + e.blockLength > size) {
        throw new ManifestInvalidError(
          `manifest CAR section of ${e.cid} claims ${e.blockLength} bytes at ${e.blockOffset} of ${size}`,
        );
      }
      const key = e.cid.toString();
      if (blocks.at.has(key)) continue;
      blocks.at.set(key, blocks.offsets.length);
      blocks.offsets.push(e.blockOffset);
      blocks.lengths.push(e.blockLength);
    }
    return { roots: (await indexer.getRoots()) as unknown as CID[], blocks };
  }

  get size(): number {
    return this.at.size;
  }

  has(cid: string): boolean {
    return this.at.has(cid);
  }

  get(cid: string): Uint8Array | undefined {
    const i = this.at.get(cid);
    if (i === undefined) return undefined;
    const length = this.lengths[i]!;
    const buf = Buffer.allocUnsafe(length);
    const fd = fs.openSync(this.file, 'r');
    try {
      let got = 0;
      while (got < length) {
        const n = fs.readSync(fd, buf, got, length - got, this.offsets[i]! + got);
        if (n === 0) throw new IntegrityError(`manifest block ${cid} is cut short in ${this.file}`);
        got += n;
      }
    } finally {
      fs.closeSync(fd);
    }
    if (!blockMatches(CID.parse(cid), buf)) throw new IntegrityError(`manifest block ${cid} does not match its hash`);
    return buf;
  }
}

/** Read a manifest CAR (already checked against its CAR CID); blocks are verified as they are read. */
export async function readManifestCar(
  carPath: string,
  manifestCid: string,
): Promise<{ manifest: Manifest; pages: ManifestBlocks }> {
  let opened;
  try {
    opened = await ManifestBlocks.open(carPath);
  } catch (err) {
    if (ManifestInvalidError.is(err)) throw err;
    throw new ManifestInvalidError(`manifest ${manifestCid} is not a readable CAR: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const { roots, blocks } = opened;
  if (roots.length !== 1 || roots[0]!.toString() !== manifestCid) {
    throw new ManifestInvalidError(`CAR root is ${roots.map(String).join(',')} not the manifest ${manifestCid}`);
  }
  const rootBytes = blocks.get(manifestCid);
  if (!rootBytes) throw new ManifestInvalidError(`manifest root block ${manifestCid} missing from its CAR`);
  if (parseCid(manifestCid)?.code !== dagJson.code)
    throw new ManifestInvalidError(`manifest root ${manifestCid} is not a dag-json block`);
  let value: unknown;
  try {
    value = dagJson.decode(rootBytes);
  } catch (err) {
    throw new ManifestInvalidError(`manifest root block ${manifestCid} does not decode`, { cause: err });
  }
  const parsed = ManifestSchema.safeParse(value);
  if (!parsed.success) {
    throw new ManifestInvalidError(
      `not a Provenant manifest (${manifestCid}): ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  return { manifest: parsed.data, pages: blocks };
}

function decodeBlock<T>(pages: BlockSource, cid: string, schema: z.ZodType<T>, what: string): T {
  const bytes = pages.get(cid);
  if (!bytes) throw new ManifestInvalidError(`manifest ${what} ${cid} missing`);
  let value: unknown;
  try {
    value = dagJson.decode(bytes);
  } catch (err) {
    throw new ManifestInvalidError(`manifest ${what} ${cid} does not decode`, { cause: err });
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ManifestInvalidError(`manifest ${what} ${cid} is malformed`);
  return parsed.data;
}

const NodeSchema = z.object({ pages: z.array(z.string()).min(1) });
const ShardPageSchema = z.object({ shards: z.array(ShardSchema) });
const FilePageSchema = z.object({ files: z.array(FileRecordSchema) });
const BlockPageSchema = z.object({
  blocks: z.array(z.tuple([z.number().int().min(0), z.number().int().min(0), z.string()])),
});

/** The leaf pages of a list in order, holding one node per level. */
function* leafPages(pages: BlockSource, cid: string, depth: number, what: string): Generator<string> {
  if (depth === 0) {
    yield cid;
    return;
  }
  for (const child of decodeBlock(pages, cid, NodeSchema, `${what} node`).pages)
    yield* leafPages(pages, child, depth - 1, what);
}

/** The leaf page holding item `i` of a fixed-page list: one node read per level. */
function leafOf(
  pages: BlockSource,
  list: ListRef,
  i: number,
  what: string,
  nodes: { cid: string; pages: string[] }[] = [],
): { cid: string; at: number } {
  if (!list.perPage) throw new ManifestInvalidError(`manifest ${what} list has no fixed page size`);
  let leaf = Math.floor(i / list.perPage);
  let cid = list.root;
  for (let d = list.depth; d > 0; d--) {
    const span = list.perNode ** (d - 1);
    // `nodes` keeps the last node read on each level, for callers that look up many items.
    let node = nodes[d];
    if (node?.cid !== cid) nodes[d] = node = { cid, pages: decodeBlock(pages, cid, NodeSchema, `${what} node`).pages };
    const child = node.pages[Math.floor(leaf / span)];
    if (!child) throw new ManifestInvalidError(`manifest ${what} list has no page for item ${i}`);
    cid = child;
    leaf %= span;
  }
  return { cid, at: i % list.perPage };
}

export function shardCount(manifest: Manifest): number {
  return manifest.version === 1 ? manifest.shards.length : manifest.shardList.count;
}

/** The record of shard `i`, reading one page per level of the shard list. */
export function manifestShard(manifest: Manifest, pages: BlockSource, i: number): ManifestShard {
  if (!Number.isInteger(i) || i < 0 || i >= shardCount(manifest))
    throw new ManifestInvalidError(`manifest has no shard ${i}`);
  if (manifest.version === 1) return manifest.shards[i]!;
  const { cid, at } = leafOf(pages, manifest.shardList, i, 'shard');
  const shard = decodeBlock(pages, cid, ShardPageSchema, 'shard page').shards[at];
  if (!shard || shard.index !== i)
    throw new ManifestInvalidError(`manifest shard page ${cid} does not hold shard ${i}`);
  return shard;
}

/**
 * Shard records by index for a reader that walks them mostly in order (a restore, a verification
 * round): keeps the last leaf page decoded, so consecutive lookups decode each page once.
 */
export class ShardLookup {
  private page?: { cid: string; shards: ManifestShard[] };
  private readonly nodes: { cid: string; pages: string[] }[] = [];

  constructor(
    private readonly manifest: Manifest,
    private readonly pages: BlockSource,
  ) {}

  get count(): number {
    return shardCount(this.manifest);
  }

  get(i: number): ManifestShard {
    const m = this.manifest;
    if (m.version === 1 || !Number.isInteger(i) || i < 0 || i >= m.shardList.count)
      return manifestShard(m, this.pages, i);
    const { cid, at } = leafOf(this.pages, m.shardList, i, 'shard', this.nodes);
    if (this.page?.cid !== cid)
      this.page = { cid, shards: decodeBlock(this.pages, cid, ShardPageSchema, 'shard page').shards };
    const shard = this.page.shards[at];
    if (!shard || shard.index !== i)
      throw new ManifestInvalidError(`manifest shard page ${cid} does not hold shard ${i}`);
    return shard;
  }
}

/** Every shard record in order, one page in memory at a time. */
export function* manifestShards(manifest: Manifest, pages: BlockSource): Generator<ManifestShard> {
  if (manifest.version === 1) {
    yield* manifest.shards;
    return;
  }
  const { root, depth } = manifest.shardList;
  for (const cid of leafPages(pages, root, depth, 'shard'))
    yield* decodeBlock(pages, cid, ShardPageSchema, 'shard page').shards;
}

/** Every file record in manifest order, one page in memory at a time. */
export function* manifestFiles(manifest: Manifest, pages: BlockSource): Generator<FileRecord> {
  const leaves =
    manifest.version === 1
      ? manifest.filePages
      : leafPages(pages, manifest.fileList.root, manifest.fileList.depth, 'file');
  for (const cid of leaves) yield* decodeBlock(pages, cid, FilePageSchema, 'file page').files as FileRecord[];
}

/** The block-index entries of one shard in CAR order, one page in memory at a time. */
export function* shardBlocks(
  manifest: Manifest,
  pages: BlockSource,
  shard: number | ManifestShard,
): Generator<BlockEntry> {
  const s = typeof shard === 'number' ? manifestShard(manifest, pages, shard) : shard;
  if (s.blockList) {
    for (const cid of leafPages(pages, s.blockList.root, s.blockList.depth, 'block index')) {
      yield* decodeBlock(pages, cid, BlockPageSchema, 'block index page').blocks;
    }
    return;
  }
  if (!s.blockIndex) throw new ManifestInvalidError(`manifest has no block index for shard ${s.index}`);
  yield* decodeBlock(pages, s.blockIndex, BlockPageSchema, 'block index').blocks;
}

/** One shard's whole block index (its size follows the shard's, not the dataset's). */
export function shardIndex(manifest: Manifest, pages: BlockSource, shard: number): BlockEntry[] {
  return [...shardBlocks(manifest, pages, shard)];
}
