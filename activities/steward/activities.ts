/**
 * Steward stage (any worker): spot-check replicas, append to the audit log, list a dataset's
 * pieces, and sweep the fleet of stewards; the replica table (built from an archive run's
 * placement journal on its host, or from a list) and the paged steward round over it.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import type { Config } from '../../config/schema.js';
import type { HostQueueActivities, SharedQueueActivities } from '../../shared/activities.js';
import { sweepSignal } from '../../shared/api.js';
import { isShardSampled } from '../../shared/sampling.js';
import type {
  ReplicaRef,
  StewardReplica,
  StewardSampleRequest,
  StewardSampleResult,
  TimedAuditEvent,
  VerifyResult,
} from '../../shared/types.js';
import { appendRecords, readChain, type AuditProblem, type AuditRecord } from '../audit/audit.js';
import type { StageContext } from '../context.js';
import { signingKeyOf, type SigningKey } from '../evidence/keys.js';
import { signManifest } from '../evidence/sign.js';
import { manifestShards, shardCount, shardIndex } from '../manifest/manifest.js';
import type { StorageProvider } from '../providers/provider.js';
import { ProviderSet } from '../providers/registry.js';
import { copyPiece, renewPiece, retirePiece } from '../replicate/activities.js';
import { boundary } from '../temporal.js';
import { verifyReplica } from '../verify/verify.js';
import { encryptedContext, runEncryption } from '../encryption/keys.js';
import { checkAuditChain } from './audit-check.js';
import { readJournal, replicaOf } from './journal.js';
import { stewardPage } from './round.js';
import { TableStore, type TableRoot } from './table.js';

export { EMPTY_TABLE, TableStore, type TableRoot } from './table.js';

/** Audit events kept while no provider takes them; beyond this the oldest are summarised (as the workflow does). */
const MAX_UNAUDITED = 200;

type Loaded = Awaited<ReturnType<StageContext['loadManifest']>>;

/** Spot-check one replica against the manifest's block index (unreachable when its provider is unknown). */
async function verifyOne(
  ctx: StageContext,
  m: Loaded,
  rep: ReplicaRef & Pick<StewardReplica, 'commitment'>,
  o: { seed: string; probability: number; lossFraction: number; signal: AbortSignal },
): Promise<VerifyResult> {
  const blocks = rep.shard >= 0 ? shardIndex(m.manifest, m.pages, rep.shard) : [];
  let p: StorageProvider;
  try {
    p = ctx.providers.get(rep.providerId);
  } catch (err) {
    const { pieceCid, providerId } = rep;
    return {
      pieceCid,
      providerId,
      state: 'unreachable',
      challenges: 0,
      failed: 0,
      detectionProbability: 0,
      evidence: (err as Error).message,
    };
  }
  // A copy whose put recorded no chain commitment (a commit confirmed later) asks for it each round until found.
  return verifyReplica(p, rep.pieceCid, { blocks }, { ...o, carCid: rep.carCid, commitment: !rep.commitment }).then(
    (v) => ctx.metrics.verified(v),
  );
}

/** `ctx` whose providers see a dataset's shards as the manifest stores them (decrypted when encrypted; the manifest's own piece as it is). */
function shardContext(ctx: StageContext, m: Loaded): StageContext {
  return encryptedContext(ctx, m.manifest.encryption, { plain: new Set([m.piece.pieceCid]) });
}

/** The table store of a worker: reads from every configured provider, caches checked blocks. */
export function tableStoreOf(ctx: Pick<StageContext, 'config' | 'providers'>): TableStore {
  return new TableStore(ctx.providers.all(), path.join(ctx.config.dataDir, 'cache', 'replica-tables'));
}

/** Events as plain JSON (dag-json takes no undefined fields). */
const plainEvents = (e: TimedAuditEvent[]): TimedAuditEvent[] => JSON.parse(JSON.stringify(e)) as TimedAuditEvent[];

