/**
 * What every stage's activities share on one worker: the parsed config, the providers built from
 * it, this host's queue and staging, the provider health memory, and a per-worker manifest cache.
 * Built once by `createActivities`; the stage factories take it.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Meter } from '@opentelemetry/api';
import type { Config } from '../config/schema.js';
import type { StageRef } from '../shared/types.js';
import { locateManifest } from './restore/restore.js';
import { HealthMemory } from './providers/health.js';
import type { StorageProvider } from './providers/provider.js';
import { ProviderSet } from './providers/registry.js';
import { createRecorder, type Recorder } from './telemetry.js';

export interface ActivityDeps {
  config: Config;
  /** Provider instances built by the caller (a plugin option) beside those built from config. */
  providers?: StorageProvider[];
  /** This host's own task queue for staged-file work. */
  hostQueue?: string;
  /** The OpenTelemetry Meter the activities' metrics go to (activities/telemetry.ts); none: not recorded. */
  meter?: Meter;
}

export interface StageContext {
  config: Config;
  providers: ProviderSet;
  health: HealthMemory;
  /** Metrics of what the activities did (a no-op unless a meter was given). */
  metrics: Recorder;
  hostQueue: string;
  /** The staging directory of one archive run on this host. */
  stageDir(s: StageRef): string;
  /** A manifest by CID, fetched and verified once per worker (cached on disk too). */
  loadManifest(manifestCid: string): ReturnType<typeof locateManifest>;
}

export function hostQueueName(taskQueue: string, stagingDir: string): string {
  // Stable per host and staging directory, so a restarted worker picks up its own staged work.
  const tag = Buffer.from(path.resolve(stagingDir)).toString('base64url').slice(-12);
  return `${taskQueue}@${os.hostname()}#${tag}`;
}

export function createStageContext(deps: ActivityDeps): StageContext {
  const { config } = deps;
  const providers = new ProviderSet(config.providers, deps.providers);
  const manifests = new Map<string, ReturnType<StageContext['loadManifest']>>();
  return {
    config,
    providers,
    health: new HealthMemory(path.join(config.dataDir, 'provider-health.json')),
    metrics: createRecorder(deps.meter),
    hostQueue: deps.hostQueue ?? hostQueueName(config.temporal.taskQueue, config.stagingDir),
    stageDir: (s) => path.join(config.stagingDir, `${s.datasetId}.${s.runKey}`),
    loadManifest(manifestCid) {
      const cached = manifests.get(manifestCid);
      if (cached) return cached;
      const dir = path.join(config.dataDir, 'cache', 'manifests', manifestCid);
      const m = fsp.mkdir(dir, { recursive: true }).then(() => locateManifest(manifestCid, providers.all(), dir));
      m.catch(() => manifests.delete(manifestCid));
      manifests.set(manifestCid, m);
      return m;
    },
  };
}
