/**
 * Every side effect Provenant performs, as Temporal activities. Names are prefixed
 * (`provenant…`) so they sit beside a user's own activities on a shared worker.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Context, activityInfo } from '@temporalio/activity';
import type { Config } from '../config/schema.js';
import { scanLocal } from './ingest/scan.js';
import { packInThread } from './pack/index.js';
import { readCheckpoint, readShards, FILES, type PackProgress, type PackResult } from './pack/packer.js';
import { writeManifest } from './manifest/manifest.js';
import { ProviderSet } from './providers/registry.js';
import type { PieceRef, Placement, StorageProvider } from './providers/provider.js';
import { restoreDataset, type RestoreSummary } from './restore/restore.js';
import { StagingMissingError, showPath, toFailure } from './errors.js';
import { TOOL_NAME, TOOL_VERSION } from '../version.js';

export interface ActivityDeps {
  config: Config;
  /** Extra provider instances (tests, plugins) beside those built from config. */
  providers?: StorageProvider[];
  /** This host's own task queue for staged-file work. */
  hostQueue?: string;
}

export function hostQueueName(taskQueue: string, stagingDir: string): string {
  // Stable per host and staging directory, so a restarted worker picks up its own staged work.
  const tag = Buffer.from(path.resolve(stagingDir)).toString('base64url').slice(-12);
  return `${taskQueue}@${os.hostname()}#${tag}`;
}

export interface StageRef {
  datasetId: string;
  /** Unique per workflow run: a new run never reuses another run's staging. */
  runKey: string;
}

export interface ScanSummary {
  files: number;
  dirs: number;
  bytes: number;
  specials: string[];
  specialCount: number;
  symlinksFollowed: number;
}

export type ShardRef = PieceRef & { index: number };

/** Wrap an activity so typed errors reach Temporal as ApplicationFailures with their type. */
function boundary<A extends unknown[], R>(fn: (...a: A) => Promise<R>): (...a: A) => Promise<R> {
  return async (...a: A) => {
    try {
      return await fn(...a);
    } catch (err) {
      throw toFailure(err);
    }
  };
}

/** Heartbeat at most every `ms`, always with the latest details. */
function heartbeater(ms = 2000) {
  let last = 0;
  return (details: unknown, force = false) => {
    const now = Date.now();
    if (force || now - last >= ms) {
      last = now;
      Context.current().heartbeat(details);
    }
  };
}

export function createActivities(deps: ActivityDeps) {
  const { config } = deps;
  const providers = new ProviderSet(config.providers, deps.providers);
  const hostQueue = deps.hostQueue ?? hostQueueName(config.temporal.taskQueue, config.stagingDir);
  const stageDir = (s: StageRef) => path.join(config.stagingDir, `${s.datasetId}.${s.runKey}`);

  return {
    async provenantHostQueue(): Promise<string> {
      return hostQueue;
    },

    provenantScan: boundary(async (s: StageRef & { sourcePath: string }): Promise<ScanSummary> => {
      const beat = heartbeater();
      const r = await scanLocal(s.sourcePath, path.join(stageDir(s), 'listing.ndjson'), (p) => beat(p));
      return { files: r.files, dirs: r.dirs, bytes: r.bytes, specials: r.specials, specialCount: r.specialCount, symlinksFollowed: r.symlinksFollowed };
    }),

    provenantPack: boundary(async (s: StageRef & { sourcePath: string; shardBytes: number }): Promise<PackResult> => {
      const dir = stageDir(s);
      const resumeFrom = activityInfo().heartbeatDetails as PackProgress | undefined;
      const cp = readCheckpoint(dir);
      let latest: PackProgress = { shardsDone: cp?.shards.length ?? resumeFrom?.shardsDone ?? 0, files: cp?.files ?? 0, bytes: cp?.bytes ?? 0 };
      const beat = heartbeater();
      beat(latest, true);
      const timer = setInterval(() => beat(latest, true), 5000);
      try {
        return await packInThread(
          { sourceRoot: path.resolve(s.sourcePath), listingPath: path.join(dir, 'listing.ndjson'), dir, shardBytes: s.shardBytes },
          (p) => {
            latest = p;
            beat(p);
          },
          Context.current().cancellationSignal,
        );
      } finally {
        clearInterval(timer);
      }
    }),

    provenantShardPage: boundary(async (s: StageRef & { from: number; count: number }): Promise<ShardRef[]> => {
      return readShards(stageDir(s))
        .slice(s.from, s.from + s.count)
        .map(({ index, carCid, pieceCid, rootCid, carBytes }) => ({ index, carCid, pieceCid, rootCid, bytes: carBytes }));
    }),

    provenantPutPiece: boundary(async (s: StageRef & { file: string; piece: PieceRef; providerId: string }): Promise<Placement> => {
      const file = path.join(stageDir(s), path.basename(s.file));
      if (!fs.existsSync(file)) throw new StagingMissingError(`staged piece missing: ${showPath(file)}`);
      const p = providers.get(s.providerId);
      return p.put(s.piece, () => fs.createReadStream(file, { highWaterMark: 4 << 20 }), { signal: Context.current().cancellationSignal });
    }),

    provenantWriteManifest: boundary(
      async (s: StageRef & { rootCid: string; sourcePath: string; meta: Record<string, string>; createdAt: string; shardBytes: number }): Promise<PieceRef> => {
        const dir = stageDir(s);
        return writeManifest(
          {
            datasetId: s.datasetId,
            root: s.rootCid,
            source: { kind: 'local', uri: `file://${path.resolve(s.sourcePath)}`, host: os.hostname() },
            meta: s.meta,
            tool: { name: TOOL_NAME, version: TOOL_VERSION },
            createdAt: s.createdAt,
            layout: { chunkBytes: 1024 * 1024, fileWidth: 1024, shardBytes: s.shardBytes },
          },
          readShards(dir),
          path.join(dir, FILES),
          path.join(dir, 'manifest.car'),
          s.shardBytes,
        );
      },
    ),

    provenantCleanup: boundary(async (s: StageRef): Promise<void> => {
      await fsp.rm(stageDir(s), { recursive: true, force: true });
    }),

    provenantRestore: boundary(
      async (r: { manifestCid: string; target: string; force: boolean; providerIds?: string[] }): Promise<RestoreSummary> => {
        const list = r.providerIds?.length ? r.providerIds.map((id) => providers.get(id)) : providers.all();
        const beat = heartbeater();
        return restoreDataset({
          manifestCid: r.manifestCid,
          target: r.target,
          force: r.force,
          providers: list,
          signal: Context.current().cancellationSignal,
          onProgress: (p) => beat(p),
        });
      },
    ),
  };
}

export type ProvenantActivities = ReturnType<typeof createActivities>;