function capUnaudited(all: TimedAuditEvent[]): TimedAuditEvent[] {
  if (all.length <= MAX_UNAUDITED) return all;
  const dropped = all.length - MAX_UNAUDITED + 1;
  return [
    {
      kind: 'verify',
      result: `${dropped} audit events could not be stored while every provider was unreachable`,
      time: all[dropped - 1]!.time,
    },
    ...all.slice(dropped),
  ];
}

/**
 * The worker's signing key, read from its key file on first use (the key never rides in a
 * payload). A key file that cannot be read fails the activity with SigningKeyError each time.
 */
export function keyOnce(ctx: Pick<StageContext, 'config'>): () => SigningKey | undefined {
  let loaded: { key: SigningKey | undefined } | undefined;
  return () => (loaded ??= { key: signingKeyOf(ctx.config) }).key;
}

/** A new table's root fields; with a key, the manifest's signature rides in the root (and stays in every later root). */
function tableMeta(
  key: SigningKey | undefined,
  m: { datasetId: string; manifestCid: string; pageReplicas: number },
): Omit<TableRoot, 'type' | 'version' | 'pages'> {
  const meta = { datasetId: m.datasetId, manifestCid: m.manifestCid, pageReplicas: m.pageReplicas };
  if (!key) return meta;
  const signed = { ...meta, manifestSignature: signManifest(m.manifestCid, m.datasetId, key) };
  return signed;
}

/**
 * Append a call's audit events, after those kept from earlier calls, to the log on `on`, signed
 * with the worker's key when it has one; when no provider takes them they come back (capped) to be
 * appended next time. A bad key file fails the call with its reason instead.
 */
export async function appendEvents(
  r: { datasetId: string; audit: { cid: string | null; seq: number }; pendingEvents?: TimedAuditEvent[] },
  events: TimedAuditEvent[],
  on: StorageProvider[],
  signingKey: () => SigningKey | undefined,
): Promise<{ audit: { cid: string | null; seq: number }; unaudited?: TimedAuditEvent[] }> {
  const all = plainEvents([...(r.pendingEvents ?? []), ...events]);
  if (all.length === 0) return { audit: r.audit };
  const key = signingKey();
  try {
    const a = await appendRecords(r.datasetId, r.audit, all, on, { key });
    return { audit: { cid: a.head, seq: a.seq } };
  } catch {
    return { audit: r.audit, unaudited: capUnaudited(all) };
  }
}

/** The configured providers among `ids` (ids this worker does not know are left out). */
export function knownProviders(ctx: Pick<StageContext, 'providers'>, ids: string[]): StorageProvider[] {
  return ids.flatMap((id) => {
    try {
      return [ctx.providers.get(id)];
    } catch {
      return [];
    }
  });
}

