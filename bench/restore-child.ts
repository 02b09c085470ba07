/**
 * One measurement of the restore bench (`bench/restore.ts`) in a process of its own, so that its
 * peak RSS is its own: `node dist/bench/restore-child.js <mode> <json>` prints one JSON line.
 *
 *   archive   the archiveDataset workflow with one local provider (1 copy) on an embedded Temporal
 *             dev server, to make the archive restored (not timed against anything)
 *   restore   the real restoreDataset workflow (every block checked against its CID and its CAR
 *             framing, every file against its sha256) into an empty directory, on a worker warmed
 *             up by a one-file archive and restore; `direct: true` calls the activity's function
 *             without Temporal instead (to tell the workflow's overhead from the restore's)
 */
import './cli-heap.js';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createProvider } from '../activities/providers/registry.js';
import { restoreDataset } from '../activities/restore/restore.js';
import { loadConfig } from '../config/load.js';
import { startArchive, startRestore } from '../workers/client.js';
import { withRuntime } from '../workers/runtime.js';

export interface RestoreArchiveRun {
  manifestCid: string;
  shards: number;
  archiveSecs: number;
}

export interface RestoreBenchRun {
  restoreSecs: number;
  files: number;
  bytes: number;
  shards: number;
  cpuSecs: number;
  maxRssKiB: number;
  /** The workflow run only: its restore activity, started to completed, from the history. */
  activitySecs?: number;
}

interface Args {
  work: string;
  /** Local provider roots. */
  providers: string[];
  shardBytes?: number;
}

const now = () => performance.now() / 1000;
const cpuSecs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const providerConfigs = (a: Args) =>
  a.providers.map((root, i) => ({ kind: 'local' as const, id: `bench-${i}`, path: root }));

async function configFor(a: Args) {
  return loadConfig({
    env: {},
    overrides: {
      temporal: { address: `127.0.0.1:${await freePort()}`, embedded: 'always' },
      dataDir: path.join(a.work, 'data'),
      stagingDir: path.join(a.work, 'staging'),
      ...(a.shardBytes ? { pack: { shardBytes: a.shardBytes } } : {}),
      replication: { copies: 1 },
      providers: providerConfigs(a),
    },
  });
}

async function archive(a: Args & { src: string }): Promise<RestoreArchiveRun> {
  const config = await configFor(a);
  return withRuntime(config, async ({ client }) => {
    const t0 = now();
    const { handle } = await startArchive(client, config, {
      dir: a.src,
      datasetId: `bench-restore-${Date.now()}`,
      noSteward: true,
    });
    const r = await handle.result();
    return { manifestCid: r.manifestCid, shards: r.shards, archiveSecs: now() - t0 };
  });
}

async function restore(a: Args & { manifestCid: string; target: string; direct?: boolean }): Promise<RestoreBenchRun> {
  if (a.direct) {
    const providers = providerConfigs(a).map((c) => createProvider(c));
    const c0 = cpuSecs();
    const t0 = now();
    const r = await restoreDataset({ manifestCid: a.manifestCid, target: a.target, force: false, providers });
    return {
      restoreSecs: now() - t0,
      files: r.files,
      bytes: r.bytes,
      shards: r.shards,
      cpuSecs: cpuSecs() - c0,
      maxRssKiB: process.resourceUsage().maxRSS,
    };
  }
  const config = await configFor(a);
  return withRuntime(config, async ({ client }) => {
    // A worker's first workflow pays for its sandbox and first connections: warm it up first.
    const warm = path.join(a.work, 'warm-up');
    fs.mkdirSync(warm, { recursive: true });
    fs.writeFileSync(path.join(warm, 'hello.txt'), `warm-up ${Date.now()}\n`);
    const w = await (
      await startArchive(client, config, { dir: warm, datasetId: `warm-up-${Date.now()}`, noSteward: true })
    ).handle.result();
    const warmTarget = path.join(a.work, 'warm-up-restored');
    await (
      await startRestore(client, config, { manifestCid: w.manifestCid, target: warmTarget, force: false })
    ).result();
    fs.rmSync(warmTarget, { recursive: true, force: true });
    const c0 = cpuSecs();
    const t0 = now();
    const handle = await startRestore(client, config, { manifestCid: a.manifestCid, target: a.target, force: false });
    const r = await handle.result();
    const restoreSecs = now() - t0;
    const at = (e: {
      eventTime?: { seconds?: { toNumber(): number } | number | null; nanos?: number | null } | null;
    }) => {
      const sec = e.eventTime?.seconds ?? 0;
      return (typeof sec === 'number' ? sec : sec.toNumber()) + (e.eventTime?.nanos ?? 0) / 1e9;
    };
    const events = (await handle.fetchHistory()).events ?? [];
    const started = events.find((e) => e.activityTaskStartedEventAttributes);
    const completed = events.find((e) => e.activityTaskCompletedEventAttributes);
    return {
      restoreSecs,
      ...(started && completed ? { activitySecs: at(completed) - at(started) } : {}),
      files: r.files,
      bytes: r.bytes,
      shards: r.shards,
      cpuSecs: cpuSecs() - c0,
      maxRssKiB: process.resourceUsage().maxRSS,
    };
  });
}

const [mode, json] = process.argv.slice(2);
const args = JSON.parse(json ?? '{}');
let out: unknown;
if (mode === 'archive') out = await archive(args);
else if (mode === 'restore') out = await restore(args);
else throw new Error(`unknown mode ${mode}`);
process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
