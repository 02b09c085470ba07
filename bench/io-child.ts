/**
 * One measurement of `bench/io.ts` in a process of its own, so that its peak RSS is its own (the
 * worker runs in this process): `node dist/bench/io-child.js <mode> <json>` prints one JSON line.
 *
 *   sdk      a plain AWS SDK multipart upload (`@aws-sdk/lib-storage` Upload, the SDK's defaults, as
 *            a user would write it) of each given file to a bucket, one after the other
 *   archive  the real archiveDataset workflow with one S3 provider (1 copy) on an embedded Temporal
 *            dev server and an in-process worker, warmed up by a one-file archive; times the
 *            workflow and reads each activity's span from its history and its children's
 *   restore  the real restoreDataset workflow (every block and file verified) into an empty
 *            directory, on a warmed-up worker
 *
 * The credentials come in the environment (BENCH_S3_KEY, BENCH_S3_SECRET), as a provider's would.
 */
import './cli-heap.js';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { loadConfig } from '../config/load.js';
import { startArchive, startRestore } from '../workers/client.js';
import { withRuntime } from '../workers/runtime.js';
import { workflowTree } from '../tests/helpers/histories.js';

export interface S3Target {
  endpoint: string;
  bucket: string;
}

export interface SdkRun {
  secs: number;
  bytes: number;
  maxRssKiB: number;
}

/** Peak RSS (MiB) sampled every 50 ms: before the timed workflow (worker warmed up), and during each activity type. */
export interface RssPhases {
  idleMiB: number;
  byActivity: Record<string, number>;
}

export interface ArchiveRun {
  rss: RssPhases;
  archiveSecs: number;
  manifestCid: string;
  shards: number;
  /** Each activity: [name, scheduled, completed] in seconds from the workflow's start. */
  timeline: [string, number, number][];
  maxRssKiB: number;
}

export interface RestoreRun {
  rss: RssPhases;
  restoreSecs: number;
  files: number;
  bytes: number;
  maxRssKiB: number;
}

const now = () => performance.now() / 1000;

/** Samples this process's RSS; `phases` attributes the peaks to the activities of a timeline. */
function rssSampler() {
  const samples: [number, number][] = [];
  const timer = setInterval(() => samples.push([Date.now() / 1000, process.memoryUsage.rss() / 1024 / 1024]), 50);
  return {
    phases(idleUntil: number, startedAt: number, timeline: [string, number, number][]): RssPhases {
      clearInterval(timer);
      const peak = (a: number, b: number) =>
        Math.round(Math.max(0, ...samples.filter(([t]) => t >= a && t <= b).map(([, r]) => r)));
      const byActivity: Record<string, number> = {};
      for (const [type, a, b] of timeline)
        byActivity[type] = Math.max(byActivity[type] ?? 0, peak(startedAt + a, startedAt + b));
      return { idleMiB: peak(0, idleUntil), byActivity };
    },
  };
}
const KEY_ENV = 'BENCH_S3_KEY';
const SECRET_ENV = 'BENCH_S3_SECRET';

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function sdk(a: { files: string[]; s3: S3Target; prefix: string }): Promise<SdkRun> {
  const client = new S3Client({
    endpoint: a.s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: process.env[KEY_ENV]!, secretAccessKey: process.env[SECRET_ENV]! },
  });
  const t = now();
  let bytes = 0;
  for (const [i, file] of a.files.entries()) {
    await new Upload({
      client,
      params: { Bucket: a.s3.bucket, Key: `${a.prefix}${i}-${path.basename(file)}`, Body: fs.createReadStream(file) },
    }).done();
    bytes += fs.statSync(file).size;
  }
  const secs = now() - t;
  client.destroy();
  return { secs, bytes, maxRssKiB: process.resourceUsage().maxRSS };
}

function configFor(a: { work: string; s3: S3Target; shardBytes?: number }, port: number) {
  return loadConfig({
    env: {},
    overrides: {
      temporal: { address: `127.0.0.1:${port}`, embedded: 'always' },
      dataDir: path.join(a.work, 'data'),
      stagingDir: path.join(a.work, 'staging'),
      ...(a.shardBytes ? { pack: { shardBytes: a.shardBytes } } : {}),
      replication: { copies: 1 },
      providers: [
        {
          kind: 's3',
          id: 'minio',
          endpoint: a.s3.endpoint,
          bucket: a.s3.bucket,
          forcePathStyle: true,
          accessKeyIdEnv: KEY_ENV,
          secretAccessKeyEnv: SECRET_ENV,
        },
      ],
    },
  });
}

