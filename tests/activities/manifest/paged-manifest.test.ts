/**
 * The manifest's shard list, file records and block indexes are paged lists: no block grows with
 * the dataset, a shard is found reading one page per level, and manifests of the old layout
 * (every shard inline in the root) still read.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CarBlockIterator } from '@ipld/car/iterator';
import { blockIndexName } from '../../../activities/pack/block-index.js';
import { cidOf, RAW_CODE } from '../../../activities/pack/cids.js';
import type { FileRecord } from '../../../activities/pack/packer.js';
import type { ShardInfo } from '../../../activities/pack/shard-writer.js';
import {
  manifestFiles,
  manifestShard,
  manifestShards,
  MAX_MANIFEST_BLOCK_BYTES,
  readManifestCar,
  shardCount,
  shardIndex,
  ShardLookup,
  writeManifest,
  type BlockEntry,
  type ManifestHeader,
  type PageLayout,
} from '../../../activities/manifest/manifest.js';
import { tmpDir } from '../../helpers/env.js';
import { writeLegacyManifest } from './legacy-manifest.js';

const header: ManifestHeader = {
  datasetId: 'paged',
  root: 'bafyroot',
  source: { kind: 'local', uri: 'file:///data' },
  meta: { run: '1' },
  tool: { name: 'provenant', version: 'test' },
  createdAt: '2025-01-01T00:00:00.000Z',
  layout: { chunkBytes: 1 << 20, fileWidth: 1024, shardBytes: 1 << 20 },
};

const fakeCid = (seed: string) => cidOf(RAW_CODE, crypto.createHash('sha256').update(seed).digest());

/** A staging directory as the pack leaves it: shard records, their block indexes, files.ndjson. No shard data. */
function fakeStaging(shardCountWanted: number, blocksOf: (s: number) => number) {
  const dir = tmpDir('pv-manifest-');
  const shards: ShardInfo[] = [];
  const blocks = new Map<number, BlockEntry[]>();
  const files: FileRecord[] = [];
  for (let s = 0; s < shardCountWanted; s++) {
    const file = `shard-${s}.car`;
    // The block index file in the shard writer's format (block-index.ts), written without its fsyncs.
    const records: Buffer[] = [];
    const entries: BlockEntry[] = [];
    for (let b = 0, offset = 59; b < blocksOf(s); b++, offset += 1000 + 40) {
      const cid = fakeCid(`${s}/${b}`);
      const rec = Buffer.alloc(1 + cid.bytes.length + 12);
      rec[0] = cid.bytes.length;
      rec.set(cid.bytes, 1);
      rec.writeUInt32LE(1000, rec.writeDoubleLE(offset, 1 + cid.bytes.length));
      records.push(rec);
      entries.push([offset, 1000, cid.toString()]);
    }
    fs.writeFileSync(path.join(dir, blockIndexName(file)), Buffer.concat(records));
    blocks.set(s, entries);
    shards.push({
      index: s,
      file,
      carCid: fakeCid(`car/${s}`).toString(),
      pieceCid: `bafkzcibfakepiece${s}`,
      rootCid: entries[0]![2],
      carBytes: 1000 + s,
      paddedPieceBytes: 2048,
      blocks: entries.length,
    });
    const split = s % 7 === 6 && s + 1 < shardCountWanted;
    files.push({
      path: `dir-${s % 13}/file-${s}.bin`,
      size: 1000 * entries.length,
      mtimeMs: 1_700_000_000_000 + s,
      sha256: crypto.createHash('sha256').update(`f${s}`).digest('hex'),
      cid: fakeCid(`file/${s}`).toString(),
      shards: [s, split ? s + 1 : s],
      ...(split
        ? {
            ranges: [
              { shard: s, offset: 0, length: 500 },
              { shard: s + 1, offset: 500, length: 500 },
            ],
          }
        : {}),
    });
  }
  fs.writeFileSync(path.join(dir, 'files.ndjson'), files.map((f) => JSON.stringify(f) + '\n').join(''));
  return {
    dir,
    shards,
    blocks,
    files,
    filesPath: path.join(dir, 'files.ndjson'),
    outPath: path.join(dir, 'manifest.car'),
  };
}

async function blockSizes(carPath: string): Promise<number[]> {
  const sizes: number[] = [];
  for await (const b of await CarBlockIterator.fromIterable(fs.createReadStream(carPath))) sizes.push(b.bytes.length);
  return sizes;
}

const invalid = (e: unknown) => e instanceof Error && e.name === 'ManifestInvalidError';

