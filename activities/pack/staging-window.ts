/**
 * Windowed staging: the pack runs at most `shards` shards ahead of replication. Before shard
 * k + W is opened, shard k and every shard before it must be gone from staging (the shard file
 * and its twins): the puts of its copies took them (a local provider on this filesystem moves a
 * file in) or deleted them once the last copy was stored. Staging then holds at most W shards,
 * about W × shardBytes × (1 + twins) bytes, whatever the dataset's size.
 *
 * This runs on the pack thread, which blocks here; the activity's thread keeps heartbeating and
 * ends the thread on cancellation. While it waits, the shards still staged are announced again
 * every few seconds, so that a lost announcement cannot stall the pack (the workflow drops repeats).
 */
import fs from 'node:fs';
import path from 'node:path';
import { twinOf } from './shard-hasher.js';
import type { ShardInfo } from './shard-writer.js';

/** How often the shards a waiting pack waits on are announced again. */
export const REANNOUNCE_MS = 3000;
/** How often a waiting pack looks whether its oldest shards are gone. */
const POLL_MS = 50;

const sleeper = new Int32Array(new SharedArrayBuffer(4));
const sleep = (ms: number) => void Atomics.wait(sleeper, 0, 0, ms);

export class StagingWindow {
  /** Every shard below this one is known to be gone from staging. */
  private gone = 0;

  constructor(
    private readonly dir: string,
    /** W: shards staged at most (the one being opened included). */
    readonly shards: number,
    private readonly twins: number,
    /** A closed shard by index (all shards up to the one waited on are closed and reported). */
    private readonly shard: (index: number) => ShardInfo,
    /** Announce a closed shard (again) to the workflow. */
    private readonly announce: (info: ShardInfo) => void,
  ) {}

  /** Files of shard `index` still in staging. */
  private staged(index: number): boolean {
    const file = path.join(this.dir, this.shard(index).file);
    if (fs.existsSync(file)) return true;
    for (let t = 1; t <= this.twins; t++) if (fs.existsSync(twinOf(file, t))) return true;
    return false;
  }

  /** Blocks until every shard before `next - W + 1` is gone, so that opening `next` keeps W shards staged at most. */
  waitBefore(next: number): void {
    const upTo = next - this.shards;
    let announced = Date.now();
    for (;;) {
      while (this.gone <= upTo && !this.staged(this.gone)) this.gone++;
      if (this.gone > upTo) return;
      if (Date.now() - announced >= REANNOUNCE_MS) {
        for (let i = this.gone; i <= upTo; i++) if (this.staged(i)) this.announce(this.shard(i));
        announced = Date.now();
      }
      sleep(POLL_MS);
    }
  }
}
