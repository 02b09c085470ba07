/**
 * The two-thread shard pipeline: piece CIDs equal data-segment's on the shard files themselves,
 * CAR CIDs equal the files' sha256, the CommP work split between threads changes nothing, a
 * failure on the hash thread reaches the packer, and a pack killed mid-way resumes to the same
 * shards as an uninterrupted one.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Piece } from '@web3-storage/data-segment';
import { CarIndexer } from '@ipld/car/indexer';
import { CID } from 'multiformats/cid';
import { scanLocal } from '../../../activities/ingest/scan.js';
import { blockIndexName, readBlockIndex } from '../../../activities/pack/block-index.js';
import { carCidFromSha256, cidOf, RAW_CODE } from '../../../activities/pack/cids.js';
import { CHECKPOINT, FILES, runPack } from '../../../activities/pack/packer.js';
import { ALIGN, probeDirect } from '../../../activities/direct-io.js';
import { partialPath, SLOT_BYTES, twinFileName } from '../../../activities/pack/shard-hasher.js';
import { ShardWriter, type ShardInfo } from '../../../activities/pack/shard-writer.js';
import { bytesOf, tmpDir, writeTree } from '../../helpers/env.js';

const MiB = 1024 * 1024;

function checkpointShards(dir: string): ShardInfo[] {
  return (JSON.parse(fs.readFileSync(path.join(dir, CHECKPOINT), 'utf8')) as { shards: ShardInfo[] }).shards;
}

/** Every shard file matches its record: size, CAR CID (sha256) and piece CID (data-segment). */
function assertShardsMatchFiles(dir: string, shards: ShardInfo[]): void {
  for (const s of shards) {
    const bytes = fs.readFileSync(path.join(dir, s.file));
    assert.equal(bytes.length, s.carBytes, `${s.file}: size`);
    assert.equal(s.carCid, carCidFromSha256(crypto.createHash('sha256').update(bytes).digest()), `${s.file}: CAR CID`);
    const piece = Piece.fromPayload(bytes);
    assert.equal(s.pieceCid, piece.toString(), `${s.file}: piece CID`);
    assert.equal(s.paddedPieceBytes, Number(piece.size), `${s.file}: padded size`);
  }
}

/** The block index the writer recorded is what @ipld/car's indexer finds reading the shard back. */
async function assertBlockIndexMatches(dir: string, shards: ShardInfo[]): Promise<void> {
  for (const s of shards) {
    const want: [number, number, string][] = [];
    for await (const e of await CarIndexer.fromIterable(fs.createReadStream(path.join(dir, s.file))))
      want.push([e.blockOffset, e.blockLength, e.cid.toString()]);
    assert.equal(want.length, s.blocks, `${s.file}: block count`);
    assert.deepEqual(readBlockIndex(path.join(dir, blockIndexName(s.file))), want, `${s.file}: block index`);
  }
}

/** Each shard has two twins, byte for byte equal to it, each a file of its own. */
function assertTwinsEqualShards(dir: string, shards: ShardInfo[]): void {
  for (const s of shards) {
    const bytes = fs.readFileSync(path.join(dir, s.file));
    for (const twin of [1, 2]) {
      const file = path.join(dir, twinFileName(s.index, twin));
      assert.ok(fs.readFileSync(file).equals(bytes), `${file}: equals its shard`);
      assert.notEqual(fs.statSync(file).ino, fs.statSync(path.join(dir, s.file)).ino, 'a twin is a file of its own');
    }
  }
}

async function pack(src: string, dir: string, shardBytes: number) {
  const listingPath = path.join(dir, 'listing.ndjson');
  await scanLocal(src, listingPath);
  return runPack({ sourceRoot: src, listingPath, dir, shardBytes });
}

