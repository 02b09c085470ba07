/**
 * One measurement in a process of its own, so that its peak RSS is its own:
 * `node dist/bench/child.js <mode> <json>` prints one JSON line.
 *
 *   scan         scan a tree into a listing (as the scan activity does)
 *   pack         pack a listing in the worker thread exactly as the pack activity does (it scans
 *                first, in this process, when no listing is given)
 *   workflow     the real thing: the archiveDataset workflow with two local providers on an
 *                embedded Temporal dev server and an in-process worker (warmed up by a one-file
 *                archive first); times the workflow from start to result, and reads the pack
 *                activity's own time from its history
 *   datasegment  @web3-storage/data-segment's streaming CommP hasher over the first bytes of a
 *                file, and ours over the same bytes
 *   write        the staging write bandwidth: as many bytes as a pack wrote, written to the staging
 *                directory the way the pack writes them (its strategy, its write size, writes in
 *                flight), fsynced at the end (as dd conv=fsync), then deleted
 */
import './cli-heap.js';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as Multihash from '@web3-storage/data-segment/multihash';
import { CID } from 'multiformats/cid';
import { scanLocal } from '../activities/ingest/scan.js';
import { commpOf } from '../activities/pack/commp.js';
import { packInThread } from '../activities/pack/index.js';
import type { PackResult } from '../activities/pack/packer.js';
import {
  measureWrite,
  writeStrategyFor,
  type WriteProbe,
  type WriteStrategy,
} from '../activities/pack/write-strategy.js';
import { loadConfig } from '../config/load.js';
import { startArchive } from '../workers/client.js';
import { withRuntime } from '../workers/runtime.js';

export interface ScanRun {
  scanSecs: number;
  files: number;
  maxRssKiB: number;
}

export interface PackRun {
  scanSecs: number;
  /** The write-strategy probe (once per process; not part of packSecs). */
  probeSecs: number;
  packSecs: number;
  result: PackResult;
  maxRssKiB: number;
  cpuSecs: number;
}

export interface WorkflowRun {
  /** Workflow start to its result (scan, pack, replicas, manifest, cleanup). */
  archiveSecs: number;
  /** The pack activity, scheduled to completed, from the workflow history. */
  packActivitySecs: number;
  /** Replica puts that started before the pack activity completed. */
  putsDuringPack: number;
  puts: number;
  shards: number;
  replicas: Record<string, number>;
  maxRssKiB: number;
  /** Each activity: [name, scheduled, completed] in seconds from the workflow's start. */
  timeline: [string, number, number][];
}

export interface DataSegmentRun {
  bytes: number;
  secs: number;
  pieceCid: string;
  oursPieceCid: string;
}

const now = () => performance.now() / 1000;
const cpuSecs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function pack(a: { src: string; stage: string; shardBytes: number; listing?: string; twins?: number }) {
  fs.mkdirSync(a.stage, { recursive: true });
  const listingPath = path.join(a.stage, 'listing.ndjson');
  let t = now();
  if (a.listing) fs.copyFileSync(a.listing, listingPath);
  else await scanLocal(a.src, listingPath);
  const scanSecs = a.listing ? 0 : now() - t;
  // The write strategy is measured once per worker process, before its first pack: not timed here.
  t = now();
  await writeStrategyFor(a.stage);
  const probeSecs = now() - t;
  t = now();
  const c0 = cpuSecs();
  const result = await packInThread(
    { sourceRoot: a.src, listingPath, dir: a.stage, shardBytes: a.shardBytes, twins: a.twins },
    () => {},
  );
  return { scanSecs, probeSecs, packSecs: now() - t, result, cpu: cpuSecs() - c0 };
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function workflow(a: {
  src: string;
  stage: string;
  shardBytes: number;
  providers: string[];
}): Promise<WorkflowRun> {
  const config = loadConfig({
    env: {},
    overrides: {
      temporal: { address: `127.0.0.1:${await freePort()}`, embedded: 'always' },
      dataDir: path.join(a.stage, 'data'),
      stagingDir: path.join(a.stage, 'staging'),
      pack: { shardBytes: a.shardBytes },
      replication: { copies: 2 },
      providers: a.providers.map((root, i) => ({ kind: 'local', id: `bench-${i}`, path: root })),
    },
  });
  return withRuntime(config, async ({ client }) => {
    // A worker's first workflow pays for its sandbox and its first connections: warm it with a
    // one-file archive, so that the run timed is an archive on a running worker.
    const warm = path.join(a.stage, 'warm-up');
    fs.mkdirSync(warm, { recursive: true });
    fs.writeFileSync(path.join(warm, 'hello.txt'), 'warm-up\n');
    await (await startArchive(client, config, { dir: warm, datasetId: 'warm-up', noSteward: true })).handle.result();
    const t0 = now();
    const { handle } = await startArchive(client, config, { dir: a.src, datasetId: 'bench', noSteward: true });
    const result = await handle.result();
    const archiveSecs = now() - t0;
    const history = await handle.fetchHistory();
    const at = (e: {
      eventTime?: { seconds?: { toNumber(): number } | number | null; nanos?: number | null } | null;
    }) => {
      const sec = e.eventTime?.seconds ?? 0;
      return (typeof sec === 'number' ? sec : sec.toNumber()) + (e.eventTime?.nanos ?? 0) / 1e9;
    };
    const scheduled = new Map<number, { type: string; time: number }>();
    let packStart = 0;
    let packEnd = 0;
    const putStarts: number[] = [];
    const timeline: [string, number, number][] = [];
    const t = (x: number) => Math.round((x - at(history.events![0]!)) * 1000) / 1000;
    for (const e of history.events ?? []) {
      const s = e.activityTaskScheduledEventAttributes;
      if (s) {
        const type = s.activityType?.name ?? '';
        scheduled.set(Number(e.eventId), { type, time: at(e) });
        if (type === 'provenantPack') packStart = at(e);
        if (type === 'provenantPutPiece') putStarts.push(at(e));
      }
      const c = e.activityTaskCompletedEventAttributes;
      const done = c && scheduled.get(Number(c.scheduledEventId));
      if (done) timeline.push([done.type, t(done.time), t(at(e))]);
      if (done && done.type === 'provenantPack') packEnd = at(e);
    }
    return {
      archiveSecs,
      packActivitySecs: packEnd - packStart,
      putsDuringPack: putStarts.filter((t) => t < packEnd).length,
      puts: putStarts.length,
      shards: result.shards,
      replicas: result.replicas,
      maxRssKiB: process.resourceUsage().maxRSS,
      timeline,
    };
  });
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
  return {
    bytes: n,
    secs,
    pieceCid: CID.create(1, 0x55, digest as Parameters<typeof CID.create>[2]).toString(),
    oursPieceCid: commpOf(data).pieceCid,
  };
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
  out = {
    scanSecs: r.scanSecs,
    probeSecs: r.probeSecs,
    packSecs: r.packSecs,
    result: r.result,
    maxRssKiB: process.resourceUsage().maxRSS,
    cpuSecs: r.cpu,
  } satisfies PackRun;
} else if (mode === 'workflow') {
  out = await workflow(args);
} else if (mode === 'write') {
  const w = args as { dir: string; strategy: WriteStrategy; bytes: number };
  fs.mkdirSync(w.dir, { recursive: true });
  out = (await measureWrite(w.dir, w.strategy, w.bytes)) satisfies WriteProbe;
} else if (mode === 'datasegment') {
  out = dataSegment(args);
} else {
  throw new Error(`unknown mode ${mode}`);
}
process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
