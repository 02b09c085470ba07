/**
 * The pack's write strategy: chosen from measurements (the faster of direct and buffered writes
 * in the staging directory), buffered where the filesystem refuses O_DIRECT (ramfs), overridable, cached
 * per filesystem, and recorded in the pack's result.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { ALIGN, probeDirect } from '../../../activities/direct-io.js';
import { scanLocal } from '../../../activities/ingest/scan.js';
import { runPack } from '../../../activities/pack/packer.js';
import {
  chooseWriteStrategy,
  measureWrite,
  pickStrategy,
  writeStrategyFor,
  type WriteProbe,
  type WriteStrategy,
} from '../../../activities/pack/write-strategy.js';
import { bytesOf, REQUIRE_ALL, tmpDir, writeTree } from '../../helpers/env.js';

const MiB = 1024 * 1024;
const probe = (strategy: WriteStrategy, mibps: number): WriteProbe => ({
  strategy,
  bytes: 64 * MiB,
  secs: 64 / mibps,
  mibps,
});

/**
 * A directory on a filesystem that refuses O_DIRECT, or undefined. tmpfs takes O_DIRECT since
 * Linux 6.6, ramfs does not: a ramfs is mounted (as root), else /dev/shm serves where it refuses.
 */
function noDirectDir(mounts: string[]): string | undefined {
  const refuses = (d: string) => probeDirect(d, new Uint8Array(2 * ALIGN)) === undefined;
  const dir = tmpDir('pv-ramfs-');
  if (spawnSync('mount', ['-t', 'ramfs', 'ramfs', dir], { stdio: 'ignore' }).status === 0) {
    mounts.push(dir);
    if (refuses(dir)) return dir;
  }
  try {
    const shm = fs.mkdtempSync('/dev/shm/pv-test-');
    if (refuses(shm)) return shm;
    fs.rmSync(shm, { recursive: true, force: true });
  } catch {
    /* no /dev/shm */
  }
  return undefined;
}

function skipOrFail(t: TestContext, why: string): void {
  if (REQUIRE_ALL) assert.fail(why);
  t.skip(why);
}

/** Files the probes might leave behind. */
const leftovers = (dir: string) =>
  fs.readdirSync(dir).filter((f) => f.startsWith('.write-probe') || f.startsWith('.direct-probe'));

