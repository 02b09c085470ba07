/**
 * The provenance manifest: what was archived, from where, how it was packed, by which tool.
 * It is a CAR of dag-json blocks, stored and replicated exactly like a shard; its root block's
 * CID (in the CAR header) is the handle users keep. File records are paged (1,000 per block)
 * so a million-file dataset never needs one giant block.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import * as dagJson from '@ipld/dag-json';
import { CarBlockIterator } from '@ipld/car/iterator';
import { CID } from 'multiformats/cid';
import varint from 'varint';
import { z } from 'zod';
import { blockMatches, carCidFromSha256, cidOf } from '../pack/cids.js';
import { CommPHasher } from '../pack/commp.js';
import type { FileRecord } from '../pack/packer.js';
import type { ShardInfo } from '../pack/shard-writer.js';
import { carHeader } from '../pack/shard-writer.js';
import { IntegrityError, ManifestInvalidError, PieceSizeExceededError, StagingMissingError } from '../errors.js';
import { blockIndexName, readBlockIndex } from '../pack/block-index.js';
import type { PieceRef } from '../providers/provider.js';

export const MANIFEST_TYPE = 'provenant/manifest';
export const FILES_PER_PAGE = 1000;

const FileRecordSchema = z.object({
  path: z.string(),
  size: z.number().int().min(0),
  mtimeMs: z.number(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  cid: z.string(),
  shards: z.tuple([z.number().int(), z.number().int()]),
  ranges: z.array(z.object({ shard: z.number().int(), offset: z.number().int(), length: z.number().int() })).optional(),
});

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
  /** CID of a block listing [offset, length, CID] of every block in the shard (for spot checks). */
  blockIndex: z.string().optional(),
});

export const ManifestSchema = z.object({
  type: z.literal(MANIFEST_TYPE),
  version: z.literal(1),
  datasetId: z.string(),
  root: z.string(),
  source: z.object({ kind: z.string(), uri: z.string(), host: z.string().optional() }),
  meta: z.record(z.string(), z.string()),
  tool: z.object({ name: z.string(), version: z.string() }),
  createdAt: z.string(),
  totals: z.object({ files: z.number().int(), bytes: z.number().int(), shards: z.number().int(), carBytes: z.number().int() }),
  layout: z.object({ chunkBytes: z.number().int(), fileWidth: z.number().int(), shardBytes: z.number().int() }),
  shards: z.array(ShardSchema),
  filePages: z.array(z.string()),
});
export type Manifest = z.infer<typeof ManifestSchema>;
export type ManifestShard = z.infer<typeof ShardSchema>;

export interface ManifestHeader {
  datasetId: string;
  root: string;
  source: Manifest['source'];
  meta: Record<string, string>;
  tool: Manifest['tool'];
  createdAt: string;
  layout: Manifest['layout'];
}

function frame(cid: CID, bytes: Uint8Array): Uint8Array[] {
  return [Uint8Array.from(varint.encode(cid.bytes.length + bytes.length)), cid.bytes, bytes];
}

