/**
 * Operations on a dataset's replicas outside the steward's ordinary round (any worker):
 * - the evacuation pass of `provenant rehome`: each piece with a copy on a provider being left
 *   gets new copies elsewhere (copied from a healthy replica, under the dataset's placement
 *   policy), each new copy is spot-checked, and only then the old copies are retired; every step
 *   is an audit event of kind 'rehome';
 * - the deletion of a retired dataset (`provenant retire --delete`): every replica in its table
 *   and the table's own blocks, idempotent and resumable from its heartbeat;
 * - the fleet side of a rehome: a page of running stewards, and one steward's evacuation.
 * The decisions of a pass are `evacuatePage`, with its side effects behind `EvacuateOps`.
 */
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { providerRefs } from '../../config/schema.js';
import type { EvacuatePagesRequest, EvacuatePagesResult, SharedQueueActivities } from '../../shared/activities.js';
import { evacuateUpdate, stewardStatusQuery } from '../../shared/api.js';
import { nextProvider } from '../../shared/placement.js';
import type {
  Placement,
  PieceRef,
  PlacementPolicyInput,
  ProviderRef,
  StewardReplica,
  TimedAuditEvent,
  VerifyResult,
} from '../../shared/types.js';
import type { StageContext } from '../context.js';
import { ManifestNotFoundError } from '../errors.js';
import { findRecord, putRecord } from '../providers/kit/records.js';
import type { StorageProvider } from '../providers/provider.js';
import { shardIndex } from '../manifest/manifest.js';
import { encryptedContext } from '../encryption/keys.js';
import { copyPiece, retirePiece } from '../replicate/activities.js';
import { boundary, whileBeating } from '../temporal.js';
import { verifyReplica } from '../verify/verify.js';
import { appendEvents, keyOnce, knownProviders, tableStoreOf } from './activities.js';
import { isCounted } from './round.js';

export interface EvacuateOps {
  verify(r: StewardReplica): Promise<VerifyResult>;
  copy(r: { piece: PieceRef; from: string[]; to: string }): Promise<Placement>;
  retire(r: { pieceCid: string; providerId: string }): Promise<{ deleted: boolean; error?: string }>;
}

export interface EvacuateRules {
  now: number;
  copies: number;
  providers: ProviderRef[];
  policy: PlacementPolicyInput;
  settings: EvacuatePagesRequest['settings'];
  evacuate: string[];
  to?: string[];
  down: string[];
}

