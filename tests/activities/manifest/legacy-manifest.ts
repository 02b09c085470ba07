/**
 * The manifest writer as it was before the shard list was paged (commit a12bf5e), kept to build
 * old-layout manifests in tests: archives written by it exist and must stay readable.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import * as dagJson from '@ipld/dag-json';
import varint from 'varint';
import type { CID } from 'multiformats/cid';
import { carCidFromSha256, cidOf } from '../../../activities/pack/cids.js';
import { CommPHasher } from '../../../activities/pack/commp.js';
import type { FileRecord } from '../../../activities/pack/packer.js';
import type { ShardInfo } from '../../../activities/pack/shard-writer.js';
import { carHeader } from '../../../activities/pack/shard-writer.js';
import { PieceSizeExceededError, StagingMissingError } from '../../../activities/errors.js';
import { blockIndexName, readBlockIndex } from '../../../activities/pack/block-index.js';
import type { PieceRef } from '../../../activities/providers/provider.js';
import type { ManifestHeader } from '../../../activities/manifest/manifest.js';

const MANIFEST_TYPE = 'provenant/manifest';
const FILES_PER_PAGE = 1000;

function frame(cid: CID, bytes: Uint8Array): Uint8Array[] {
  return [Uint8Array.from(varint.encode(cid.bytes.length + bytes.length)), cid.bytes, bytes];
}

export async function writeLegacyManifest(
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
    if (blocks.length !== s.blocks)
      throw new StagingMissingError(`block index of shard ${s.index} has ${blocks.length} of ${s.blocks} blocks`);
    const data = dagJson.encode({ shard: s.index, blocks });
    const cid = cidOf(dagJson.code, crypto.createHash('sha256').update(data).digest());
    for (const part of frame(cid, data)) fs.writeSync(pagesFd, part);
    indexCids.push(cid.toString());
  }
  fs.closeSync(pagesFd);

  const manifest = {
    type: MANIFEST_TYPE,
    version: 1,
    ...header,
    totals: { files, bytes, shards: shards.length, carBytes: shards.reduce((n, s) => n + s.carBytes, 0) },
    shards: shards.map((s, i) => ({
      index: s.index,
      carCid: s.carCid,
      pieceCid: s.pieceCid,
      rootCid: s.rootCid,
      carBytes: s.carBytes,
      paddedPieceBytes: s.paddedPieceBytes,
      blocks: s.blocks,
      files: shardFiles[i] ?? null,
      blockIndex: indexCids[i],
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
  return {
    pieceCid: piece.pieceCid,
    carCid: carCidFromSha256(sha.digest()),
    rootCid: rootCid.toString(),
    bytes: carBytes,
  };
}