export function createStewardActivities(ctx: StageContext) {
  const { providers, loadManifest, stageDir } = ctx;
  const store = tableStoreOf(ctx);
  const signingKey = keyOnce(ctx);
  const storeOn = (ids: string[]) => knownProviders(ctx, ids);

  const shared = {
    provenantVerifyReplicas: boundary(async (r) => {
      const m = await loadManifest(r.manifestCid);
      const sctx = shardContext(ctx, m);
      const signal = Context.current().cancellationSignal;
      const out: VerifyResult[] = [];
      for (const rep of r.replicas) {
        out.push(
          await verifyOne(sctx, m, rep, {
            seed: r.seed,
            probability: r.probability,
            lossFraction: r.lossFraction,
            signal,
          }),
        );
        Context.current().heartbeat(out.length);
      }
      return out;
    }),

    provenantStewardPages: boundary(async (req) => {
      // The request may carry the round's shard sample (a seed and counts: StewardSampleRequest).
      const r = req as typeof req & StewardSampleRequest;
      // The manifest first: without it nothing can be verified (and the round says so).
      const m = await loadManifest(r.manifestCid);
      const shards = shardCount(m.manifest);
      const sctx = shardContext(ctx, m);
      const plan = r.sample;
      // A piece outside the manifest's shards (none today) is verified every round, like the manifest.
      const sampled = plan ? (shard: number) => shard >= shards || isShardSampled(shard, shards, plan) : undefined;
      const root = await store.root(r.tableCid);
      const signal = Context.current().cancellationSignal;
      let beats = 0;
      const beat = () => Context.current().heartbeat(++beats);
      const ops = {
        verify: (rep: StewardReplica) =>
          verifyOne(sctx, m, rep, {
            seed: r.seed,
            probability: r.settings.detectionProbability,
            lossFraction: r.settings.lossFraction,
            signal,
          }),
        renew: (x: { pieceCid: string; providerId: string }) => renewPiece(sctx, x),
        copy: (x: {
          piece: { pieceCid: string; carCid: string; rootCid: string; bytes: number };
          from: string[];
          to: string;
        }) => copyPiece(sctx, x),
        retire: (x: { pieceCid: string; providerId: string }) => retirePiece(sctx, x),
      };
      let down = new Set(r.down);
      const slice = root.pages.slice(r.from, r.from + r.count);
      const kept: StewardReplica[] = [];
      const events: TimedAuditEvent[] = [];
      const out = {
        checked: 0,
        healthy: 0,
        challenges: 0,
        minProbability: 1,
        counters: { repairs: 0, renewals: 0, retired: 0 },
        checkedShards: 0,
        skipped: 0,
      };
      for (const entry of slice) {
        const page = await store.page(entry.cid.toString());
        const res = await stewardPage(ops, page, { ...r, down: [...down], ...(sampled ? { sampled } : {}) }, beat);
        kept.push(...res.replicas);
        events.push(...res.events);
        down = res.down;
        out.checked += res.checked;
        out.healthy += res.healthy;
        out.challenges += res.challenges;
        out.minProbability = Math.min(out.minProbability, res.minProbability);
        out.checkedShards += res.checkedShards;
        out.skipped += res.skipped;
        for (const k of ['repairs', 'renewals', 'retired'] as const) out.counters[k] += res.counters[k];
      }
      // Blocks and records go to the providers that answered (all given, if none did).
      const up = r.storeOn.filter((id) => !down.has(id));
      const on = storeOn(up.length ? up : r.storeOn);
      const { table, written } = await store.replacePages(root, r.from, r.count, kept, r.pageReplicas, on);
      const { audit, unaudited } = await appendEvents(r, events, on, signingKey);
      ctx.metrics.stewarded(r.datasetId, out.counters, table);
      return {
        table,
        next: r.from + written,
        audit,
        ...(unaudited ? { unaudited } : {}),
        ...out,
        ...({ shards } satisfies StewardSampleResult),
        down: [...down],
      };
    }),

    provenantPruneReplicaTable: boundary(async (r) => {
      const keep = new Set<string>();
      if (r.keep) {
        keep.add(r.keep);
        for (const p of (await store.root(r.keep)).pages) keep.add(p.cid.toString());
      }
      const roots: string[] = [];
      const pages = new Set<string>();
      for (const d of r.drop) {
        if (keep.has(d)) continue;
        roots.push(d);
        const root = await store.root(d).catch(() => undefined); // already gone: nothing more to find
        for (const p of root?.pages ?? []) if (!keep.has(p.cid.toString())) pages.add(p.cid.toString());
      }
      // Pages before the roots that list them: a retry after a crash part-way still finds every page
      // left through its root (deleting a root first would orphan its pages at the providers).
      const garbage = new Set([...pages, ...roots]);
      let deleted = 0;
      for (const cid of garbage) {
        for (const p of storeOn(r.providerIds)) {
          const ref = await p.locate(cid).catch(() => undefined);
          if (!ref) continue;
          const res = await retirePiece(ctx, { pieceCid: ref.pieceCid, providerId: p.id });
          if (res.deleted) deleted++;
        }
        store.forget(cid);
        Context.current().heartbeat(deleted);
      }
      return { deleted };
    }),

    provenantReplicaTableFromList: boundary(async (r) =>
      ctx.metrics.replicas(
        r.datasetId,
        await store.build(tableMeta(signingKey(), r), r.replicas, storeOn(r.providerIds)),
      ),
    ),

    provenantAppendAudit: boundary(async (r) =>
      appendRecords(
        r.datasetId,
        r.prev,
        r.events,
        r.providerIds.map((id) => providers.get(id)),
        { key: signingKey() },
      ),
    ),

    provenantCheckAudit: boundary(async (r) => {
      let beats = 0;
      return checkAuditChain(storeOn(r.providerIds), r, {
        signal: Context.current().cancellationSignal,
        beat: () => Context.current().heartbeat(++beats),
      });
    }),

    provenantSweepStewards: boundary(async (r) => {
      const client = Context.current().client;
      let query = `WorkflowType = 'stewardDataset' AND ExecutionStatus = 'Running'`;
      if (r.health) query += ` AND ProvenantHealth = '${r.health.replace(/[^a-z]/g, '')}'`;
      let signalled = 0;
      for await (const w of client.workflow.list({ query })) {
        await client.workflow.getHandle(w.workflowId).signal(sweepSignal);
        signalled++;
        if (signalled % 100 === 0) Context.current().heartbeat(signalled);
      }
      return { signalled };
    }),

    provenantShardPieces: boundary(async (r) => {
      const { manifest, pages } = await loadManifest(r.manifestCid);
      return [...manifestShards(manifest, pages)].map((s) => ({
        shard: s.index,
        pieceCid: s.pieceCid,
        carCid: s.carCid,
        rootCid: s.rootCid,
        bytes: s.carBytes,
      }));
    }),
  } satisfies Pick<
    SharedQueueActivities,
    | 'provenantVerifyReplicas'
    | 'provenantAppendAudit'
    | 'provenantCheckAudit'
    | 'provenantSweepStewards'
    | 'provenantShardPieces'
    | 'provenantStewardPages'
    | 'provenantReplicaTableFromList'
    | 'provenantPruneReplicaTable'
  >;

  const host = {
    /** The run's replica table from its placement journal: the steward gets its reference, not every replica. */
    provenantBuildReplicaTable: boundary(async (s) => {
      const replicas = (await readJournal(stageDir(s))).map(replicaOf);
      return ctx.metrics.replicas(
        s.datasetId,
        await store.build(tableMeta(signingKey(), s), replicas, storeOn(s.providerIds)),
      );
    }),

    /** An archive that cannot complete removes every copy its journal lists as created by this run. */
    provenantRetireJournaled: boundary(async (s) => {
      let retired = 0;
      let failed = 0;
      const sctx = encryptedContext(ctx, await runEncryption(stageDir(s)));
      for (const l of await readJournal(stageDir(s))) {
        if (!l.created) continue;
        const res = await retirePiece(l.shard >= 0 ? sctx : ctx, {
          pieceCid: l.piece.pieceCid,
          providerId: l.placement.providerId,
        });
        if (res.deleted) retired++;
        else failed++;
        Context.current().heartbeat(retired + failed);
      }
      return { retired, failed };
    }),
  } satisfies Pick<HostQueueActivities, 'provenantBuildReplicaTable' | 'provenantRetireJournaled'>;
  return { shared, host };
}

/**
 * Read a replica table back (the CLI's `status`; not an activity): its root and every replica,
 * page by page, each block checked against its CID. `tableCid` is `StewardStatus.replicaTable.tableCid`.
 */
export async function readReplicaTable(
  config: Config,
  tableCid: string | null,
  extra: StorageProvider[] = [],
): Promise<{ root?: TableRoot; replicas: StewardReplica[] }> {
  if (!tableCid) return { replicas: [] };
  const store = tableStoreOf({ config, providers: new ProviderSet(config.providers, extra) });
  const root = await store.root(tableCid);
  const replicas: StewardReplica[] = [];
  for await (const page of store.replicas(tableCid)) replicas.push(...page);
  return { root, replicas };
}

/** Read an audit chain back, checking every stored copy (the CLI's `audit`; not an activity). */
export async function readAudit(
  config: Config,
  head: string,
  extra: StorageProvider[] = [],
): Promise<{ records: (AuditRecord & { cid: string })[]; problems: AuditProblem[] }> {
  const set = new ProviderSet(config.providers, extra);
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'provenant-audit-'));
  try {
    return await readChain(head, set.all(), work);
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}