describe('shard pipeline', () => {
  it('gives every shard of a multi-shard dataset the piece CID data-segment computes from the shard file', async () => {
    const root = tmpDir();
    const src = path.join(root, 'src');
    // Shards larger than two ring slots, files split across shards, small files and odd sizes.
    writeTree(src, {
      'big/a.bin': bytesOf(9 * MiB + 123, 'a'),
      'big/b.bin': bytesOf(5 * MiB - 7, 'b'),
      'small/1.txt': 'one',
      'small/2.bin': bytesOf(70 * 1024, 'c'),
      'small/empty': Buffer.alloc(0),
      'c.bin': bytesOf(MiB + 1, 'd'),
    });
    const dir = path.join(root, 'stage');
    const shardBytes = Math.floor(2.5 * SLOT_BYTES);
    const r = await pack(src, dir, shardBytes);
    const shards = checkpointShards(dir);
    assert.ok(r.shards >= 2, `${r.shards} shards`);
    assert.ok(
      shards.some((s) => s.carBytes > 2 * SLOT_BYTES),
      'a shard spans more than two ring slots',
    );
    assert.deepEqual(
      shards.map((s) => s.index),
      shards.map((_, i) => i),
    );
    assertShardsMatchFiles(dir, shards);
    await assertBlockIndexMatches(dir, shards);
  });

  for (const [label, helpWhenQueued] of [
    ['hashes all CommP on the hash thread', Infinity],
    ['hashes CommP batches on the packing thread', 0],
  ] as const) {
    it(`reports shards in order with digests of their bytes when it ${label}`, async () => {
      const dir = tmpDir();
      const infos: ShardInfo[] = [];
      const closed: number[] = [];
      const writer = new ShardWriter<number>(
        dir,
        2 * SLOT_BYTES + 1000,
        0,
        (info, memo) => {
          assert.equal(memo, info.index);
          infos.push(info);
        },
        (i) => {
          closed.push(i);
          return i;
        },
        { helpWhenQueued },
      );
      await writer.ready();
      for (let i = 0; i < 30; i++) {
        const data = bytesOf(i % 3 === 0 ? 1000 + i : MiB - i, `blk${i}`);
        const cid = cidOf(RAW_CODE, crypto.createHash('sha256').update(data).digest());
        if (writer.wouldOverflow(cid, data)) writer.close();
        writer.write(cid, data);
      }
      writer.finish();
      assert.deepEqual(
        closed,
        infos.map((s) => s.index),
      );
      assert.ok(infos.length >= 3);
      assert.deepEqual(
        fs.readdirSync(dir).filter((f) => f.endsWith('.partial')),
        [],
      );
      assertShardsMatchFiles(dir, infos);
      await assertBlockIndexMatches(dir, infos);
    });
  }

  it('writes twins of every shard, byte for byte, through the page cache and with direct I/O, and the same shards both ways', async (t) => {
    const root = tmpDir();
    const src = path.join(root, 'src');
    writeTree(src, { 'a.bin': bytesOf(7 * MiB + 333, 'ta'), 'b.bin': bytesOf(3 * MiB + 1, 'tb'), 'c.txt': 'small' });
    const listingPath = path.join(root, 'listing.ndjson');
    await scanLocal(src, listingPath);
    const shardBytes = 2 * SLOT_BYTES + 5000;
    const buffered = path.join(root, 'buffered');
    fs.mkdirSync(buffered);
    fs.copyFileSync(listingPath, path.join(buffered, 'listing.ndjson'));
    await runPack({
      sourceRoot: src,
      listingPath: path.join(buffered, 'listing.ndjson'),
      dir: buffered,
      shardBytes,
      directIo: false,
      twins: 2,
    });
    const reference = checkpointShards(buffered);
    assert.ok(reference.length >= 2, `${reference.length} shards`);
    assertShardsMatchFiles(buffered, reference);
    assertTwinsEqualShards(buffered, reference);

    const dir = path.join(root, 'direct');
    fs.mkdirSync(dir);
    if (probeDirect(dir, new Uint8Array(2 * ALIGN)) === undefined) {
      if (process.env.PROVENANT_REQUIRE_ALL) assert.fail(`direct I/O unavailable in ${dir}`);
      return t.skip(`direct I/O unavailable in ${dir}`);
    }
    fs.copyFileSync(listingPath, path.join(dir, 'listing.ndjson'));
    await runPack({
      sourceRoot: src,
      listingPath: path.join(dir, 'listing.ndjson'),
      dir,
      shardBytes,
      directIo: true,
      twins: 2,
    });
    const shards = checkpointShards(dir);
    assert.deepEqual(shards, reference);
    assertShardsMatchFiles(dir, shards);
    for (const s of shards) {
      assert.ok(
        fs.readFileSync(path.join(dir, s.file)).equals(fs.readFileSync(path.join(buffered, s.file))),
        `${s.file}: same bytes direct and buffered`,
      );
    }
    assertTwinsEqualShards(dir, shards);
    assert.deepEqual(
      fs.readdirSync(dir).filter((f) => f.endsWith('.partial') || f.startsWith('.direct-probe')),
      [],
    );
  });

  it('removes the twins of unfinished shards when a pack is abandoned', async () => {
    const dir = tmpDir();
    if (probeDirect(dir, new Uint8Array(2 * ALIGN)) === undefined) {
      if (process.env.PROVENANT_REQUIRE_ALL) assert.fail(`direct I/O unavailable in ${dir}`);
      return;
    }
    const writer = new ShardWriter(
      dir,
      64 * MiB,
      0,
      () => {},
      () => undefined,
      { direct: true, twins: 1 },
    );
    await writer.ready();
    // More than a ring slot: the hash thread starts on the shard (and its twin) while it is open.
    for (let i = 0; i < 6; i++) {
      const data = bytesOf(MiB + i, `ab${i}`);
      writer.write(cidOf(RAW_CODE, crypto.createHash('sha256').update(data).digest()), data);
    }
    for (const deadline = Date.now() + 10_000; !fs.existsSync(partialPath(dir, 0, 1)) && Date.now() < deadline;)
      await new Promise((r) => setTimeout(r, 5));
    assert.ok(fs.existsSync(partialPath(dir, 0, 1)), 'the twin is written while the shard is');
    writer.abort();
    assert.deepEqual(
      fs.readdirSync(dir).filter((f) => f.startsWith('shard-') && !f.endsWith('.idx.partial')),
      [],
    );
  });

  it('surfaces a failure of the hash thread on the packing thread', async () => {
    const dir = tmpDir();
    const writer = new ShardWriter(dir, 64 * MiB, 0, () => {});
    await writer.ready();
    const data = bytesOf(1000, 'x');
    writer.write(cidOf(RAW_CODE, crypto.createHash('sha256').update(data).digest()), data);
    // The hash thread cannot rename the shard into place once its file is gone.
    fs.rmSync(path.join(dir, 'shard-000000.car.partial'));
    assert.throws(
      () => writer.finish(),
      (err: Error & { code?: string }) => err.name === 'ShardHashError' && err.code === 'ENOENT',
    );
    writer.abort();
  });

  it('resumes a pack killed mid-way to the same shards, files and root as an uninterrupted pack', async () => {
    const root = tmpDir();
    const src = path.join(root, 'src');
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 6; i++) files[`part-${i}.bin`] = bytesOf(3 * MiB + 1000 * i, `p${i}`);
    for (let i = 0; i < 50; i++) files[`many/f${i}.txt`] = bytesOf(100 + i, `s${i}`);
    writeTree(src, files);
    const shardBytes = MiB + 4096;

    const clean = path.join(root, 'clean');
    const reference = await pack(src, clean, shardBytes);

    const dir = path.join(root, 'killed');
    const listingPath = path.join(dir, 'listing.ndjson');
    await scanLocal(src, listingPath);
    const packer = new URL('../../../activities/pack/packer.js', import.meta.url).href;
    const script = `import { runPack } from ${JSON.stringify(packer)};
      await runPack(${JSON.stringify({ sourceRoot: src, listingPath, dir, shardBytes })});`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    const deadline = Date.now() + 60_000;
    for (;;) {
      const done = fs.existsSync(path.join(dir, CHECKPOINT)) && checkpointShards(dir).length >= 4;
      if (done) break;
      assert.ok(Date.now() < deadline, 'the child never checkpointed 4 shards');
      await new Promise((r) => setTimeout(r, 2));
    }
    child.kill('SIGKILL');
    await exited;
    const kept = checkpointShards(dir).length;
    assert.ok(kept < reference.shards, `killed after ${kept} of ${reference.shards} shards: too late to test a resume`);

    const resumed = await runPack({ sourceRoot: src, listingPath, dir, shardBytes });
    assert.equal(resumed.resumedFromShard, kept);
    assert.equal(resumed.rootCid, reference.rootCid);
    assert.equal(resumed.shards, reference.shards);
    assert.deepEqual(checkpointShards(dir), checkpointShards(clean));
    assert.equal(fs.readFileSync(path.join(dir, FILES), 'utf8'), fs.readFileSync(path.join(clean, FILES), 'utf8'));
    for (const s of checkpointShards(dir)) {
      assert.ok(
        fs.readFileSync(path.join(dir, s.file)).equals(fs.readFileSync(path.join(clean, s.file))),
        `${s.file} bytes`,
      );
    }
    await assertBlockIndexMatches(dir, checkpointShards(dir));
    assert.ok(CID.parse(resumed.rootCid));
  });
});