export interface EvacuateOutcome {
  replicas: StewardReplica[];
  events: TimedAuditEvent[];
  /** Old copies retired after enough new ones verified. */
  moved: number;
  /** Old copies kept: not enough verified copies elsewhere yet. */
  remaining: number;
  repairs: number;
  down: Set<string>;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * One page of an evacuation pass. For each piece with a copy on a provider in `evacuate`: the
 * copies that stay (elsewhere, counted) are topped up to `copies` on providers the policy allows
 * (`to` only, when given; never one being left or one that is down), each new copy verified
 * before it counts; then, and only then, the old copies are retired: deleted where the provider
 * answers, dropped from the table where it does not (the event says which).
 */
export async function evacuatePage(
  ops: EvacuateOps,
  page: StewardReplica[],
  rules: EvacuateRules,
  beat: () => void = () => undefined,
): Promise<EvacuateOutcome> {
  const { now, copies, policy, settings } = rules;
  const leaving = new Set(rules.evacuate);
  const down = new Set(rules.down);
  const targets = rules.providers.filter((p) => !leaving.has(p.id) && (!rules.to || rules.to.includes(p.id)));
  const events: TimedAuditEvent[] = [];
  let replicas = page.map((r) => ({ ...r }));
  let moved = 0;
  let remaining = 0;
  let repairs = 0;
  const byPiece = new Map<string, StewardReplica[]>();
  for (const r of replicas) byPiece.set(r.pieceCid, [...(byPiece.get(r.pieceCid) ?? []), r]);
  for (const [pieceCid, reps] of byPiece) {
    const old = reps.filter((r) => leaving.has(r.providerId));
    if (old.length === 0) continue;
    const stay = reps.filter((r) => !leaving.has(r.providerId) && isCounted(r, now, settings));
    // Sources: the copies that stay first, then a healthy old one (a provider still readable).
    const sources = [...stay.filter((r) => r.state === 'healthy'), ...old.filter((r) => r.state === 'healthy')].map(
      (r) => r.providerId,
    );
    const holding = rules.providers.filter((p) => stay.some((r) => r.providerId === p.id));
    const tried = new Set([...down, ...leaving, ...reps.filter((r) => !stay.includes(r)).map((r) => r.providerId)]);
    const template = reps[0]!;
    let need = copies - stay.length;
    if (need > 0 && sources.length === 0) {
      events.push({
        kind: 'rehome',
        pieceCid,
        result: `not moved off ${old.map((r) => r.providerId).join('/')}: no healthy replica to copy from`,
        time: iso(now),
      });
    }
    while (need > 0 && sources.length > 0) {
      const next = nextProvider(targets, policy, { slot: 0, placed: holding, tried, pieceBytes: template.bytes });
      if (!next.provider) {
        events.push({
          kind: 'rehome',
          pieceCid,
          result: `${need} more copies needed before leaving ${old.map((r) => r.providerId).join('/')}; no provider left that the placement policy allows (${next.unmet})`,
          time: iso(now),
        });
        break;
      }
      const p = next.provider;
      tried.add(p.id);
      const piece = { pieceCid, carCid: template.carCid, rootCid: template.rootCid, bytes: template.bytes };
      let placed: Placement;
      try {
        placed = await ops.copy({ piece, from: sources, to: p.id });
      } catch (err) {
        events.push({
          kind: 'rehome',
          pieceCid,
          providerId: p.id,
          result: 'copy failed',
          evidence: (err as Error).message,
          time: iso(now),
        });
        beat();
        continue;
      }
      const fresh: StewardReplica = { ...template, providerId: p.id, state: 'unknown' };
      delete fresh.unreachableSince;
      delete fresh.expiresAt;
      delete fresh.commitment; // the template's chain record is another copy's
      if (placed.expiresAt) fresh.expiresAt = placed.expiresAt;
      if (placed.commitment) fresh.commitment = placed.commitment;
      // The new copy counts only once it passes the same spot checks as every replica.
      const v = await ops.verify(fresh);
      beat();
      fresh.state = v.state;
      fresh.lastCheckedAt = iso(now);
      fresh.lastEvidence = v.evidence;
      fresh.detectionProbability = v.detectionProbability;
      if (v.expiresAt) fresh.expiresAt = v.expiresAt;
      if (v.state !== 'healthy') {
        await ops.retire({ pieceCid, providerId: p.id });
        events.push({
          kind: 'rehome',
          pieceCid,
          providerId: p.id,
          result: `new copy failed verification (${v.state}); removed`,
          evidence: v.evidence,
          time: iso(now),
        });
        continue;
      }
      const replacing = replicas.find((r) => r.pieceCid === pieceCid && r.providerId === p.id);
      replicas = replicas.filter((r) => r !== replacing);
      replicas.push(fresh);
      stay.push(fresh);
      holding.push(p);
      need--;
      repairs++;
      events.push({
        kind: 'rehome',
        pieceCid,
        providerId: p.id,
        result: `new copy verified (${placed.evidence ?? 'copied from a verified replica'})`,
        challenges: v.challenges,
        detectionProbability: v.detectionProbability,
        evidence: v.evidence,
        time: iso(now),
      });
    }
    if (need > 0) {
      remaining += old.length;
      continue;
    }
    // Enough verified copies elsewhere: the old ones go.
    for (const r of old) {
      let result: string;
      let evidence: string | undefined;
      if (r.state === 'unreachable' || down.has(r.providerId)) {
        result = `dropped from the table after ${stay.length} copies verified elsewhere; ${r.providerId} is unreachable, its copy was not deleted`;
      } else {
        const res = await ops.retire({ pieceCid, providerId: r.providerId });
        beat();
        result = res.deleted
          ? `retired after ${stay.length} copies verified elsewhere; deleted from ${r.providerId}`
          : `retired after ${stay.length} copies verified elsewhere; delete at ${r.providerId} failed`;
        evidence = res.error;
      }
      replicas = replicas.filter((x) => x !== r);
      moved++;
      events.push({
        kind: 'rehome',
        pieceCid,
        providerId: r.providerId,
        result,
        ...(evidence ? { evidence } : {}),
        time: iso(now),
      });
    }
  }
  return { replicas, events, moved, remaining, repairs, down };
}

/** Spot-check one replica against the manifest's block index (unreachable when its provider is unknown). */
async function verifyOn(
  ctx: StageContext,
  m: Awaited<ReturnType<StageContext['loadManifest']>>,
  rep: StewardReplica,
  o: { seed: string; probability: number; lossFraction: number; signal: AbortSignal },
): Promise<VerifyResult> {
  const blocks = rep.shard >= 0 ? shardIndex(m.manifest, m.pages, rep.shard) : [];
  try {
    const v = await verifyReplica(
      ctx.providers.get(rep.providerId),
      rep.pieceCid,
      { blocks },
      { ...o, carCid: rep.carCid },
    );
    return ctx.metrics.verified(v);
  } catch (err) {
    if (o.signal.aborted) throw err;
    const { pieceCid, providerId } = rep;
    const evidence = (err as Error).message;
    return { pieceCid, providerId, state: 'unreachable', challenges: 0, failed: 0, detectionProbability: 0, evidence };
  }
}

type DeletionResult = { deleted: number; absent: number; failed: number; tableBlocks: number; problems: string[] };

/** Call records (providers/kit/records.ts) of completed deletions and evacuation calls. */
const DELETION = 'provenant/deletion';
/**
 * A deletion is named by its manifest and table. Its record is stored before the table's root, the
 * last block deleted: a root that is gone with the record present was removed by a deletion, and a
 * rerun returns that deletion's summary; gone without it, it never existed here (still an error).
 */
const deletionOf = (r: { manifestCid: string; tableCid: string | null }) => ({
  manifestCid: r.manifestCid,
  tableCid: r.tableCid,
});
const EVACUATION = 'provenant/evacuation';

/**
 * The running stewards served on a task queue (this deployment's: their providers are the ones
 * configured here; stewards of another queue are another deployment's).
 */
export function stewardsQuery(taskQueue: string): string {
  return `WorkflowType = 'stewardDataset' AND ExecutionStatus = 'Running' AND TaskQueue = '${taskQueue.replace(/['\\]/g, '')}'`;
}

export function createRehomeActivities(ctx: StageContext) {
  const { loadManifest } = ctx;
  const store = tableStoreOf(ctx);
  const signingKey = keyOnce(ctx);
  const known = (ids: string[]) => knownProviders(ctx, ids);

  const shared = {
    provenantEvacuatePages: boundary(async (r) => {
      const signal = Context.current().cancellationSignal;
      // Run already with this very input (a retry after a lost result): its result stands.
      const done = await findRecord<EvacuatePagesResult>(EVACUATION, r, known(r.storeOn), signal);
      if (done) return done;
      const m = await loadManifest(r.manifestCid);
      // An encrypted dataset's shards are read and moved through its data key (the manifest as it is).
      const sctx = encryptedContext(ctx, m.manifest.encryption, { plain: new Set([m.piece.pieceCid]) });
      const root = await store.root(r.tableCid);
      let beats = 0;
      const beat = () => Context.current().heartbeat(++beats);
      const ops: EvacuateOps = {
        verify: (rep) =>
          verifyOn(sctx, m, rep, {
            seed: `${r.seed}/rehome`,
            probability: r.settings.detectionProbability,
            lossFraction: r.settings.lossFraction,
            signal,
          }),
        copy: (x) => whileBeating(() => copyPiece(sctx, x)),
        retire: (x) => retirePiece(sctx, x),
      };
      let down = new Set(r.down);
      const kept: StewardReplica[] = [];
      const events: TimedAuditEvent[] = [];
      const out = { moved: 0, remaining: 0, repairs: 0, retired: 0 };
      for (const entry of root.pages.slice(r.from, r.from + r.count)) {
        const page = await store.page(entry.cid.toString());
        const res = await evacuatePage(ops, page, { ...r, down: [...down] }, beat);
        kept.push(...res.replicas);
        events.push(...res.events);
        down = res.down;
        out.moved += res.moved;
        out.remaining += res.remaining;
        out.repairs += res.repairs;
        out.retired += res.moved;
      }
      // Blocks and records go to providers that answered and are not being left.
      const up = r.storeOn.filter((id) => !down.has(id) && !r.evacuate.includes(id));
      const on = known(up.length ? up : r.storeOn);
      const { table, written } = await store.replacePages(root, r.from, r.count, kept, r.pageReplicas, on);
      // Signed with the worker's key, as every steward round's records are.
      const { audit, unaudited } = await appendEvents(r, events, on, signingKey);
      ctx.metrics.stewarded(r.datasetId, { repairs: out.repairs, rehomes: out.moved }, table);
      const result: EvacuatePagesResult = {
        table,
        next: r.from + written,
        audit,
        ...(unaudited ? { unaudited } : {}),
        ...out,
        down: [...down],
      };
      // Its events are on the chain now (after the input's head): a rerun returns this, appending nothing again.
      await putRecord(EVACUATION, r, result, on);
      return result;
    }),

    provenantDeleteDataset: boundary(async (r) => {
      // Resumable: the heartbeat carries the next page and the counts so far; deleting again is harmless.
      const info = Context.current().info;
      const prev = info.heartbeatDetails as
        { page: number; deleted: number; absent: number; failed: number; problems: string[] } | undefined;
      const at = prev ?? { page: 0, deleted: 0, absent: 0, failed: 0, problems: [] as string[] };
      const signal = Context.current().cancellationSignal;
      let root: Awaited<ReturnType<typeof store.root>> | undefined;
      try {
        root = r.tableCid ? await store.root(r.tableCid) : undefined;
      } catch (err) {
        // The root goes last: gone, with this deletion's record kept, means the deletion completed.
        const done =
          r.tableCid && err instanceof ManifestNotFoundError
            ? await findRecord<DeletionResult>(DELETION, deletionOf(r), known(r.providerIds), signal)
            : undefined;
        if (done) return done;
        throw err;
      }
      const pages = root?.pages ?? [];
      // An encrypted dataset's shards are stored under ids of its data key: found through it.
      const m = pages.length > at.page ? await loadManifest(r.manifestCid).catch(() => undefined) : undefined;
      const dctx = m ? encryptedContext(ctx, m.manifest.encryption, { plain: new Set([m.piece.pieceCid]) }) : ctx;
      for (let i = at.page; i < pages.length; i++) {
        for (const rep of await store.page(pages[i]!.cid.toString())) {
          let present: boolean;
          try {
            present = (await dctx.providers.get(rep.providerId).status(rep, { signal })).present;
          } catch (err) {
            at.failed++;
            if (at.problems.length < 10) at.problems.push(`${rep.providerId}: ${(err as Error).message}`);
            continue;
          }
          if (!present) {
            at.absent++;
            continue;
          }
          const res = await retirePiece(dctx, rep);
          if (res.deleted) at.deleted++;
          else {
            at.failed++;
            if (at.problems.length < 10) at.problems.push(`${rep.providerId}: ${res.error ?? 'not deleted'}`);
          }
        }
        at.page = i + 1;
        Context.current().heartbeat(at);
      }
      // Then the table's own blocks (pages, then the root), wherever they are found.
      let tableBlocks = 0;
      const on = known(r.providerIds);
      const drop = async (cid: string, refs: { ref: { pieceCid: string }; p: StorageProvider }[]) => {
        for (const { ref, p } of refs)
          if ((await retirePiece(ctx, { pieceCid: ref.pieceCid, providerId: p.id })).deleted) tableBlocks++;
        store.forget(cid);
      };
      const locateAll = async (cid: string) => {
        const found: { ref: { pieceCid: string }; p: StorageProvider }[] = [];
        for (const p of on) {
          const ref = await p.locate(cid, { signal }).catch(() => undefined);
          if (ref) found.push({ ref, p });
        }
        return found;
      };
      for (const cid of pages.map((p) => p.cid.toString())) await drop(cid, await locateAll(cid));
      if (!r.tableCid)
        return { deleted: at.deleted, absent: at.absent, failed: at.failed, tableBlocks, problems: at.problems };
      // The root last, after the record of what this deletion did (counting the root's copies found).
      const rootCopies = await locateAll(r.tableCid);
      const summary: DeletionResult = {
        deleted: at.deleted,
        absent: at.absent,
        failed: at.failed,
        tableBlocks: tableBlocks + rootCopies.length,
        problems: at.problems,
      };
      await putRecord(DELETION, deletionOf(r), summary, on);
      await drop(r.tableCid, rootCopies);
      return { ...summary, tableBlocks };
    }),

    provenantListStewards: boundary(async (r) => {
      const client = Context.current().client;
      const res = await client.workflowService.listWorkflowExecutions({
        namespace: client.options.namespace,
        query: stewardsQuery(ctx.config.temporal.taskQueue),
        pageSize: r.pageSize,
        ...(r.pageToken ? { nextPageToken: Buffer.from(r.pageToken, 'base64') } : {}),
      });
      const token = res.nextPageToken?.length ? Buffer.from(res.nextPageToken).toString('base64') : undefined;
      return {
        workflowIds: (res.executions ?? []).flatMap((e) => (e.execution?.workflowId ? [e.execution.workflowId] : [])),
        ...(token ? { nextPageToken: token } : {}),
      };
    }),

    provenantEvacuateSteward: boundary(async (r) => {
      const handle = Context.current().client.workflow.getHandle(r.workflowId);
      // Target providers travel as refs (their placement attributes), so a provider added to the
      // config after the archive can take copies.
      const refs = providerRefs(ctx.config);
      const to = r.to?.map((id) => refs.find((p) => p.id === id)).filter((p): p is ProviderRef => !!p);
      try {
        const state = await whileBeating(() =>
          handle.executeUpdate(evacuateUpdate, { args: [{ from: r.from, ...(to ? { to } : {}) }] }),
        );
        const st = await handle.query(stewardStatusQuery);
        return { datasetId: st.datasetId, state };
      } catch (err) {
        // Ended meanwhile, or a steward whose code has no evacuation: nothing to do here.
        if (err instanceof WorkflowNotFoundError) return { skipped: 'steward not running' };
        if (err instanceof WorkflowUpdateFailedError)
          return { skipped: `steward refused: ${err.cause?.message ?? err.message}` };
        throw err;
      }
    }),
  } satisfies Pick<
    SharedQueueActivities,
    'provenantEvacuatePages' | 'provenantDeleteDataset' | 'provenantListStewards' | 'provenantEvacuateSteward'
  >;
  return { shared };
}
