/**
 * Partial and parallel restore from a multi-shard archive on real local providers (no Temporal):
 * a file or a directory prefix comes back byte-identical reading fewer shards than a full restore,
 * a full restore is byte-identical with a bounded number of shards on disk, a corrupt replica of a
 * needed shard is skipped for a good one, and an unknown path is a typed error.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { CarIndexer } from '@ipld/car/indexer';
import { LocalProvider } from '../../../activities/providers/local.js';
import type { StorageProvider } from '../../../activities/providers/provider.js';
import { restoreDataset } from '../../../activities/restore/restore.js';
import { bytesOf, readTree, tmpDir } from '../../helpers/env.js';
import { archiveToLocal, type LocalArchive } from '../../helpers/local-archive.js';

const MiB = 1024 * 1024;

/** A provider that records the piece (and the offset) of every read, passing everything through. */
function counting(p: StorageProvider, reads: string[], offsets: [string, string, number][] = []): StorageProvider {
  return new Proxy(p, {
    get(target, key) {
      const v = Reflect.get(target, key, target) as unknown;
      if (key === 'readRange') {
        return (piece: { pieceCid: string }, ...rest: unknown[]) => {
          reads.push(piece.pieceCid);
          offsets.push([p.id, piece.pieceCid, (rest[0] as { offset?: number } | undefined)?.offset ?? 0]);
          return (v as (...a: unknown[]) => unknown).call(target, piece, ...rest);
        };
      }
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

type Archive = LocalArchive;

/** Fresh provider objects on the archive's directories, counting reads. */
function providersOf(a: Archive, reads: string[] = [], offsets: [string, string, number][] = []): StorageProvider[] {
  return a.roots.map((root, i) => counting(new LocalProvider(i === 0 ? 'a' : 'b', root), reads, offsets));
}

const shardReads = (a: Archive, reads: string[]) =>
  new Set(reads.filter((r) => a.shards.some((s) => s.pieceCid === r))).size;

function expectTree(a: Archive, target: string, keep: (p: string) => boolean): void {
  const want = new Map([...readTree(a.src)].filter(([p]) => keep(p)));
  const got = readTree(target);
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [p, bytes] of want) assert.ok(got.get(p)!.equals(bytes), `${p} differs`);
}

describe('partial and parallel restore', () => {
  let a: Archive;
  before(async () => {
    const files: Record<string, Buffer | string> = {
      'model/config.json': '{"layers": 2}',
      'model/weights.bin': bytesOf(5 * MiB + 17, 'weights'),
      'readme.md': 'hello',
      'data/test/a.txt': 'a',
      'data/test/b.txt': 'b',
      'zz/last.bin': bytesOf(MiB + MiB / 2, 'last'),
    };
    for (let i = 0; i < 6; i++) files[`data/train/part-${i}.bin`] = bytesOf(700 * 1024 + i, `train-${i}`);
    for (let i = 0; i < 10; i++) files[`data/bulk/${i}.bin`] = bytesOf(MiB, `bulk-${i}`);
    a = await archiveToLocal(files, 2 * MiB, { datasetId: 'partial' });
    assert.ok(a.shards.length >= 10, `${a.shards.length} shards`);
  });

  it('restores the whole tree byte-identical, reading every shard once and staging none on disk', async () => {
    const target = tmpDir('pv-full-');
    const reads: string[] = [];
    let staged = 0;
    let progressed = 0;
    const work = () => fs.readdirSync(target).filter((n) => n.startsWith('.provenant-restore-'));
    const summary = await restoreDataset({
      manifestCid: a.manifestCid,
      target,
      force: false,
      providers: providersOf(a, reads),
      parallelReads: 1,
      onProgress: () => {
        progressed++;
        for (const w of work()) staged += fs.readdirSync(path.join(target, w)).filter((n) => /^shard-/.test(n)).length;
      },
    });
    expectTree(a, target, () => true);
    assert.equal(summary.shards, a.shards.length);
    assert.equal(summary.shardsTotal, a.shards.length);
    assert.equal(shardReads(a, reads), a.shards.length);
    assert.equal(reads.length, a.shards.length + 1, 'each shard and the manifest read once');
    assert.ok(progressed > 0);
    assert.equal(staged, 0, 'no shard staged on disk');
    assert.deepEqual(work(), [], 'work directory removed');
  });

  it('restores a whole tree with several shards and files in flight byte-identical', async () => {
    const target = tmpDir('pv-full-par-');
    const summary = await restoreDataset({
      manifestCid: a.manifestCid,
      target,
      force: false,
      providers: providersOf(a),
      parallelReads: 4,
    });
    expectTree(a, target, () => true);
    assert.equal(summary.files, [...readTree(a.src).keys()].length);
  });

  it('restores one file, reading only the shard that holds it', async () => {
    const target = tmpDir('pv-one-');
    const reads: string[] = [];
    const summary = await restoreDataset({
      manifestCid: a.manifestCid,
      target,
      force: false,
      providers: providersOf(a, reads),
      paths: ['model/config.json'],
    });
    expectTree(a, target, (p) => p === 'model/config.json');
    assert.equal(summary.files, 1);
    assert.equal(shardReads(a, reads), 1);
  });

  it('restores a file spread over several shards byte-identical', async () => {
    const target = tmpDir('pv-split-');
    const reads: string[] = [];
    const summary = await restoreDataset({
      manifestCid: a.manifestCid,
      target,
      force: false,
      providers: providersOf(a, reads),
      paths: ['./model/weights.bin'],
    });
    expectTree(a, target, (p) => p === 'model/weights.bin');
    assert.ok(summary.shards >= 3 && summary.shards < a.shards.length, `${summary.shards} shards`);
  });

  it('restores directory prefixes and files together, reading fewer shards than a full restore', async () => {
    const target = tmpDir('pv-prefix-');
    const reads: string[] = [];
    const summary = await restoreDataset({
      manifestCid: a.manifestCid,
      target,
      force: false,
      providers: providersOf(a, reads),
      paths: ['data/train/', 'readme.md', 'data/test'],
    });
    expectTree(a, target, (p) => p.startsWith('data/train/') || p.startsWith('data/test/') || p === 'readme.md');
    assert.equal(summary.files, 9);
    assert.ok(shardReads(a, reads) < a.shards.length, `${shardReads(a, reads)} of ${a.shards.length} shards read`);
    assert.equal(shardReads(a, reads), summary.shards);
  });

  it('fails with PathNotInArchiveError for a path that is neither a file nor a directory of the archive, writing nothing', async () => {
    for (const paths of [['no/such/file'], ['data/tr'], ['readme.md', 'model/weights']]) {
      const target = tmpDir('pv-unknown-');
      const reads: string[] = [];
      await assert.rejects(
        restoreDataset({ manifestCid: a.manifestCid, target, force: false, providers: providersOf(a, reads), paths }),
        (e: unknown) => e instanceof Error && e.name === 'PathNotInArchiveError',
        paths.join(','),
      );
      assert.deepEqual(fs.readdirSync(target), []);
      assert.equal(shardReads(a, reads), 0, 'no shard read');
    }
  });

  it('skips a corrupt replica of a needed shard for the good copy on the next provider', async () => {
    const target = tmpDir('pv-corrupt-');
    // The shard holding the last file, corrupted on provider a only.
    const shard = a.shards[a.shards.length - 1]!;
    const file = path.join(a.roots[0]!, 'pieces', `${shard.pieceCid}.car`);
    const good = fs.readFileSync(file);
    const bad = Buffer.from(good);
    bad[bad.length - 10] = bad[bad.length - 10]! ^ 0xff;
    fs.writeFileSync(file, bad);
    try {
      const summary = await restoreDataset({
        manifestCid: a.manifestCid,
        target,
        force: false,
        providers: providersOf(a),
        paths: ['zz'],
      });
      expectTree(a, target, (p) => p.startsWith('zz/'));
      assert.deepEqual(
        summary.badReplicas.map((b) => [b.providerId, b.pieceCid]),
        [['a', shard.pieceCid]],
      );
      assert.equal(summary.sources.b, 1);
    } finally {
      fs.writeFileSync(file, good);
    }
  });

  it('fails with NoHealthyReplicaError when every replica of a needed shard is corrupt, leaving the target empty', async () => {
    const target = tmpDir('pv-allbad-');
    const shard = a.shards[0]!;
    const files = a.roots.map((r) => path.join(r, 'pieces', `${shard.pieceCid}.car`));
    const good = fs.readFileSync(files[0]!);
    const bad = Buffer.from(good);
    bad[bad.length - 10] = bad[bad.length - 10]! ^ 0xff;
    for (const f of files) fs.writeFileSync(f, bad);
    try {
      await assert.rejects(
        restoreDataset({ manifestCid: a.manifestCid, target, force: false, providers: providersOf(a) }),
        (e: unknown) => e instanceof Error && e.name === 'NoHealthyReplicaError',
      );
      assert.deepEqual(fs.readdirSync(target), []);
    } finally {
      for (const f of files) fs.writeFileSync(f, good);
    }
  });

  it('reads shards as many small ranged reads at once, files spanning reads coming back byte-identical', async () => {
    const target = tmpDir('pv-ranged-');
    const reads: string[] = [];
    const summary = await restoreDataset({
      manifestCid: a.manifestCid,
      target,
      force: false,
      providers: providersOf(a, reads),
      parallelReads: 4,
      readBytes: 256 * 1024,
    });
    expectTree(a, target, () => true);
    assert.equal(summary.shards, a.shards.length);
    assert.ok(reads.length > a.shards.length + 1, `${reads.length} reads of ${a.shards.length} shards`);
  });

  it('goes on from the first unchecked block on the next replica when a replica is corrupt mid-shard', async () => {
    const target = tmpDir('pv-resume-');
    const shard = a.shards.find((s, i) => i > 0 && s.blocks >= 2)!;
    const file = path.join(a.roots[0]!, 'pieces', `${shard.pieceCid}.car`);
    const good = fs.readFileSync(file);
    const bad = Buffer.from(good);
    bad[bad.length - 10] = bad[bad.length - 10]! ^ 0xff;
    fs.writeFileSync(file, bad);
    const offsets: [string, string, number][] = [];
    try {
      const summary = await restoreDataset({
        manifestCid: a.manifestCid,
        target,
        force: false,
        providers: providersOf(a, [], offsets),
      });
      expectTree(a, target, () => true);
      assert.deepEqual(
        summary.badReplicas.map((b) => [b.providerId, b.pieceCid]),
        [['a', shard.pieceCid]],
      );
      const fromB = offsets.filter(([id, piece]) => id === 'b' && piece === shard.pieceCid).map(([, , at]) => at);
      assert.equal(fromB.length, 1);
      assert.ok(fromB[0]! > 0, `read from b at ${fromB[0]}`);
    } finally {
      fs.writeFileSync(file, good);
    }
  });

  it('takes a replica whose CAR framing differs from the block index for corrupt, though every block matches', async () => {
    const target = tmpDir('pv-framing-');
    const shard = a.shards.find((s) => s.blocks >= 2)!;
    const file = path.join(a.roots[0]!, 'pieces', `${shard.pieceCid}.car`);
    const good = fs.readFileSync(file);
    const indexer = await CarIndexer.fromBytes(good);
    const offsets: number[] = [];
    for await (const e of indexer) offsets.push(e.blockOffset);
    const bad = Buffer.from(good);
    // The last byte of the second section's CID: its data (and its hash) stay intact.
    bad[offsets[1]! - 1] = bad[offsets[1]! - 1]! ^ 0xff;
    fs.writeFileSync(file, bad);
    try {
      const summary = await restoreDataset({
        manifestCid: a.manifestCid,
        target,
        force: false,
        providers: providersOf(a),
      });
      expectTree(a, target, () => true);
      assert.deepEqual(
        summary.badReplicas.map((b) => [b.providerId, b.pieceCid]),
        [['a', shard.pieceCid]],
      );
    } finally {
      fs.writeFileSync(file, good);
    }
  });
});
