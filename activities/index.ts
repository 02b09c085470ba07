/**
 * Every side effect Provenant performs, as Temporal activities. Names are prefixed
 * (`provenant…`) so they sit beside a user's own activities on a shared worker.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Context, activityInfo } from '@temporalio/activity';
import type { ArchiveSourceInput, Config, RemoteSource } from '../config/schema.js';
import { archiveInput } from '../config/archive-input.js';
import { SHARDS_PACKED_SIGNAL, type ArchiveInput, type ArchiveRequestInput, type StewardReplica } from '../workflows/types.js';
import type { ShardInfo } from './pack/shard-writer.js';
import { scanLocal, type ScanResult } from './ingest/scan.js';
import { createSource, mirrorSource } from './ingest/mirror.js';
import { packInThread } from './pack/index.js';
import { twinOf } from './pack/shard-hasher.js';
import { readCheckpoint, readShards, FILES, type PackProgress, type PackResult } from './pack/packer.js';
import { writeManifest } from './manifest/manifest.js';
import { ProviderSet } from './providers/registry.js';
import type { PieceRef, Placement, StorageProvider } from './providers/provider.js';
import { locateManifest, restoreDataset, type RestoreSummary } from './restore/restore.js';
import { verifyReplica, type VerifyResult } from './verify/verify.js';
import { appendRecords, readChain, type AuditEvent, type AuditProblem, type AuditRecord } from './audit/audit.js';
import { shardIndex, type Manifest } from './manifest/manifest.js';
import { NoHealthyReplicaError } from './errors.js';
import { HealthMemory } from './providers/health.js';
import { carCidFromSha256 } from './pack/cids.js';
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

/** What the scan reports back to the workflow: the listing stays on disk. */
export type ScanSummary = Omit<ScanResult, 'listingPath'>;

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

/**
 * Sends closed shards to the workflow running this activity, one signal at a time with all that
 * closed meanwhile. Best effort: a lost signal only delays that shard's replication to the end.
 */
function shardAnnouncer(ctx: Context) {
  const wf = ctx.info.workflowExecution;
  let pending: ShardRef[] = [];
  let sending: Promise<void> | undefined;
  const send = async () => {
    while (wf && pending.length > 0) {
      const batch = pending;
      pending = [];
      try {
        await ctx.client.workflow.getHandle(wf.workflowId, wf.runId).signal(SHARDS_PACKED_SIGNAL, batch);
      } catch (err) {
        ctx.log.warn('could not announce packed shards; they replicate after packing', { error: (err as Error).message });
      }
    }
    sending = undefined;
  };
  return {
    add(sh: ShardInfo) {
      pending.push({ index: sh.index, carCid: sh.carCid, pieceCid: sh.pieceCid, rootCid: sh.rootCid, bytes: sh.carBytes });
      sending ??= send();
    },
    flush: async () => {
      await sending;
    },
  };
}

/**
 * Heartbeat on a timer while `fn` runs (uploads and copies that report no progress of their own),
 * so that a worker that dies mid-transfer is noticed within the heartbeat timeout, not the
 * activity's whole start-to-close timeout.
 */