/** A worker's first workflow pays for its sandbox and first connections: archive one small file first. */
async function warmUp(
  client: Parameters<typeof startArchive>[0],
  config: ReturnType<typeof loadConfig>,
  work: string,
  restore: boolean,
) {
  const warm = path.join(work, 'warm-up');
  fs.mkdirSync(warm, { recursive: true });
  fs.writeFileSync(path.join(warm, 'hello.txt'), `warm-up ${Date.now()}\n`);
  const r = await (
    await startArchive(client, config, { dir: warm, datasetId: `warm-up-${Date.now()}`, noSteward: true })
  ).handle.result();
  if (restore) {
    const target = path.join(work, 'warm-up-restored');
    await (await startRestore(client, config, { manifestCid: r.manifestCid, target, force: false })).result();
    fs.rmSync(target, { recursive: true, force: true });
  }
}

async function archive(a: { src: string; work: string; s3: S3Target; shardBytes?: number }): Promise<ArchiveRun> {
  const config = configFor(a, await freePort());
  return withRuntime(config, async ({ client }) => {
    const rss = rssSampler();
    await warmUp(client, config, a.work, false);
    const startedAt = Date.now() / 1000;
    const t0 = now();
    const { handle } = await startArchive(client, config, {
      dir: a.src,
      datasetId: `bench-${Date.now()}`,
      noSteward: true,
    });
    const result = await handle.result();
    const archiveSecs = now() - t0;
    // The archive and every child it started: the puts of the data shards run in the replication children.
    const tree = await workflowTree(client, handle.workflowId);
    const at = (e: {
      eventTime?: { seconds?: { toNumber(): number } | number | null; nanos?: number | null } | null;
    }) => {
      const sec = e.eventTime?.seconds ?? 0;
      return (typeof sec === 'number' ? sec : sec.toNumber()) + (e.eventTime?.nanos ?? 0) / 1e9;
    };
    const history = tree[0]!.history;
    const t = (x: number) => Math.round((x - at(history.events![0]!)) * 1000) / 1000;
    const timeline: [string, number, number][] = [];
    for (const w of tree) {
      const scheduled = new Map<number, { type: string; time: number }>();
      for (const e of w.history.events ?? []) {
        const s = e.activityTaskScheduledEventAttributes;
        if (s) scheduled.set(Number(e.eventId), { type: s.activityType?.name ?? '', time: at(e) });
        const c = e.activityTaskCompletedEventAttributes;
        const done = c && scheduled.get(Number(c.scheduledEventId));
        if (done) timeline.push([done.type, t(done.time), t(at(e))]);
      }
    }
    const wfStart = at(history.events![0]!);
    return {
      rss: rss.phases(startedAt, wfStart, timeline),
      archiveSecs,
      manifestCid: result.manifestCid,
      shards: result.shards,
      timeline,
      maxRssKiB: process.resourceUsage().maxRSS,
    };
  });
}

async function restore(a: { manifestCid: string; target: string; work: string; s3: S3Target }): Promise<RestoreRun> {
  const config = configFor(a, await freePort());
  return withRuntime(config, async ({ client }) => {
    const rss = rssSampler();
    await warmUp(client, config, a.work, true);
    const startedAt = Date.now() / 1000;
    const t0 = now();
    const r = await (
      await startRestore(client, config, { manifestCid: a.manifestCid, target: a.target, force: false })
    ).result();
    const restoreSecs = now() - t0;
    return {
      rss: rss.phases(startedAt, startedAt, [['provenantRestore', 0, restoreSecs]]),
      restoreSecs,
      files: r.files,
      bytes: r.bytes,
      maxRssKiB: process.resourceUsage().maxRSS,
    };
  });
}

const [mode, json] = process.argv.slice(2);
const args = JSON.parse(json ?? '{}');
let out: unknown;
if (mode === 'sdk') out = await sdk(args);
else if (mode === 'archive') out = await archive(args);
else if (mode === 'restore') out = await restore(args);
else throw new Error(`unknown mode ${mode}`);
process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