describe('paged manifest', () => {
  it('keeps every block of a 5,000-shard manifest under the bound its small pages set, and finds shards by index', async () => {
    const st = fakeStaging(5000, (s) => (s % 100 === 0 ? 11 : 2));
    const layout: PageLayout = {
      shardsPerPage: 8,
      blocksPerPage: 4,
      filesPerPage: 16,
      filePageBytes: 4096,
      linksPerNode: 4,
    };
    const ref = await writeManifest(header, st.shards, st.filesPath, st.outPath, 1 << 30, { layout });
    const sizes = await blockSizes(st.outPath);
    // Bounds from the page sizes: 8 shard records, 16 file records, 4 links, 4 block entries.
    const bound = 8 * 1024;
    assert.ok(Math.max(...sizes) <= bound, `largest block is ${Math.max(...sizes)} bytes`);
    const { manifest, pages } = await readManifestCar(st.outPath, ref.rootCid);
    assert.equal(manifest.version, 2);
    assert.equal(shardCount(manifest), 5000);
    // 625 leaf pages under nodes of 4: a tree of 5 levels of nodes.
    assert.equal(manifest.version === 2 && manifest.shardList.depth, 5);
    const lookup = new ShardLookup(manifest, pages);
    for (const i of [0, 1, 7, 8, 9, 31, 32, 2047, 2048, 4095, 4096, 4999]) {
      const want = st.shards[i]!;
      for (const got of [manifestShard(manifest, pages, i), lookup.get(i)]) {
        assert.equal(got.index, i);
        assert.equal(got.carCid, want.carCid);
        assert.equal(got.pieceCid, want.pieceCid);
        assert.equal(got.carBytes, want.carBytes);
      }
      assert.deepEqual(shardIndex(manifest, pages, i), st.blocks.get(i), `block index of shard ${i}`);
    }
    assert.deepEqual(manifestShard(manifest, pages, 7).files, [6, 7], 'shard 7 holds the end of file 6 and file 7');
    assert.throws(() => manifestShard(manifest, pages, 5000), invalid);
    assert.deepEqual(
      [...manifestShards(manifest, pages)].map((s) => s.index),
      [...Array(5000).keys()],
    );
    assert.deepEqual([...manifestFiles(manifest, pages)], st.files);
  });

  it('keeps every block of the default layout under 1 MiB, with a shard of 10,000 blocks and 3,000 shards', async () => {
    const st = fakeStaging(3000, (s) => (s === 1234 ? 10_000 : 1));
    const ref = await writeManifest(header, st.shards, st.filesPath, st.outPath, 1 << 30);
    const sizes = await blockSizes(st.outPath);
    assert.ok(Math.max(...sizes) <= MAX_MANIFEST_BLOCK_BYTES, `largest block is ${Math.max(...sizes)} bytes`);
    const { manifest, pages } = await readManifestCar(st.outPath, ref.rootCid);
    assert.deepEqual(shardIndex(manifest, pages, 1234), st.blocks.get(1234));
    assert.equal(manifestShard(manifest, pages, 2999).carCid, st.shards[2999]!.carCid);
    assert.ok(pages.get(ref.rootCid)!.length < 4096, 'the root block stays small');
  });

  it('reads a manifest of the old layout, every shard inline in its root', async () => {
    const st = fakeStaging(40, () => 3);
    const ref = await writeLegacyManifest(header, st.shards, st.filesPath, st.outPath, 1 << 30);
    const { manifest, pages } = await readManifestCar(st.outPath, ref.rootCid);
    assert.equal(manifest.version, 1);
    assert.equal(shardCount(manifest), 40);
    const lookup = new ShardLookup(manifest, pages);
    for (const i of [0, 17, 39]) {
      assert.equal(manifestShard(manifest, pages, i).carCid, st.shards[i]!.carCid);
      assert.equal(lookup.get(i).pieceCid, st.shards[i]!.pieceCid);
      assert.deepEqual(shardIndex(manifest, pages, i), st.blocks.get(i));
    }
    assert.deepEqual([...manifestFiles(manifest, pages)], st.files);
    assert.equal([...manifestShards(manifest, pages)].length, 40);
  });

  it('fails with IntegrityError when a manifest block on disk no longer matches its CID', async () => {
    const st = fakeStaging(20, () => 2);
    const ref = await writeManifest(header, st.shards, st.filesPath, st.outPath, 1 << 30, {
      layout: { shardsPerPage: 4, linksPerNode: 2 },
    });
    const { manifest, pages } = await readManifestCar(st.outPath, ref.rootCid);
    // Flip a byte in the last block of the CAR (a shard-list node or page).
    const fd = fs.openSync(st.outPath, 'r+');
    const size = fs.fstatSync(fd).size;
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, size - 3);
    b[0] = b[0]! ^ 0xff;
    fs.writeSync(fd, b, 0, 1, size - 3);
    fs.closeSync(fd);
    assert.throws(
      () => [...manifestShards(manifest, pages)],
      (e: unknown) => e instanceof Error && e.name === 'IntegrityError',
    );
  });
});
