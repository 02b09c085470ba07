/**
 * One measurement in a process of its own, so that its peak RSS is its own:
 * `node dist/bench/child.js <mode> <json>` prints one JSON line.
 *
 *   scan         scan a tree into a listing (as the scan activity does)
 *   pack         pack a listing in the worker thread exactly as the pack activity does (it scans
 *                first, in this process, when no listing is given)
 *   archive      scan, pack, then put every shard on two local providers the way the archive
 *                workflow does (4 shards at a time, replicas one after the other); with
 *                `overlap`, each shard is put as soon as the packer reports it instead
 *   datasegment  @web3-storage/data-segment's streaming CommP hasher over the first bytes of a
 *                file, and ours over the same bytes
 */
import fs from 'node:fs';
import path from 'node:path';
import * as Multihash from '@web3-storage/data-segment/multihash';
import { CID } from 'multiformats/cid';
import { scanLocal } from '../activities/ingest/scan.js';
import { commpOf } from '../activities/pack/commp.js';
import { packInThread } from '../activities/pack/index.js';
import { readCheckpoint, type PackResult } from '../activities/pack/packer.js';
import type { ShardInfo } from '../activities/pack/shard-writer.js';
import { LocalProvider } from '../activities/providers/local.js';

export interface ScanRun {
  scanSecs: number;
  files: number;
  maxRssKiB: number;
}

export interface PackRun {
  scanSecs: number;
  packSecs: number;
  result: PackResult;
  maxRssKiB: number;
  cpuSecs: number;
}

export interface ArchiveRun extends PackRun {
  /** Time from the end of packing to the last replica stored. */
  replicateAfterPackSecs: number;
  /** Pack start to last replica stored. */
  archiveSecs: number;
  puts: number;
}

export interface DataSegmentRun {
  bytes: number;
  secs: number;
  pieceCid: string;
  oursPieceCid: string;
}

const PARALLEL_PUTS = 4;

const now = () => performance.now() / 1000;
const cpuSecs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function pack(a: { src: string; stage: string; shardBytes: number; listing?: string }, onShards?: (shards: ShardInfo[]) => void) {
  fs.mkdirSync(a.stage, { recursive: true });
  const listingPath = path.join(a.stage, 'listing.ndjson');
  let t = now();
  if (a.listing) fs.copyFileSync(a.listing, listingPath);
  else await scanLocal(a.src, listingPath);
  const scanSecs = a.listing ? 0 : now() - t;
  t = now();
  const c0 = cpuSecs();
  let seen = 0;
  const result = await packInThread({ sourceRoot: a.src, listingPath, dir: a.stage, shardBytes: a.shardBytes }, (p) => {
    if (!onShards || p.shardsDone === seen) return;
    seen = p.shardsDone;
    onShards(readCheckpoint(a.stage)?.shards ?? []);
  });
  return { scanSecs, packSecs: now() - t, packStart: t, result, cpu: cpuSecs() - c0 };
}

async function archive(a: { src: string; stage: string; shardBytes: number; providers: string[]; overlap: boolean }): Promise<ArchiveRun> {
  const providers = a.providers.map((root, i) => new LocalProvider(`bench-${i}`, root));
  const queue: ShardInfo[] = [];
  const queued = new Set<number>();
  let puts = 0;
  const active: Promise<void>[] = [];
  const replicate = async (s: ShardInfo) => {
    const file = path.join(a.stage, s.file);
    for (const p of providers) {
      await p.put({ pieceCid: s.pieceCid, carCid: s.carCid, rootCid: s.rootCid, bytes: s.carBytes }, () => fs.createReadStream(file, { highWaterMark: 4 << 20 }));
      puts++;
    }
  };
  let running = 0;
  let wake: () => void = () => {};
  const pump = () => {
    while (running < PARALLEL_PUTS && queue.length > 0) {
      running++;
      active.push(replicate(queue.shift()!).finally(() => {
        running--;
        pump();
        wake();
      }));
    }
  };
  const offer = (shards: ShardInfo[]) => {
    for (const s of shards) {
      if (queued.has(s.index)) continue;
      queued.add(s.index);
      queue.push(s);
    }
    pump();
  };
  const packed = await pack(a, a.overlap ? offer : undefined);
  const packEnd = now();
  offer(readCheckpoint(a.stage)!.shards);
  while (running > 0 || queue.length > 0) await new Promise<void>((r) => (wake = r));
  await Promise.all(active);
  const end = now();
  return {
    scanSecs: packed.scanSecs,
    packSecs: packed.packSecs,
    result: packed.result,
    maxRssKiB: process.resourceUsage().maxRSS,
    cpuSecs: cpuSecs(),
    replicateAfterPackSecs: end - packEnd,
    archiveSecs: end - packed.packStart,
    puts,
  };
}

function dataSegment(a: { file: string; bytes: number }): DataSegmentRun {
  const fd = fs.openSync(a.file, 'r');
  const bytes = Buffer.alloc(a.bytes);
  const n = fs.readSync(fd, bytes, 0, a.bytes, 0);
  fs.closeSync(fd);
  const data = bytes.subarray(0, n);
  const t = now();
  const hasher = Multihash.create();
  for (let o = 0; o < data.length; o += 1 << 20) hasher.write(data.subarray(o, o + (1 << 20)));
  const digest = hasher.digest();
  const secs = now() - t;
  return { bytes: n, secs, pieceCid: CID.create(1, 0x55, digest as Parameters<typeof CID.create>[2]).toString(), oursPieceCid: commpOf(data).pieceCid };
}

const [mode, json] = process.argv.slice(2);
const args = JSON.parse(json ?? '{}');
let out: unknown;
if (mode === 'scan') {
  const t = now();
  const r = await scanLocal(args.src, args.listing);
  out = { scanSecs: now() - t, files: r.files, maxRssKiB: process.resourceUsage().maxRSS } satisfies ScanRun;
} else if (mode === 'pack') {
  const r = await pack(args);
  out = { scanSecs: r.scanSecs, packSecs: r.packSecs, result: r.result, maxRssKiB: process.resourceUsage().maxRSS, cpuSecs: r.cpu } satisfies PackRun;
} else if (mode === 'archive') {
  out = await archive(args);
} else if (mode === 'datasegment') {
  out = dataSegment(args);
} else {
  throw new Error(`unknown mode ${mode}`);
}
process.stdout.write(JSON.stringify(out) + '\n');