describe('pack write strategy', () => {
  const made: string[] = [];
  const mounts: string[] = [];
  after(() => {
    for (const d of mounts) spawnSync('umount', [d], { stdio: 'ignore' });
    for (const d of [...made, ...mounts]) fs.rmSync(d, { recursive: true, force: true });
  });

  it('picks direct I/O when its probe was faster', () => {
    assert.equal(pickStrategy([probe('direct', 600), probe('buffered', 350)]), 'direct');
  });

  it('picks buffered writes when their probe was faster', () => {
    assert.equal(pickStrategy([probe('direct', 170), probe('buffered', 900)]), 'buffered');
  });

  it('compares the best run of each strategy', () => {
    assert.equal(
      pickStrategy([probe('direct', 100), probe('buffered', 300), probe('direct', 400), probe('buffered', 200)]),
      'direct',
    );
  });

  it('picks buffered writes when there is no direct probe', () => {
    assert.equal(pickStrategy([probe('buffered', 10)]), 'buffered');
    assert.equal(pickStrategy([]), 'buffered');
  });

  it('falls back to buffered writes without probing on a filesystem that refuses O_DIRECT (ramfs)', async (t) => {
    const dir = noDirectDir(mounts);
    if (!dir) return skipOrFail(t, 'no filesystem that refuses O_DIRECT (ramfs needs root)');
    made.push(dir);
    const choice = await chooseWriteStrategy(dir);
    assert.deepEqual(choice, { strategy: 'buffered', why: 'no-direct', probes: [] });
    await assert.rejects(chooseWriteStrategy(dir, { direct: true }));
    assert.deepEqual(leftovers(dir), []);
  });

  it('measures both strategies where O_DIRECT works, picks the faster, and leaves no scratch file', async (t) => {
    const dir = tmpDir();
    made.push(dir);
    if (probeDirect(dir, new Uint8Array(2 * ALIGN)) === undefined)
      return skipOrFail(t, `direct I/O unavailable in ${dir}`);
    const choice = await chooseWriteStrategy(dir, { probeBytes: 8 * MiB, runs: 1 });
    assert.equal(choice.why, 'measured');
    assert.deepEqual(choice.probes.map((p) => p.strategy).sort(), ['buffered', 'direct']);
    for (const p of choice.probes) {
      assert.equal(p.bytes, 8 * MiB);
      assert.ok(p.secs > 0 && p.mibps > 0, `${p.strategy}: ${p.mibps} MiB/s`);
    }
    assert.equal(choice.strategy, pickStrategy(choice.probes));
    assert.deepEqual(leftovers(dir), []);
  });

  it('writes the measured bytes, including a last write shorter than a block, both ways', async (t) => {
    const dir = tmpDir();
    made.push(dir);
    const strategies: WriteStrategy[] =
      probeDirect(dir, new Uint8Array(2 * ALIGN)) === undefined ? ['buffered'] : ['direct', 'buffered'];
    if (strategies.length === 1 && REQUIRE_ALL) assert.fail(`direct I/O unavailable in ${dir}`);
    for (const s of strategies) {
      const r = await measureWrite(dir, s, 3 * MiB + 100, { writeBytes: MiB, fsyncEveryBytes: 2 * MiB });
      assert.equal(r.strategy, s);
      assert.equal(r.bytes, 3 * MiB + 100);
    }
    assert.deepEqual(leftovers(dir), []);
    if (strategies.length === 1) t.skip(`direct I/O unavailable in ${dir}`);
  });

  it('takes PROVENANT_PACK_IO as an override', async () => {
    const dir = tmpDir();
    made.push(dir);
    const was = process.env.PROVENANT_PACK_IO;
    try {
      process.env.PROVENANT_PACK_IO = 'buffered';
      assert.deepEqual(await writeStrategyFor(dir), { strategy: 'buffered', why: 'override', probes: [] });
    } finally {
      if (was === undefined) delete process.env.PROVENANT_PACK_IO;
      else process.env.PROVENANT_PACK_IO = was;
    }
  });

  it('measures once per filesystem and process', async () => {
    const a = tmpDir();
    const b = tmpDir();
    made.push(a, b);
    const first = writeStrategyFor(a, { probeBytes: 4 * MiB, runs: 1 });
    assert.equal(writeStrategyFor(b), first, 'the same filesystem shares one measurement');
    await first;
  });

  it('records the strategy in the pack result, and packs where O_DIRECT is refused with buffered writes and twins', async (t) => {
    const dir = noDirectDir(mounts);
    if (!dir) return skipOrFail(t, 'no filesystem that refuses O_DIRECT (ramfs needs root)');
    made.push(dir);
    const src = path.join(dir, 'src');
    writeTree(src, { 'a.bin': bytesOf(2 * MiB + 5, 'ws'), 'b.txt': 'b' });
    const stage = path.join(dir, 'stage');
    const listingPath = path.join(dir, 'listing.ndjson');
    await scanLocal(src, listingPath);
    const r = await runPack({ sourceRoot: src, listingPath, dir: stage, shardBytes: 8 * MiB, twins: 1 });
    assert.equal(r.io?.strategy, 'buffered');
    assert.equal(r.io?.why, 'no-direct');
    assert.deepEqual(
      fs
        .readdirSync(stage)
        .filter((f) => f.startsWith('shard-'))
        .sort(),
      ['shard-000000.car', 'shard-000000.car.idx', 'shard-000000.car.twin1'],
    );
    assert.ok(
      fs
        .readFileSync(path.join(stage, 'shard-000000.car'))
        .equals(fs.readFileSync(path.join(stage, 'shard-000000.car.twin1'))),
    );
  });
});
