/**
 * Restore with the larger files hashed on worker threads: big files whose leaves come from
 * several reads at once, landing out of order, come back byte-identical with threads and without;
 * a corrupt leaf in the middle of a big file (its hash thread part way through it) resumes on the
 * good replica; when every replica is corrupt the restore fails, leaving the target empty.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { LocalProvider } from '../../../activities/providers/local.js';
import { restoreDataset } from '../../../activities/restore/restore.js';
import { bytesOf, readTree, tmpDir } from '../../helpers/env.js';
import { archiveToLocal, type LocalArchive } from '../../helpers/local-archive.js';

const MiB = 1024 * 1024;

type Archive = LocalArchive;

const providersOf = (a: Archive) => a.roots.map((root, i) => new LocalProvider(i === 0 ? 'a' : 'b', root));

function expectTree(a: Archive, target: string): void {
  const want = readTree(a.src);
  const got = readTree(target);
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
  for (const [p, bytes] of want) assert.ok(got.get(p)!.equals(bytes), `${p} differs`);
}

/** Flips a byte in the middle of the largest shard on the given replicas; returns the undo. */
function corrupt(a: Archive, replicas: number[]): () => void {
  const shard = a.shards.reduce((x, y) => (y.carBytes > x.carBytes ? y : x));
  const undo: (() => void)[] = [];
  for (const i of replicas) {
    const file = path.join(a.roots[i]!, 'pieces', `${shard.pieceCid}.car`);
    const good = fs.readFileSync(file);
    const bad = Buffer.from(good);
    const at = Math.floor(bad.length / 2);
    bad[at] = bad[at]! ^ 0xff;
    fs.writeFileSync(file, bad);
    undo.push(() => fs.writeFileSync(file, good));
  }
  return () => undo.forEach((u) => u());
}

describe('restore with hash threads', () => {
  let a: Archive;
  before(async () => {
    a = await archiveToLocal(
      {
        'big/one.bin': bytesOf(9 * MiB + 12345, 'one'),
        'big/two.bin': bytesOf(6 * MiB + 3, 'two'),
        'small/a.txt': 'a',
        'small/b.bin': bytesOf(100 * 1024, 'b'),
        'small/empty': '',
      },
      24 * MiB,
      { datasetId: 'hash-threads' },
    );
  });

  for (const hashThreads of [2, 1, 0]) {
    it(`restores big files read 1 MiB at a time, 4 reads at once, byte-identical (${hashThreads} hash threads)`, async () => {
      const target = tmpDir('pv-ht-');
      const summary = await restoreDataset({
        manifestCid: a.manifestCid,
        target,
        force: false,
        providers: providersOf(a),
        parallelReads: 4,
        readBytes: MiB,
        hashThreads,
      });
      expectTree(a, target);
      assert.equal(summary.files, 5);
      assert.deepEqual(summary.badReplicas, []);
    });
  }

  it('resumes on the good replica from a corrupt leaf in the middle of a big file being hashed on a thread', async () => {
    const undo = corrupt(a, [0]);
    try {
      const target = tmpDir('pv-ht-bad-');
      const summary = await restoreDataset({
        manifestCid: a.manifestCid,
        target,
        force: false,
        providers: providersOf(a),
        parallelReads: 4,
        readBytes: 2 * MiB,
      });
      expectTree(a, target);
      assert.deepEqual(
        summary.badReplicas.map((b) => b.providerId),
        ['a'],
      );
    } finally {
      undo();
    }
  });

  it('fails with NoHealthyReplicaError when every replica holds the corrupt leaf, leaving the target empty', async () => {
    const undo = corrupt(a, [0, 1]);
    try {
      const target = tmpDir('pv-ht-allbad-');
      await assert.rejects(
        restoreDataset({
          manifestCid: a.manifestCid,
          target,
          force: false,
          providers: providersOf(a),
          parallelReads: 4,
          readBytes: 2 * MiB,
        }),
        (e: unknown) => e instanceof Error && e.name === 'NoHealthyReplicaError',
      );
      assert.deepEqual(fs.readdirSync(target), []);
    } finally {
      undo();
    }
  });
});
