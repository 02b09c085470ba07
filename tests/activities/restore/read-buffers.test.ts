/**
 * The chunk buffers a restore lends its providers (ReadBuffers in activities/restore/restore.ts,
 * ChunkBuffers in activities/providers/provider.ts): a buffer is handed out again only when nothing
 * holds any part of it; the local provider reads into them; and a restore of many one-leaf files
 * (the case where a buffer reused too early would go unseen: such a file's digest is its leaf's,
 * checked in memory before the write) comes back byte-identical while the buffers are reused.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { LocalProvider } from '../../../activities/providers/local.js';
import type { ChunkBuffers, RangeOptions, StorageProvider } from '../../../activities/providers/provider.js';
import { ReadBuffers, restoreDataset } from '../../../activities/restore/restore.js';
import { bytesOf, readTree, tmpDir } from '../../helpers/env.js';
import { archiveToLocal, localProviderId } from '../../helpers/local-archive.js';

const MiB = 1024 * 1024;

describe('chunk buffers lent to providers', () => {
  it('hands a buffer out again only once every hold on it is released', () => {
    const b = new ReadBuffers(64, 4);
    const one = b.take();
    assert.equal(one.length, 64);
    const partA = one.subarray(0, 10);
    const partB = one.subarray(10, 30);
    b.hold(partA);
    b.hold(partB);
    b.release(one); // the reader moved past the chunk: the parts still hold it
    assert.notEqual(b.take().buffer, one.buffer, 'a held buffer is not handed out');
    b.release(partA);
    assert.notEqual(b.take().buffer, one.buffer, 'one part still holds it');
    b.release(partB);
    b.release(partB); // a release too many is ignored, not a second free entry
    const again = b.take();
    assert.equal(again.buffer, one.buffer, 'free once nothing holds it');
    assert.equal(b.reused, 1);
    assert.notEqual(b.take().buffer, one.buffer, 'handed out once, not twice');
  });

  it('tracks at most its maximum and forgets the rest', () => {
    const b = new ReadBuffers(16, 2);
    const bufs = [b.take(), b.take(), b.take()];
    for (const x of bufs) b.release(x);
    const seen = new Set([b.take().buffer, b.take().buffer, b.take().buffer]);
    assert.equal(b.reused, 2, 'two tracked buffers came back; the third was never tracked');
    assert.ok(seen.has(bufs[0]!.buffer) && seen.has(bufs[1]!.buffer));
    assert.ok(!seen.has(bufs[2]!.buffer));
  });

  const files: Record<string, Buffer> = {};
  let local: LocalProvider;
  let manifestCid: string;
  let shardFile: { file: string; pieceCid: string };
  before(async () => {
    for (let i = 0; i < 120; i++) files[`small/${String(i).padStart(3, '0')}.bin`] = bytesOf(1 + i * 8191, `s-${i}`);
    for (let i = 0; i < 4; i++) files[`big/${i}.bin`] = bytesOf(3 * MiB + i * 4097, `b-${i}`);
    const a = await archiveToLocal(files, 4 * MiB, { datasetId: 'lend', providers: 1 });
    local = new LocalProvider(localProviderId(0), a.roots[0]!);
    manifestCid = a.manifestCid;
    shardFile = { file: path.join(a.dir, a.shards[0]!.file), pieceCid: a.shards[0]!.pieceCid };
  });

  it('local provider: reads a range into lent buffers, a prefix of one per chunk', async () => {
    const data = fs.readFileSync(shardFile.file);
    const taken: Uint8Array[] = [];
    const given: Uint8Array[] = [];
    const lend: ChunkBuffers = {
      take: () => {
        const b = Buffer.allocUnsafe(MiB);
        taken.push(b);
        return b;
      },
      give: (b) => given.push(b),
    };
    const offset = 1000;
    const length = 2 * MiB + 77;
    const chunks: Buffer[] = [];
    const o: RangeOptions = { offset, length, buffers: lend };
    for await (const c of local.readRange({ pieceCid: shardFile.pieceCid }, o)) chunks.push(c as Buffer);
    assert.ok(Buffer.concat(chunks).equals(data.subarray(offset, offset + length)));
    assert.equal(chunks.length, 3);
    chunks.forEach((c, i) => assert.equal(c.buffer, taken[i]!.buffer, `chunk ${i} is a taken buffer`));
    assert.equal(given.length, 0);
  });

  it('a restore of many one-leaf files reuses its buffers and comes back byte-identical', async () => {
    // Watch the buffers the restore lends: how often one is handed out again.
    const handedOut = new Map<ArrayBufferLike, number>();
    const watching = new Proxy(local, {
      get(target, key) {
        const v = Reflect.get(target, key, target) as unknown;
        if (key !== 'readRange') return typeof v === 'function' ? (v as () => unknown).bind(target) : v;
        return (piece: { pieceCid: string }, o: RangeOptions = {}) => {
          const lent = o.buffers;
          const buffers: ChunkBuffers | undefined = lent && {
            take: () => {
              const b = lent.take();
              handedOut.set(b.buffer, (handedOut.get(b.buffer) ?? 0) + 1);
              return b;
            },
            give: (b) => lent.give(b),
          };
          return target.readRange(piece, { ...o, ...(buffers ? { buffers } : {}) });
        };
      },
    }) as StorageProvider;
    const target = tmpDir('pv-lend-out-');
    const summary = await restoreDataset({
      manifestCid,
      target,
      force: false,
      providers: [watching],
      readBytes: 2 * MiB,
      parallelReads: 2,
    });
    assert.equal(summary.files, Object.keys(files).length);
    const got = readTree(target);
    assert.deepEqual([...got.keys()].sort(), Object.keys(files).sort());
    for (const [p, bytes] of Object.entries(files)) assert.ok(got.get(p)!.equals(bytes), `${p} differs`);
    const reuses = [...handedOut.values()].reduce((n, k) => n + k - 1, 0);
    assert.ok(handedOut.size > 0, 'the restore lent buffers');
    assert.ok(reuses > handedOut.size, `buffers handed out again ${reuses} times (${handedOut.size} buffers)`);
  });
});