/** Build the manifest CAR from the pack output; returns its piece reference. */
export async function writeManifest(
  header: ManifestHeader,
  shards: ShardInfo[],
  filesPath: string,
  outPath: string,
  maxBytes: number,
): Promise<PieceRef> {
  const pagesPath = `${outPath}.pages`;
  const pagesFd = fs.openSync(pagesPath, 'w');
  const pageCids: string[] = [];
  const shardFiles: ([number, number] | null)[] = shards.map(() => null);
  let page: unknown[] = [];
  let fileIndex = 0;
  let files = 0;
  let bytes = 0;
  const flush = () => {
    if (page.length === 0) return;
    const data = dagJson.encode({ files: page });
    const cid = cidOf(dagJson.code, crypto.createHash('sha256').update(data).digest());
    for (const part of frame(cid, data)) fs.writeSync(pagesFd, part);
    pageCids.push(cid.toString());
    page = [];
  };
  const rl = readline.createInterface({ input: fs.createReadStream(filesPath), crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line) continue;
    const rec = JSON.parse(line) as FileRecord;
    for (let s = rec.shards[0]; s <= rec.shards[1]; s++) {
      const r = shardFiles[s];
      if (r) r[1] = fileIndex;
      else shardFiles[s] = [fileIndex, fileIndex];
    }
    page.push(rec);
    files++;
    bytes += rec.size;
    fileIndex++;
    if (page.length >= FILES_PER_PAGE) flush();
  }
  flush();
  // Per-shard block index, so a verifier can challenge any block by its byte range.
  const indexCids: string[] = [];
  const stagingDir = path.dirname(filesPath);
  for (const s of shards) {
    const blocks = readBlockIndex(path.join(stagingDir, blockIndexName(s.file)));
    if (blocks.length !== s.blocks) throw new StagingMissingError(`block index of shard ${s.index} has ${blocks.length} of ${s.blocks} blocks`);
    const data = dagJson.encode({ shard: s.index, blocks });
    const cid = cidOf(dagJson.code, crypto.createHash('sha256').update(data).digest());
    for (const part of frame(cid, data)) fs.writeSync(pagesFd, part);
    indexCids.push(cid.toString());
  }
  fs.closeSync(pagesFd);

  const manifest: Manifest = {
    type: MANIFEST_TYPE,
    version: 1,
    ...header,
    totals: { files, bytes, shards: shards.length, carBytes: shards.reduce((n, s) => n + s.carBytes, 0) },
    shards: shards.map((s, i) => ({
      index: s.index, carCid: s.carCid, pieceCid: s.pieceCid, rootCid: s.rootCid, carBytes: s.carBytes,
      paddedPieceBytes: s.paddedPieceBytes, blocks: s.blocks, files: shardFiles[i] ?? null, blockIndex: indexCids[i],
    })),
    filePages: pageCids,
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
  return { pieceCid: piece.pieceCid, carCid: carCidFromSha256(sha.digest()), rootCid: rootCid.toString(), bytes: carBytes };
}

export interface LoadedManifest {
  manifest: Manifest;
  files: AsyncIterable<FileRecord>;
}

/** Read a manifest CAR (already checked against its CAR CID), verifying every block. */
export async function readManifestCar(carPath: string, manifestCid: string): Promise<{ manifest: Manifest; pages: Map<string, Uint8Array> }> {
  const it = await CarBlockIterator.fromIterable(fs.createReadStream(carPath));
  const roots = await it.getRoots();
  if (roots.length !== 1 || roots[0]!.toString() !== manifestCid) {
    throw new ManifestInvalidError(`CAR root is ${roots.map(String).join(',')} not the manifest ${manifestCid}`);
  }
  const pages = new Map<string, Uint8Array>();
  let rootBytes: Uint8Array | undefined;
  for await (const { cid, bytes } of it) {
    if (!blockMatches(cid as unknown as CID, bytes)) throw new IntegrityError(`manifest block ${cid} does not match its hash`);
    if (cid.toString() === manifestCid) rootBytes = bytes;
    else pages.set(cid.toString(), bytes);
  }
  if (!rootBytes) throw new ManifestInvalidError(`manifest root block ${manifestCid} missing from its CAR`);
  const parsed = ManifestSchema.safeParse(dagJson.decode(rootBytes));
  if (!parsed.success) {
    throw new ManifestInvalidError(`not a Provenant manifest (${manifestCid}): ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return { manifest: parsed.data, pages };
}

export function* manifestFiles(manifest: Manifest, pages: Map<string, Uint8Array>): Generator<FileRecord> {
  for (const cid of manifest.filePages) {
    const bytes = pages.get(cid);
    if (!bytes) throw new ManifestInvalidError(`manifest file page ${cid} missing`);
    const page = z.object({ files: z.array(FileRecordSchema) }).safeParse(dagJson.decode(bytes));
    if (!page.success) throw new ManifestInvalidError(`manifest file page ${cid} is malformed`);
    yield* page.data.files as FileRecord[];
  }
}

export function shardIndex(manifest: Manifest, pages: Map<string, Uint8Array>, shard: number): [number, number, string][] {
  const cid = manifest.shards[shard]?.blockIndex;
  const bytes = cid ? pages.get(cid) : undefined;
  if (!bytes) throw new ManifestInvalidError(`manifest has no block index for shard ${shard}`);
  return (dagJson.decode(bytes) as { blocks: [number, number, string][] }).blocks;
}

export function parseCid(text: string): CID | undefined {
  try {
    return CID.parse(text);
  } catch {
    return undefined;
  }
}