async function whileBeating<T>(fn: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  const timeoutMs = ctx.info.heartbeatTimeoutMs;
  const timer = setInterval(() => ctx.heartbeat(), Math.max(200, Math.min(5000, (timeoutMs ?? 15_000) / 3)));
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** Twins are written for at most this many copies of a shard. */
const MAX_TWINS = 8;

/** How many of these providers take files in from `dir` by moving them (see `StorageProvider.adoptsFrom`). */
async function adoptingProviders(set: ProviderSet, ids: string[], dir: string): Promise<number> {
  const takes = await Promise.all(ids.map((id) => set.get(id).adoptsFrom?.(dir).catch(() => false) ?? false));
  return takes.filter(Boolean).length;
}

/** A twin of the staged shard `file` that provider `p` can move in, if one is left (see shard-hasher.ts). */
async function twinFor(p: StorageProvider, file: string): Promise<string | undefined> {
  if (!(await p.adoptsFrom?.(path.dirname(file)).catch(() => false))) return undefined;
  for (let t = 1; t <= MAX_TWINS; t++) {
    const twin = twinOf(file, t);
    if (fs.existsSync(twin)) return twin;
  }
  return undefined;
}

/** A stored copy of a piece that a steward looks after (its identity, without health). */
export type ReplicaRef = Pick<StewardReplica, 'shard' | 'pieceCid' | 'carCid' | 'rootCid' | 'bytes' | 'providerId'>;

export function createActivities(deps: ActivityDeps) {
  const { config } = deps;
  const manifests = new Map<string, Promise<{ manifest: Manifest; pages: Map<string, Uint8Array> }>>();
  /** Manifests are immutable: fetch (and verify) each once per worker, cached on disk too. */
  const loadManifest = (manifestCid: string) => {
    let m = manifests.get(manifestCid);
    if (!m) {
      const dir = path.join(config.dataDir, 'cache', 'manifests', manifestCid);
      m = fsp.mkdir(dir, { recursive: true }).then(() => locateManifest(manifestCid, providers.all(), dir));
      m.catch(() => manifests.delete(manifestCid));
      manifests.set(manifestCid, m);
    }
    return m;
  };
  const providers = new ProviderSet(config.providers, deps.providers);
  const hostQueue = deps.hostQueue ?? hostQueueName(config.temporal.taskQueue, config.stagingDir);
  const health = new HealthMemory(path.join(config.dataDir, 'provider-health.json'));
  const stageDir = (s: StageRef) => path.join(config.stagingDir, `${s.datasetId}.${s.runKey}`);

  const activities = {
    async provenantHostQueue(): Promise<string> {
      return hostQueue;
    },

    /**
     * Copy a remote source (S3 prefix, HTTP URLs) into this host's staging as a local tree for the
     * scan and pack; a retry fetches only what is not yet in place. Cleaned with the staging.
     */
    provenantMirror: boundary(
      async (s: StageRef & { source: RemoteSource }): Promise<{ files: number; bytes: number; downloaded: number; mirrorPath: string; uri: string }> => {
        const beat = heartbeater();
        const mirrorPath = path.join(stageDir(s), 'mirror');
        const source = createSource(s.source);
        try {
          const r = await mirrorSource(source, mirrorPath, { signal: Context.current().cancellationSignal, onProgress: (p) => beat(p) });
          return { files: r.files, bytes: r.bytes, downloaded: r.downloaded, mirrorPath, uri: source.uri };
        } finally {
          source.close();
        }
      },
    ),

    /** A full archive input from a request that names only the dataset and its source (see ArchiveRequestInput). */
    provenantArchiveInput: boundary(async (r: ArchiveRequestInput): Promise<ArchiveInput> => {
      return archiveInput(config, {
        source: r.source as ArchiveSourceInput, datasetId: r.datasetId, copies: r.copies, meta: r.meta, providers: r.providers,
        createdAt: r.createdAt, noSteward: r.steward === false,
      });
    }),

    provenantScan: boundary(async (s: StageRef & { sourcePath: string }): Promise<ScanSummary> => {
      const beat = heartbeater();
      const r = await scanLocal(s.sourcePath, path.join(stageDir(s), 'listing.ndjson'), (p) => beat(p), Context.current().cancellationSignal);
      return { files: r.files, dirs: r.dirs, bytes: r.bytes, specials: r.specials, specialCount: r.specialCount, symlinksFollowed: r.symlinksFollowed };
    }),

    /**
     * Pack the listing into CAR shards (resuming from the checkpoint). With `announce`, each shard
     * is signalled to the calling workflow as soon as it is durable, so that it can be replicated
     * while the rest is packed. With `replicas`, the shards' copies to be made and the providers
     * they may go to: for each copy short of the last that a provider on this filesystem may take
     * in by moving a file, a twin of each shard is written while packing (see shard-hasher.ts).
     */
    provenantPack: boundary(async (s: StageRef & {
      sourcePath: string; shardBytes: number; announce?: boolean; replicas?: { copies: number; providerIds: string[] };
    }): Promise<PackResult> => {
      const dir = stageDir(s);
      fs.mkdirSync(dir, { recursive: true });
      const twins = s.replicas ? Math.min(s.replicas.copies - 1, MAX_TWINS, await adoptingProviders(providers, s.replicas.providerIds, dir)) : 0;
      const ctx = Context.current();
      const resumeFrom = activityInfo().heartbeatDetails as PackProgress | undefined;
      const cp = readCheckpoint(dir);
      let latest: PackProgress = { shardsDone: cp?.shards.length ?? resumeFrom?.shardsDone ?? 0, files: cp?.files ?? 0, bytes: cp?.bytes ?? 0 };
      const beat = heartbeater();
      beat(latest, true);
      const timer = setInterval(() => beat(latest, true), 5000);
      const announcer = s.announce ? shardAnnouncer(ctx) : undefined;
      // A resumed pack announces the shards an earlier attempt closed, too.
      if (announcer && cp) for (const sh of cp.shards) announcer.add(sh);
      try {
        return await packInThread(
          { sourceRoot: path.resolve(s.sourcePath), listingPath: path.join(dir, 'listing.ndjson'), dir, shardBytes: s.shardBytes, twins },
          ({ closed, ...p }) => {
            latest = p;
            if (closed) announcer?.add(closed);
            beat(p);
          },
          ctx.cancellationSignal,
        );
      } finally {
        clearInterval(timer);
        await announcer?.flush();
      }
    }),

    provenantShardPage: boundary(async (s: StageRef & { from: number; count: number }): Promise<ShardRef[]> => {
      return readShards(stageDir(s))
        .slice(s.from, s.from + s.count)
        .map(({ index, carCid, pieceCid, rootCid, carBytes }) => ({ index, carCid, pieceCid, rootCid, bytes: carBytes }));
    }),

    /**
     * Store one staged piece on one provider. `last`: no other copy will be made from this staged
     * file, so the provider may take it (a local provider on the same filesystem moves it in).
     * Before the last copy, a provider that can move a file in takes one of the shard's twins.
     */
    provenantPutPiece: boundary(async (s: StageRef & { file: string; piece: PieceRef; providerId: string; last?: boolean }): Promise<Placement> => {
      const file = path.join(stageDir(s), path.basename(s.file));
      const p = providers.get(s.providerId);
      const twin = s.last ? undefined : await twinFor(p, file);
      if (!twin && !fs.existsSync(file)) {
        // Taken by an earlier attempt whose result was lost: the piece is there, or it is a real loss.
        const st = s.last ? await p.status(s.piece).catch(() => undefined) : undefined;
        if (st?.present && st.bytes === s.piece.bytes) return { providerId: p.id, pieceCid: s.piece.pieceCid, existed: true, storedAt: new Date().toISOString(), expiresAt: st.expiresAt };
        throw new StagingMissingError(`staged piece missing: ${showPath(file)}`);
      }
      const from = twin ?? file;
      try {
        return await whileBeating(() => p.put(s.piece, () => fs.createReadStream(from, { highWaterMark: 4 << 20 }), {
          signal: Context.current().cancellationSignal, localFile: from, consumeLocalFile: !!twin || !!s.last,
        }));
      } catch (err) {
        await health.failed(s.providerId, (err as Error).message);
        throw err;
      }
    }),

    /** Providers that failed within the cool-down (health memory, kept on this host). */
    provenantCoolingProviders: boundary(async (r: { providerIds: string[]; cooldownMs: number }): Promise<string[]> => {
      return health.cooling(r.providerIds, r.cooldownMs);
    }),

    provenantWriteManifest: boundary(
      async (
        s: StageRef & {
          rootCid: string; sourcePath: string; meta: Record<string, string>; createdAt: string; shardBytes: number;
          /** The original source of a mirrored tree (`s3://…`, URLs), recorded instead of the mirror's path. */
          sourceKind?: string; sourceUri?: string;
        },
      ): Promise<PieceRef> => {
        const dir = stageDir(s);
        return writeManifest(
          {
            datasetId: s.datasetId,
            root: s.rootCid,
            source: { kind: s.sourceKind ?? 'local', uri: s.sourceUri ?? `file://${path.resolve(s.sourcePath)}`, host: os.hostname() },
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

    /** Spot-check replicas against the block index recorded at archive time. */
    provenantVerifyReplicas: boundary(
      async (r: { manifestCid: string; replicas: ReplicaRef[]; seed: string; probability: number; lossFraction: number }): Promise<VerifyResult[]> => {
        const { manifest, pages } = await loadManifest(r.manifestCid);
        const out: VerifyResult[] = [];
        for (const rep of r.replicas) {
          const blocks = rep.shard >= 0 ? shardIndex(manifest, pages, rep.shard) : [];
          let p: StorageProvider;
          try {
            p = providers.get(rep.providerId);
          } catch (err) {
            out.push({ pieceCid: rep.pieceCid, providerId: rep.providerId, state: 'unreachable', challenges: 0, failed: 0, detectionProbability: 0, evidence: (err as Error).message });
            continue;
          }
          out.push(await verifyReplica(p, rep.pieceCid, { blocks }, { seed: r.seed, probability: r.probability, lossFraction: r.lossFraction, carCid: rep.carCid, signal: Context.current().cancellationSignal }));
          Context.current().heartbeat(out.length);
        }
        return out;
      },
    ),

    /** Copy a piece from the first source whose bytes match its CAR CID onto `to`. */
    provenantCopyPiece: boundary((r: { piece: PieceRef; from: string[]; to: string }): Promise<Placement> => whileBeating(async () => {
      const dir = path.join(config.dataDir, 'cache', 'repair');
      await fsp.mkdir(dir, { recursive: true });
      const file = path.join(dir, `${r.piece.pieceCid}.${process.pid}.car`);
      const problems: string[] = [];
      try {
        for (const id of r.from) {
          const src = providers.get(id);
          const hash = crypto.createHash('sha256');
          const out = fs.createWriteStream(file);
          try {
            for await (const c of src.readRange(r.piece, 0, undefined)) {
              hash.update(c as Buffer);
              if (!out.write(c)) await new Promise<void>((res) => out.once('drain', () => res()));
            }
            await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
          } catch (err) {
            out.destroy();
            problems.push(`${id}: ${(err as Error).message}`);
            continue;
          }
          if (carCidFromSha256(hash.digest()) !== r.piece.carCid) {
            problems.push(`${id}: copy is corrupt`);
            continue;
          }
          const placed = await providers.get(r.to).put(r.piece, () => fs.createReadStream(file), {
            signal: Context.current().cancellationSignal, localFile: file, consumeLocalFile: true,
          });
          return { ...placed, evidence: `copied from ${id}, whose bytes matched its CAR CID` };
        }
        throw new NoHealthyReplicaError(`no healthy source for piece ${r.piece.pieceCid}: ${problems.join('; ') || 'no sources'}`);
      } finally {
        await fsp.rm(file, { force: true });
      }
    })),

    provenantRenewPiece: boundary(async (r: { pieceCid: string; providerId: string }): Promise<{ renewed: boolean; expiresAt?: string }> => {
      const p = providers.get(r.providerId);
      if (!p.renew) return { renewed: false };
      return { renewed: true, ...(await p.renew({ pieceCid: r.pieceCid })) };
    }),

    provenantRetirePiece: boundary(async (r: { pieceCid: string; providerId: string }): Promise<{ deleted: boolean; error?: string }> => {
      try {
        await providers.get(r.providerId).delete({ pieceCid: r.pieceCid });
        return { deleted: true };
      } catch (err) {
        return { deleted: false, error: (err as Error).message };
      }
    }),

    provenantAppendAudit: boundary(
      async (r: { datasetId: string; prev: { cid: string | null; seq: number }; events: (AuditEvent & { time: string })[]; providerIds: string[] }) => {
        return appendRecords(r.datasetId, r.prev, r.events, r.providerIds.map((id) => providers.get(id)));
      },
    ),

    /** Signal every running steward (optionally only those of one health) to verify soon. */
    provenantSweepStewards: boundary(async (r: { health?: string }): Promise<{ signalled: number }> => {
      const client = Context.current().client;
      let query = `WorkflowType = 'stewardDataset' AND ExecutionStatus = 'Running'`;
      if (r.health) query += ` AND ProvenantHealth = '${r.health.replace(/[^a-z]/g, '')}'`;
      let signalled = 0;
      for await (const w of client.workflow.list({ query })) {
        await client.workflow.getHandle(w.workflowId).signal('sweep');
        signalled++;
        if (signalled % 100 === 0) Context.current().heartbeat(signalled);
      }
      return { signalled };
    }),

    provenantShardPieces: boundary(async (r: { manifestCid: string }): Promise<{ shard: number; pieceCid: string; carCid: string; rootCid: string; bytes: number }[]> => {
      const { manifest } = await loadManifest(r.manifestCid);
      return manifest.shards.map((s) => ({ shard: s.index, pieceCid: s.pieceCid, carCid: s.carCid, rootCid: s.rootCid, bytes: s.carBytes }));
    }),
  };
  // Not an activity (not enumerable): lets the worker release provider clients when it stops.
  Object.defineProperty(activities, CLOSE_PROVIDERS, { value: () => providers.close(), enumerable: false });
  return activities;
}

const CLOSE_PROVIDERS = Symbol('provenant.closeProviders');

/** Close the provider clients (S3 sockets and the like) behind a set of activities. */
export async function closeActivities(activities: object): Promise<void> {
  await (activities as { [CLOSE_PROVIDERS]?: () => Promise<void> })[CLOSE_PROVIDERS]?.();
}

/** Read an audit chain back (used by the CLI; not an activity). */
export async function readAudit(config: Config, head: string, extra: StorageProvider[] = []): Promise<{ records: (AuditRecord & { cid: string })[]; problems: AuditProblem[] }> {
  const set = new ProviderSet(config.providers, extra);
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'provenant-audit-'));
  try {
    return await readChain(head, set.all(), work);
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

export type ProvenantActivities = ReturnType<typeof createActivities>;
