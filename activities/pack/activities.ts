/**
 * Pack stage (host queue): pack the listing into CAR shards, page the shard list back to the
 * workflow, write the manifest from the finished pack, and remove a run's staging.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Context, activityInfo } from '@temporalio/activity';
import type { HostQueueActivities, SharedQueueActivities } from '../../shared/activities.js';
import type { ShardRef } from '../../shared/types.js';
import { TOOL_NAME, TOOL_VERSION } from '../../version.js';
import type { StageContext } from '../context.js';
import { writeManifest } from '../manifest/manifest.js';
import {
  encryptedContext,
  refusePlaintextOnlyProviders,
  runEncryption,
  startRunEncryption,
} from '../encryption/keys.js';
import { adoptingProviders, MAX_TWINS } from '../replicate/twins.js';
import { boundary, heartbeater, shardAnnouncer, untilSourceGivesUp, whileBeating } from '../temporal.js';
import { packInThread } from './index.js';
import { CHECKPOINT, FILES, readCheckpoint, readShards, type PackProgress } from './packer.js';
import { CHUNK_BYTES } from './unixfs.js';
import { FOC_MAX_PIECE_BYTES } from '../../config/schema.js';
import type { ShardInfo } from './shard-writer.js';
import { retirePiece } from '../replicate/activities.js';
import { stitch } from './stitch.js';
import { packUnit, unitStore } from './unit-pack.js';
import {
  dropRunRecords,
  dropUnitBlocks,
  loadBlock,
  planUnits,
  RESULT_PAGE_TYPE,
  storeBlock,
  UNIT_RESULT_TYPE,
  type ResultPage,
  type UnitResult,
} from './units.js';

const shardRef = (sh: ShardInfo): ShardRef => ({
  index: sh.index,
  carCid: sh.carCid,
  pieceCid: sh.pieceCid,
  rootCid: sh.rootCid,
  bytes: sh.carBytes,
});

export function createPackActivities(ctx: StageContext) {
  const { providers, stageDir } = ctx;
  const host = {
    /**
     * Pack the listing into CAR shards (resuming from the checkpoint). With `announce`, each shard
     * is signalled to the calling workflow as soon as it is durable, so that it can be replicated
     * while the rest is packed. With `replicas`, the shards' copies to be made and the providers
     * they may go to: for each copy short of the last that a provider on this filesystem may take
     * in by moving a file, a twin of each shard is written while packing (see shard-hasher.ts).
     */
    provenantPack: boundary(async (s) => {
      const dir = stageDir(s);
      fs.mkdirSync(dir, { recursive: true });
      // The run's data key is drawn here, once (shards are encrypted as they are stored, never staged so).
      const encrypted = await startRunEncryption(ctx.config, dir);
      if (encrypted && s.replicas) refusePlaintextOnlyProviders(s.replicas.providerIds.map((id) => providers.get(id)));
      // Twins are staged plaintext, for providers that move files in: none under encryption.
      const twins =
        s.replicas && !encrypted
          ? Math.min(s.replicas.copies - 1, MAX_TWINS, await adoptingProviders(providers, s.replicas.providerIds, dir))
          : 0;
      const actx = Context.current();
      const resumeFrom = activityInfo().heartbeatDetails as PackProgress | undefined;
      const cp = readCheckpoint(dir);
      let latest: PackProgress = {
        shardsDone: cp?.shards.length ?? resumeFrom?.shardsDone ?? 0,
        files: cp?.files ?? 0,
        bytes: cp?.bytes ?? 0,
      };
      const beat = heartbeater();
      beat(latest, true);
      const timer = setInterval(() => beat(latest, true), 5000);
      const announcer = s.announce ? shardAnnouncer(actx) : undefined;
      // A resumed pack announces the shards an earlier attempt closed, too.
      if (announcer && cp) for (const sh of cp.shards) announcer.add(shardRef(sh));
      try {
        const input = {
          sourceRoot: path.resolve(s.sourcePath),
          ...(s.source ? { remote: s.source } : {}),
          listingPath: path.join(dir, 'listing.ndjson'),
          dir,
          shardBytes: s.shardBytes,
          twins,
          // Staging is this host's: its bound comes from this worker's config.
          stagingWindowShards: ctx.config.pack.stagingWindowShards,
          ...(s.chunkBytes ? { chunkBytes: s.chunkBytes } : {}),
        };
        const packed = await untilSourceGivesUp(ctx.config.temporal.sourceUnavailableFor, () =>
          packInThread(
            input,
            ({ closed, ...p }) => {
              latest = p;
              if (closed) announcer?.add(shardRef(closed));
              beat(p);
            },
            actx.cancellationSignal,
          ),
        );
        ctx.metrics.packed({ carBytes: packed.carBytes, shards: packed.shardsWritten });
        return packed;
      } finally {
        clearInterval(timer);
        await announcer?.flush();
      }
    }),

    provenantShardPage: boundary(async (s) => {
      const dir = stageDir(s);
      if (!s.wait)
        return readShards(dir)
          .slice(s.from, s.from + s.count)
          .map(shardRef);
      // Shards are durable (in the checkpoint) as they close: a replication child reads them while
      // the pack runs (which, with a staging window, waits for their copies in turn).
      const actx = Context.current();
      let seen = '';
      for (;;) {
        // Each checkpoint is a new file (written aside, renamed over): a new inode.
        const st = fs.statSync(path.join(dir, CHECKPOINT), { throwIfNoEntry: false });
        const version = st ? `${st.ino}:${st.mtimeMs}:${st.size}` : '';
        if (version !== seen) {
          seen = version;
          const cp = readCheckpoint(dir);
          const shards = cp?.shards ?? [];
          if (cp?.done || shards.length > s.from) return shards.slice(s.from, s.from + s.count).map(shardRef);
        }
        actx.heartbeat();
        await actx.sleep(250);
      }
    }),

    provenantWriteManifest: boundary(async (s) => {
      const dir = stageDir(s);
      const encryption = await runEncryption(dir);
      return writeManifest(
        {
          datasetId: s.datasetId,
          root: s.rootCid,
          source: {
            kind: s.sourceKind ?? 'local',
            uri: s.sourceUri ?? `file://${path.resolve(s.sourcePath)}`,
            host: os.hostname(),
          },
          meta: s.meta,
          ...(s.derivedFrom?.length ? { derivedFrom: s.derivedFrom } : {}),
          tool: { name: TOOL_NAME, version: TOOL_VERSION },
          createdAt: s.createdAt,
          layout: { chunkBytes: s.chunkBytes ?? CHUNK_BYTES, fileWidth: 1024, shardBytes: s.shardBytes },
          ...(encryption ? { encryption } : {}),
        },
        readShards(dir),
        path.join(dir, FILES),
        path.join(dir, 'manifest.car'),
        // The manifest is one piece: capped at what providers take (a Filecoin Onchain Cloud piece),
        // not at the shard size (many small shards make a manifest of block indexes larger than one).
        Math.max(s.shardBytes, FOC_MAX_PIECE_BYTES),
      );
    }),

    provenantCleanup: boundary(async (s) => {
      await fsp.rm(stageDir(s), { recursive: true, force: true });
    }),
    // Heartbeats while it stores the plan blocks (a block per unit: thousands for a large dataset).
    provenantPlanUnits: boundary(async (s) =>
      whileBeating(async () => {
        // The run's data key is drawn here, once; its wrapped form rides in the plan's pages to
        // the units' workers, each unwrapping it with its own key-encryption key.
        const encryption = await startRunEncryption(ctx.config, stageDir(s));
        if (encryption && s.providerIds) refusePlaintextOnlyProviders(s.providerIds.map((id) => providers.get(id)));
        const store = unitStore(ctx);
        const plan = await planUnits(
          path.join(stageDir(s), 'listing.ndjson'),
          { ...s, ...(encryption ? { encryption } : {}) },
          (v) => storeBlock(store, v),
        );
        return { ...plan, host: os.hostname() };
      }),
    ),
  } satisfies Pick<
    HostQueueActivities,
    'provenantPack' | 'provenantShardPage' | 'provenantWriteManifest' | 'provenantCleanup' | 'provenantPlanUnits'
  >;

  /** Packing in units (units.ts): any worker on the shared queue runs these. */
  const shared = {
    provenantPackUnit: boundary(async (r) => {
      const beat = heartbeater();
      let latest: unknown = { unit: r.slot };
      const timer = setInterval(() => beat(latest, true), 2000);
      try {
        return await untilSourceGivesUp(ctx.config.temporal.sourceUnavailableFor, () =>
          packUnit(ctx, r, {
            signal: Context.current().cancellationSignal,
            onProgress: (p) => {
              latest = p;
              beat(p);
            },
          }),
        );
      } finally {
        clearInterval(timer);
      }
    }),
    provenantStoreResultPage: boundary(async (r) =>
      whileBeating(() => storeBlock(unitStore(ctx), { type: RESULT_PAGE_TYPE, results: r.results })),
    ),
    provenantStitch: boundary(async (r) => {
      const beat = heartbeater();
      let latest: unknown = {};
      const timer = setInterval(() => beat(latest, true), 2000);
      try {
        return await stitch(ctx, r, {
          signal: Context.current().cancellationSignal,
          onProgress: (p) => {
            latest = p;
            beat(p);
          },
        });
      } finally {
        clearInterval(timer);
      }
    }),
    provenantDropUnitBlocks: boundary(async (r) =>
      whileBeating(async () => ({ dropped: await dropUnitBlocks(unitStore(ctx), ctx.providers.all(), r) })),
    ),
    provenantRetireUnits: boundary(async (r) =>
      whileBeating(async () => {
        const store = unitStore(ctx);
        const results = [...(r.results ?? [])];
        for (const page of r.resultPages ?? [])
          results.push(...(await loadBlock<ResultPage>(store, page, RESULT_PAGE_TYPE)).results);
        let retired = 0;
        let failed = 0;
        for (const cid of results) {
          const res = await loadBlock<UnitResult>(store, cid, UNIT_RESULT_TYPE);
          // An encrypting run's shards are stored under ids of its data key: the result names them
          // (storedAs), so no key is needed here; a result from before that needs the key.
          let keyed: StageContext | undefined;
          for (const l of res.placements) {
            if (l.placement.existed) continue;
            const storedAs = res.storedAs?.[l.piece.pieceCid];
            const [rctx, pieceCid] = storedAs
              ? [ctx, storedAs]
              : [(keyed ??= encryptedContext(ctx, res.encryption)), l.piece.pieceCid];
            const done = await retirePiece(rctx, { pieceCid, providerId: l.placement.providerId });
            if (done.deleted) retired++;
            else failed++;
            Context.current().heartbeat(retired + failed);
          }
        }
        // The run's call records go too (the plan's and results' blocks stay, as before).
        if (r.runKey && r.planPages)
          await dropRunRecords(store, ctx.providers.all(), { runKey: r.runKey, planPages: r.planPages });
        return { retired, failed };
      }),
    ),
  } satisfies Pick<
    SharedQueueActivities,
    | 'provenantPackUnit'
    | 'provenantStoreResultPage'
    | 'provenantStitch'
    | 'provenantRetireUnits'
    | 'provenantDropUnitBlocks'
  >;
  return { host, shared };
}
