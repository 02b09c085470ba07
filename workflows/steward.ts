/**
 * stewardDataset: one entity workflow per archived dataset, for the dataset's whole life.
 * It sleeps on durable timers until the next verification or renewal deadline, then:
 * verify every replica (retrieval spot checks + provider status) → renew what expires soon →
 * repair what failed (copy from a healthy replica to a provider the placement policy allows) → audit.
 * It continues-as-new before its history grows, carrying its whole state.
 *
 * Its state is a reference to the dataset's replica table (stored on the providers, paged) and
 * counters: a round pages through the table, one activity per few pages, whatever the dataset's
 * size. Stewards started before the replica table carried every replica in their state; their
 * histories still replay through `legacyStewardDataset`, which moves on to the table at its next
 * loop head (patch UPGRADE_PATCH) by continuing as new; the new run converts the replicas into a
 * table (patch TABLE_PATCH) before its first round.
 */
import {
  condition,
  continueAsNew,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
  ActivityFailure,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { SharedQueueActivities, StewardPagesRequest, StewardPagesResult } from '../shared/activities.js';
import {
  addReplicasSignal,
  evacuateUpdate,
  retireSignal,
  stewardStatusQuery,
  stewardWorkflowId,
  sweepSignal,
  verifyNowUpdate,
} from '../shared/api.js';
import { NON_RETRYABLE_ERROR_TYPES as NON_RETRYABLE } from '../shared/errors.js';
import { nextProvider, NO_POLICY } from '../shared/placement.js';
import { describeDetection, roundDetection, sampleSize } from '../shared/sampling.js';
import {
  EMPTY_REPLICA_TABLE,
  REPLICA_PAGE_DEFAULT,
  type AuditHealth,
  type DatasetHealth,
  type DeletionSummary,
  type EvacuationState,
  type RetireOptions,
  type VerifyNowOptions,
  type ReplicaTableSummary,
  type StewardReplica,
  type StewardSampleRequest,
  type StewardSampleResult,
  type StewardState,
  type StewardStatus,
  type TimedAuditEvent,
} from '../shared/types.js';

export {
  addReplicasSignal,
  evacuateUpdate,
  retireSignal,
  stewardStatusQuery,
  stewardWorkflowId,
  sweepSignal,
  verifyNowUpdate,
};

const ACTIVITY_OPTIONS: ActivityOptions = {
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '5 minutes',
  retry: { nonRetryableErrorTypes: [...NON_RETRYABLE], maximumAttempts: 5, maximumInterval: '5 minutes' },
};
const acts = proxyActivities<SharedQueueActivities>(ACTIVITY_OPTIONS);
const defaultActs = acts;
/** Stewards whose settings name a heartbeat timeout use it for their activities (see tableSteward). */
export const STEWARD_HEARTBEAT_PATCH = 'provenant-steward-heartbeat';

const iso = (ms: number) => new Date(ms).toISOString();

/** A round that could not be completed (say, every provider unreachable) is tried again after this at most. */
const ROUND_RETRY_MS = 15 * 60_000;
/** Audit events kept while no provider takes them; beyond this the oldest are summarised. */
const MAX_UNAUDITED = 200;
/** A fresh run whose input carries every replica (a steward from before the table) converts it into a table. */
export const TABLE_PATCH = 'provenant-replica-table';
/** A run of the code before the table moves on at its next loop head, by continuing as new. */
export const UPGRADE_PATCH = 'provenant-replica-table-upgrade';
/** Table pages per activity call, at least; more for large tables, so a round is at most MAX_CALLS_PER_ROUND calls. */
const PAGES_PER_CALL = 4;
const MAX_CALLS_PER_ROUND = 200;
/** A round checks the audit log's stored copies and re-stores missing or corrupt ones (patch-gated: a new activity). */
export const AUDIT_REPAIR_PATCH = 'provenant-audit-repair';
/** Stewards from before this patch start the next renewal round as soon as one is due (see nextDeadlines). */
export const RENEW_FLOOR_PATCH = 'provenant-renew-floor';
/**
 * The ops commands (patch-gated: new activities and a round that may verify every shard): a
 * verifyNow with `full` verifies every shard whatever the sample; an evacuation (provenant rehome)
 * runs a pass after the round that moves replicas off providers; a retire with `delete` deletes
 * every replica after the retirement is audited.
 */
export const OPS_PATCH = 'provenant-ops-commands';
/** The audit records checked each round: the newest, and a window over older ones that moves back round by round. */
const AUDIT_CHECK_NEWEST = 16;
const AUDIT_CHECK_WINDOW = 64;

type LegacyState = StewardState & { replicas: StewardReplica[] };

export async function stewardDataset(state: StewardState): Promise<StewardStatus> {
  if (!state.table && state.replicas && !patched(TABLE_PATCH)) return legacyStewardDataset(state as LegacyState);
  return tableSteward(state);
}

/** A dataset's health from its table's counts. */
export function tableHealth(t: ReplicaTableSummary, copies: number): DatasetHealth {
  if (t.pieces === 0 || (t.byState.unknown ?? 0) === t.replicas) return 'unknown';
  if (t.lostPieces > 0) return 'lost';
  return t.minHealthy < copies ? 'degraded' : 'healthy';
}

/** The dataset's health with its audit log's: never 'healthy' while a record has no intact copy, or a copy is not re-stored. */
export function withAuditHealth(h: DatasetHealth, audit: AuditHealth | undefined): DatasetHealth {
  return h === 'healthy' && (audit?.state === 'broken' || audit?.state === 'degraded') ? 'degraded' : h;
}

/** Whether a replica counts toward the target: healthy (or unreachable only within the grace period) and not expiring soon. */
function isCounted(r: StewardReplica, now: number, settings: StewardState['settings']): boolean {
  const inGrace =
    r.state === 'unreachable' &&
    !!r.unreachableSince &&
    now - Date.parse(r.unreachableSince) < settings.unreachableGraceMs;
  if (r.state !== 'healthy' && !inGrace) return false;
  return !r.expiresAt || Date.parse(r.expiresAt) - now > settings.renewWindowMs;
}

export function healthOf(s: LegacyState, now: number): DatasetHealth {
  const pieces = new Map<string, number>();
  for (const r of s.replicas) pieces.set(r.pieceCid, (pieces.get(r.pieceCid) ?? 0) + (r.state === 'healthy' ? 1 : 0));
  if (pieces.size === 0) return 'unknown';
  if (s.replicas.every((r) => r.state === 'unknown')) return 'unknown';
  let degraded = false;
  for (const [, good] of pieces) {
    if (good === 0) return 'lost';
    if (good < s.copies) degraded = true;
  }
  void now;
  return degraded ? 'degraded' : 'healthy';
}

/**
 * The next verification and renewal deadlines. With `renewFloor`, a renewal is not tried again
 * sooner than min(verifyEvery, ROUND_RETRY_MS) after the last round: a provider whose renewal
 * leaves the piece inside the renewal window (a retention shorter than the window) would
 * otherwise start round after round with no pause.
 */
function nextDeadlines(s: StewardState, renewFloor = true) {
  const last = s.lastVerifiedAt ? Date.parse(s.lastVerifiedAt) : Date.parse(workflowInfo().startTime.toISOString());
  const verifyAt = last + s.settings.verifyEveryMs;
  let earliestExpiry: number | undefined = s.table?.earliestExpiryMs;
  for (const r of s.replicas ?? []) {
    if (!r.expiresAt) continue;
    const e = Date.parse(r.expiresAt);
    if (earliestExpiry === undefined || e < earliestExpiry) earliestExpiry = e;
  }
  let renewAt = earliestExpiry === undefined ? undefined : earliestExpiry - s.settings.renewWindowMs;
  if (renewAt !== undefined && renewFloor && s.lastVerifiedAt)
    renewAt = Math.max(renewAt, last + Math.min(s.settings.verifyEveryMs, ROUND_RETRY_MS));
  const due = renewAt === undefined ? verifyAt : Math.min(verifyAt, renewAt);
  // After a failed round, not before its retry time.
  const next = s.lastRoundError ? Math.max(due, Date.parse(s.lastRoundError.retryAt)) : due;
  return { verifyAt, earliestExpiry, renewAt, next };
}

/**
 * The steward as it was before the replica table, kept for the histories of stewards started
 * then: they replay through it unchanged, and move on to the table at their next loop head.
 */
async function legacyStewardDataset(state: LegacyState): Promise<StewardStatus> {
  const s = state;
  let wake = false;
  let retired = false;
  let providersDown = new Set<string>();
  const status = (): StewardStatus => {
    const d = nextDeadlines(s);
    return {
      datasetId: s.datasetId,
      manifestCid: s.manifestCid,
      health: healthOf(s, Date.now()),
      copies: s.copies,
      pieces: new Set(s.replicas.map((r) => r.pieceCid)).size,
      replicaCount: s.replicas.length,
      replicas: s.replicas,
      lastVerifiedAt: s.lastVerifiedAt,
      nextVerificationAt: iso(d.verifyAt),
      earliestExpiry: d.earliestExpiry === undefined ? undefined : iso(d.earliestExpiry),
      nextRenewalAt: d.renewAt === undefined ? undefined : iso(d.renewAt),
      auditHead: s.audit.cid,
      auditRecords: s.audit.seq,
      rounds: s.rounds,
      runs: s.runs,
      counters: s.counters,
      retired,
      unauditedEvents: s.unaudited?.length ?? 0,
      ...(s.lastRoundError ? { lastRoundError: s.lastRoundError } : {}),
    };
  };
  setHandler(stewardStatusQuery, status);
  setHandler(verifyNowUpdate, async () => {
    const target = s.rounds + 1;
    wake = true;
    await condition(() => s.rounds >= target || retired);
    return status();
  });
  setHandler(addReplicasSignal, (n: number) => {
    s.copies = Math.max(1, s.copies + Math.trunc(n));
    wake = true;
  });
  setHandler(sweepSignal, () => {
    wake = true;
  });
  setHandler(retireSignal, () => {
    retired = true;
    wake = true;
  });

  /**
   * Append events to the audit log. When no provider takes them (all unreachable), they are kept
   * and go first into the next record appended: a provider outage delays the log, never ends the
   * steward, and loses nothing (beyond MAX_UNAUDITED events, the oldest are counted, not kept).
   */
  const audit = async (events: TimedAuditEvent[]) => {
    const all = [...(s.unaudited ?? []), ...events];
    if (all.length === 0) return;
    // Audit records go to every provider that answered at the last verification (all, if none did).
    const up = s.providers.map((p) => p.id).filter((id) => !providersDown.has(id));
    const providerIds = up.length > 0 ? up : s.providers.map((p) => p.id);
    try {
      const r = await acts.provenantAppendAudit({ datasetId: s.datasetId, prev: s.audit, events: all, providerIds });
      s.audit = { cid: r.head, seq: r.seq };
      delete s.unaudited;
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      let kept = all;
      if (kept.length > MAX_UNAUDITED) {
        const dropped = kept.length - MAX_UNAUDITED + 1;
        kept = [
          {
            kind: 'verify',
            result: `${dropped} audit events could not be stored while every provider was unreachable`,
            time: kept[dropped - 1]!.time,
          },
          ...kept.slice(dropped),
        ];
      }
      s.unaudited = kept;
    }
  };
  const tag = () => {
    if (s.settings.searchAttributes) {
      upsertSearchAttributes({ ProvenantHealth: [healthOf(s, Date.now())], ProvenantDataset: [s.datasetId] });
    }
  };

  if (s.audit.seq === 0) {
    await audit([
      {
        kind: 'archive',
        result: `archived: ${new Set(s.replicas.map((r) => r.pieceCid)).size} pieces × ${s.copies} copies`,
        time: iso(Date.now()),
      },
    ]);
  }
  tag();

  let roundsThisRun = 0;
  let upgrade = false;
  while (!retired) {
    if (workflowInfo().continueAsNewSuggested || roundsThisRun >= s.settings.maxRoundsPerRun) break;
    // New code has taken over this run: its replicas become a table, and it continues as new.
    if (patched(UPGRADE_PATCH)) {
      upgrade = true;
      break;
    }
    const { next } = nextDeadlines(s, false);
    const wait = next - Date.now();
    if (wait > 0 && !wake) await condition(() => wake, wait);
    wake = false;
    if (retired) break;
    try {
      await round();
      delete s.lastRoundError;
    } catch (err) {
      // An activity that failed for good (its retries spent): the steward lives on and tries again later.
      if (!(err instanceof ActivityFailure)) throw err;
      const now = Date.now();
      const message = err.cause?.message ?? err.message;
      s.lastRoundError = {
        at: iso(now),
        message,
        retryAt: iso(now + Math.min(s.settings.verifyEveryMs, ROUND_RETRY_MS)),
      };
      await audit([
        {
          kind: 'verify',
          result: `round not completed: ${message}; next try at ${s.lastRoundError.retryAt}`,
          time: iso(now),
        },
      ]);
      s.rounds++;
    }
    roundsThisRun++;
    tag();
  }

  if (retired) {
    await audit([
      { kind: 'retire', result: 'steward retired by request; replicas left in place', time: iso(Date.now()) },
    ]);
    await condition(allHandlersFinished);
    return status();
  }
  await condition(allHandlersFinished);
  if (upgrade) {
    const up = s.providers.map((p) => p.id).filter((id) => !providersDown.has(id));
    try {
      const table = await acts.provenantReplicaTableFromList({
        datasetId: s.datasetId,
        manifestCid: s.manifestCid,
        replicas: s.replicas,
        providerIds: up.length > 0 ? up : s.providers.map((p) => p.id),
        pageReplicas: s.settings.pageReplicas ?? REPLICA_PAGE_DEFAULT,
      });
      const { replicas: _dropped, ...bounded } = s;
      return continueAsNew<typeof stewardDataset>({ ...bounded, table, runs: s.runs + 1 });
    } catch (err) {
      // No provider takes the table now: the next run converts the replicas itself.
      if (!(err instanceof ActivityFailure)) throw err;
    }
  }
  return continueAsNew<typeof stewardDataset>({ ...s, runs: s.runs + 1 });

  async function round(): Promise<void> {
    const now = Date.now();
    const policy = s.policy ?? NO_POLICY;
    const events: Parameters<typeof audit>[0] = [];
    // 1. Verify every replica.
    const results = await acts.provenantVerifyReplicas({
      manifestCid: s.manifestCid,
      replicas: s.replicas.map(({ shard, pieceCid, carCid, rootCid, bytes, providerId }) => ({
        shard,
        pieceCid,
        carCid,
        rootCid,
        bytes,
        providerId,
      })),
      seed: `${workflowInfo().workflowId}/${s.rounds}`,
      probability: s.settings.detectionProbability,
      lossFraction: s.settings.lossFraction,
    });
    s.counters.verifications++;
    let minProbability = 1;
    results.forEach((res, i) => {
      const r = s.replicas[i]!;
      r.state = res.state;
      r.lastCheckedAt = iso(now);
      r.lastEvidence = res.evidence;
      r.detectionProbability = res.detectionProbability;
      if (res.expiresAt) r.expiresAt = res.expiresAt;
      if (res.state === 'unreachable') r.unreachableSince ??= iso(now);
      else delete r.unreachableSince;
      if (res.state === 'healthy') minProbability = Math.min(minProbability, res.detectionProbability);
      else
        events.push({
          kind: 'verify',
          pieceCid: r.pieceCid,
          providerId: r.providerId,
          result: res.state,
          challenges: res.challenges,
          detectionProbability: res.detectionProbability,
          evidence: res.evidence,
          time: iso(now),
        });
    });
    providersDown = new Set(results.filter((r) => r.state === 'unreachable').map((r) => r.providerId));
    const healthy = results.filter((r) => r.state === 'healthy');
    events.unshift({
      kind: 'verify',
      result: `${healthy.length}/${results.length} replicas healthy`,
      challenges: results.reduce((n, r) => n + r.challenges, 0),
      detectionProbability: minProbability,
      evidence: `each healthy replica passed spot checks catching a ${s.settings.lossFraction * 100}% block loss with p ≥ ${minProbability.toFixed(4)}`,
      time: iso(now),
    });

    // 2. Renew healthy replicas inside the renewal window.
    for (const r of s.replicas) {
      if (r.state !== 'healthy' || !r.expiresAt || Date.parse(r.expiresAt) - now > s.settings.renewWindowMs) continue;
      let res: { renewed: boolean; expiresAt?: string; error?: string };
      try {
        res = await acts.provenantRenewPiece({ pieceCid: r.pieceCid, providerId: r.providerId });
      } catch (err) {
        // Refused (funds, a claim that cannot be extended…): the replica is replaced below instead.
        if (!(err instanceof ActivityFailure)) throw err;
        res = { renewed: false, error: err.cause?.message ?? err.message };
      }
      if (res.renewed && res.expiresAt) r.expiresAt = res.expiresAt;
      s.counters.renewals += res.renewed ? 1 : 0;
      const result = res.renewed
        ? `renewed until ${res.expiresAt ?? 'forever'}`
        : res.error
          ? 'renewal failed; will be replaced'
          : 'provider cannot renew; will be replaced';
      events.push({
        kind: 'renew',
        pieceCid: r.pieceCid,
        providerId: r.providerId,
        result,
        ...(res.error ? { evidence: res.error } : {}),
        time: iso(now),
      });
    }

    // 3. Retire replicas that failed (unreachable only after the grace period).
    const bad = s.replicas.filter(
      (r) =>
        r.state === 'missing' ||
        r.state === 'corrupt' ||
        r.state === 'expired' ||
        (r.state === 'unreachable' && now - Date.parse(r.unreachableSince!) >= s.settings.unreachableGraceMs),
    );
    // 4. Restore the replica count for every piece.
    const down = new Set(s.replicas.filter((r) => r.state === 'unreachable').map((r) => r.providerId));
    const byPiece = new Map<string, StewardReplica[]>();
    for (const r of s.replicas) byPiece.set(r.pieceCid, [...(byPiece.get(r.pieceCid) ?? []), r]);
    for (const [pieceCid, reps] of byPiece) {
      const good = reps.filter((r) => isCounted(r, now, s.settings));
      const sources = reps.filter((r) => r.state === 'healthy').map((r) => r.providerId);
      let need = s.copies - good.length;
      if (need <= 0) continue;
      if (sources.length === 0) {
        events.push({ kind: 'repair', pieceCid, result: 'no healthy replica left to copy from', time: iso(now) });
        continue;
      }
      // The archive's placement policy, as when the copies were first made: distinct providers,
      // the caps counted against the copies that stay, price, energy and piece size. Providers that
      // are down or hold a copy being replaced (expiring) are not tried; one whose copy is
      // missing/corrupt (but that answers) comes last.
      const holding = s.providers.filter((p) => good.some((r) => r.providerId === p.id));
      const failing = new Set(
        reps.filter((r) => bad.includes(r) && r.state !== 'unreachable').map((r) => r.providerId),
      );
      const tried = new Set([
        ...down,
        ...reps.filter((r) => !bad.includes(r) && !good.includes(r)).map((r) => r.providerId),
      ]);
      const template = reps[0]!;
      while (need > 0) {
        const next = nextProvider(s.providers, policy, {
          slot: 0,
          placed: holding,
          tried,
          avoid: failing,
          pieceBytes: template.bytes,
        });
        if (!next.provider) {
          events.push({
            kind: 'repair',
            pieceCid,
            result: `${need} more copies needed; no provider left that the placement policy allows (${next.unmet})`,
            time: iso(now),
          });
          break;
        }
        const p = next.provider;
        tried.add(p.id);
        if (failing.has(p.id)) {
          await acts.provenantRetirePiece({ pieceCid, providerId: p.id });
        }
        try {
          const placed = await acts.provenantCopyPiece({
            piece: { pieceCid, carCid: template.carCid, rootCid: template.rootCid, bytes: template.bytes },
            from: sources,
            to: p.id,
          });
          const fresh: StewardReplica = {
            ...template,
            providerId: p.id,
            state: 'healthy',
            lastCheckedAt: iso(now),
            lastEvidence: placed.evidence ?? 'copied from a verified replica',
            expiresAt: placed.expiresAt,
          };
          delete fresh.unreachableSince;
          const replacing = reps.find((r) => r.providerId === p.id);
          s.replicas = s.replicas.filter((r) => r !== replacing);
          s.replicas.push(fresh);
          holding.push(p);
          need--;
          s.counters.repairs++;
          events.push({
            kind: 'repair',
            pieceCid,
            providerId: p.id,
            result: `new copy from ${sources.join('/')}`,
            time: iso(now),
          });
        } catch (err) {
          if (!(err instanceof ActivityFailure)) throw err;
          events.push({
            kind: 'repair',
            pieceCid,
            providerId: p.id,
            result: 'failed',
            evidence: err.cause?.message ?? err.message,
            time: iso(now),
          });
        }
      }
    }
    // 5. Drop the failed replicas (best-effort delete where the provider answers).
    for (const r of bad) {
      if (!s.replicas.includes(r)) continue;
      if (r.state !== 'unreachable')
        await acts.provenantRetirePiece({ pieceCid: r.pieceCid, providerId: r.providerId });
      s.replicas = s.replicas.filter((x) => x !== r);
      s.counters.retired++;
      events.push({
        kind: 'retire',
        pieceCid: r.pieceCid,
        providerId: r.providerId,
        result: `retired (${r.state})`,
        evidence: r.lastEvidence,
        time: iso(now),
      });
    }
    // Replicas replaced while still in the renewal window leave once enough counted copies exist.
    for (const [pieceCid] of byPiece) {
      const reps = s.replicas.filter((r) => r.pieceCid === pieceCid);
      const counted = reps.filter((r) => isCounted(r, now, s.settings));
      if (counted.length < s.copies) continue;
      for (const r of reps) {
        if (counted.includes(r)) continue;
        await acts.provenantRetirePiece({ pieceCid, providerId: r.providerId });
        s.replicas = s.replicas.filter((x) => x !== r);
        s.counters.retired++;
        events.push({
          kind: 'retire',
          pieceCid,
          providerId: r.providerId,
          result: 'retired (expiring; replaced)',
          time: iso(now),
        });
      }
    }
    await audit(events);
    s.lastVerifiedAt = iso(now);
    s.rounds++; // last: verifyNow waits on this, and returns the audited state
  }
}

/** The steward over a replica table: state = the table's reference and counts, never every replica. */
async function tableSteward(state: StewardState): Promise<StewardStatus> {
  const s = state;
  // Stewards since this patch heartbeat at the archive's timeout: an activity of a round whose
  // worker died is retried after it, not after 5 minutes (the timeout is an activity option only).
  const acts =
    s.settings.heartbeatTimeout && patched(STEWARD_HEARTBEAT_PATCH)
      ? proxyActivities<SharedQueueActivities>({ ...ACTIVITY_OPTIONS, heartbeatTimeout: s.settings.heartbeatTimeout })
      : defaultActs;
  let wake = false;
  let retired = false;
  let providersDown = new Set<string>();
  /** A round is under way (a request that needs a round of its own waits for the next one). */
  let inRound = false;
  /** The next round verifies every shard (provenant repair). */
  let fullNext = false;
  let deleteOnRetire = false;
  let deletion: DeletionSummary | undefined;
  const pageReplicas = s.settings.pageReplicas ?? REPLICA_PAGE_DEFAULT;
  const table = (): ReplicaTableSummary => s.table ?? { ...EMPTY_REPLICA_TABLE, replicas: s.replicas?.length ?? 0 };
  const status = (): StewardStatus => {
    const d = nextDeadlines(s);
    const t = table();
    return {
      datasetId: s.datasetId,
      manifestCid: s.manifestCid,
      health: withAuditHealth(tableHealth(t, s.copies), s.auditCheck?.health),
      copies: s.copies,
      pieces: t.pieces,
      replicaCount: t.replicas,
      replicaTable: t,
      lastVerifiedAt: s.lastVerifiedAt,
      nextVerificationAt: iso(d.verifyAt),
      earliestExpiry: d.earliestExpiry === undefined ? undefined : iso(d.earliestExpiry),
      nextRenewalAt: d.renewAt === undefined ? undefined : iso(d.renewAt),
      auditHead: s.audit.cid,
      auditRecords: s.audit.seq,
      rounds: s.rounds,
      runs: s.runs,
      counters: s.counters,
      retired,
      unauditedEvents: s.unaudited?.length ?? 0,
      ...(s.lastRoundError ? { lastRoundError: s.lastRoundError } : {}),
      ...(s.lastDetection ? { detection: s.lastDetection } : {}),
      ...(s.auditCheck ? { audit: { ...s.auditCheck.health, records: s.audit.seq } } : {}),
      ...(s.evacuation ? { evacuation: s.evacuation } : {}),
      ...(deletion ? { deletion } : {}),
    };
  };
  setHandler(stewardStatusQuery, status);
  setHandler(verifyNowUpdate, async (o?: VerifyNowOptions) => {
    // A full round must start after the request: one under way may be sampling.
    const target = s.rounds + (o?.full && inRound ? 2 : 1);
    if (o?.full) fullNext = true;
    wake = true;
    await condition(() => s.rounds >= target || retired);
    return status();
  });
  setHandler(
    evacuateUpdate,
    async (req) => {
      const prev = s.evacuation;
      const from = [...new Set([...(prev?.from ?? []), ...req.from])];
      const sameTo = JSON.stringify(prev?.to?.map((p) => p.id)) === JSON.stringify(req.to?.map((p) => p.id));
      // Asked again for what is done already: nothing to do (a rehome run again, or resumed).
      if (prev?.completedAt && req.from.every((id) => prev.from.includes(id)) && sameTo) return prev;
      // New target providers (added to the config after the archive) join the steward's providers.
      for (const p of req.to ?? []) if (!s.providers.some((q) => q.id === p.id)) s.providers.push(p);
      const ev: EvacuationState = {
        from,
        ...(req.to ? { to: req.to } : {}),
        requestedAt: iso(Date.now()),
        passes: 0,
        moved: prev?.moved ?? 0,
        remaining: prev?.remaining ?? 0,
      };
      s.evacuation = ev;
      const target = s.rounds + (inRound ? 2 : 1);
      wake = true;
      await condition(() => s.rounds >= target || retired);
      return s.evacuation ?? ev;
    },
    {
      validator: (req) => {
        if (!Array.isArray(req?.from) || req.from.length === 0) throw new Error('evacuate: no provider to move off');
      },
    },
  );
  setHandler(addReplicasSignal, (n: number) => {
    s.copies = Math.max(1, s.copies + Math.trunc(n));
    wake = true;
  });
  setHandler(sweepSignal, () => {
    wake = true;
  });
  setHandler(retireSignal, (o?: RetireOptions) => {
    retired = true;
    if (o?.delete) deleteOnRetire = true;
    wake = true;
  });

  /** Providers the dataset stays on: all but those it is being moved off. */
  const kept = () => s.providers.filter((p) => !s.evacuation?.from.includes(p.id));
  /** Providers to store audit records and table blocks on: those that answered at the last verification (all, if none did). */
  const storeOn = () => {
    const ids = kept().map((p) => p.id);
    const up = ids.filter((id) => !providersDown.has(id));
    return up.length > 0 ? up : ids.length > 0 ? ids : s.providers.map((p) => p.id);
  };
  /** Append events to the audit log; kept (and appended first next time) while no provider takes them. */
  const audit = async (events: TimedAuditEvent[]) => {
    const all = [...(s.unaudited ?? []), ...events];
    if (all.length === 0) return;
    try {
      const r = await acts.provenantAppendAudit({
        datasetId: s.datasetId,
        prev: s.audit,
        events: all,
        providerIds: storeOn(),
      });
      s.audit = { cid: r.head, seq: r.seq };
      delete s.unaudited;
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      let kept = all;
      if (kept.length > MAX_UNAUDITED) {
        const dropped = kept.length - MAX_UNAUDITED + 1;
        kept = [
          {
            kind: 'verify',
            result: `${dropped} audit events could not be stored while every provider was unreachable`,
            time: kept[dropped - 1]!.time,
          },
          ...kept.slice(dropped),
        ];
      }
      s.unaudited = kept;
    }
  };
  const tag = () => {
    if (s.settings.searchAttributes) {
      upsertSearchAttributes({
        ProvenantHealth: [withAuditHealth(tableHealth(table(), s.copies), s.auditCheck?.health)],
        ProvenantDataset: [s.datasetId],
      });
    }
  };

  // A steward from before the replica table: its replicas become a table (stored like audit
  // records) before anything else. Until a provider takes the table, it tries again later.
  while (!s.table) {
    const legacy = s.replicas ?? [];
    if (legacy.length === 0) {
      s.table = EMPTY_REPLICA_TABLE;
      break;
    }
    try {
      s.table = await acts.provenantReplicaTableFromList({
        datasetId: s.datasetId,
        manifestCid: s.manifestCid,
        replicas: legacy,
        providerIds: storeOn(),
        pageReplicas,
      });
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      await sleep(ROUND_RETRY_MS);
    }
  }
  delete s.replicas;

  if (s.audit.seq === 0) {
    await audit([
      { kind: 'archive', result: `archived: ${table().pieces} pieces × ${s.copies} copies`, time: iso(Date.now()) },
    ]);
  }
  tag();

  let roundsThisRun = 0;
  while (!retired) {
    if (workflowInfo().continueAsNewSuggested || roundsThisRun >= s.settings.maxRoundsPerRun) break;
    const { next } = nextDeadlines(s, patched(RENEW_FLOOR_PATCH));
    const wait = next - Date.now();
    if (wait > 0 && !wake) await condition(() => wake, wait);
    wake = false;
    if (retired) break;
    try {
      await round();
      delete s.lastRoundError;
    } catch (err) {
      // An activity that failed for good (its retries spent): the steward lives on and tries again later.
      if (!(err instanceof ActivityFailure)) throw err;
      const now = Date.now();
      const message = err.cause?.message ?? err.message;
      s.lastRoundError = {
        at: iso(now),
        message,
        retryAt: iso(now + Math.min(s.settings.verifyEveryMs, ROUND_RETRY_MS)),
      };
      await audit([
        {
          kind: 'verify',
          result: `round not completed: ${message}; next try at ${s.lastRoundError.retryAt}`,
          time: iso(now),
        },
      ]);
      s.rounds++;
    }
    roundsThisRun++;
    tag();
  }

  if (retired) {
    const remove = deleteOnRetire && patched(OPS_PATCH);
    // The retirement is in the log before anything is deleted; the log itself is kept.
    await audit([
      {
        kind: 'retire',
        result: remove
          ? 'steward retired by request; deleting every replica (manifest, shards, replica table); the audit log is kept'
          : 'steward retired by request; replicas left in place',
        time: iso(Date.now()),
      },
    ]);
    if (remove) await deleteAll();
    await condition(allHandlersFinished);
    return status();
  }
  await condition(allHandlersFinished);
  return continueAsNew<typeof stewardDataset>({ ...s, runs: s.runs + 1 });

  /** Delete every replica and the table's blocks (an idempotent activity), then audit what went. */
  async function deleteAll(): Promise<void> {
    try {
      const d = await acts.provenantDeleteDataset.executeWithOptions({ summary: 'delete the copies of the dataset' }, [
        {
          manifestCid: s.manifestCid,
          tableCid: s.table?.tableCid ?? null,
          providerIds: s.providers.map((p) => p.id),
        },
      ]);
      deletion = { ...d, at: iso(Date.now()) };
      if (d.failed === 0) s.table = EMPTY_REPLICA_TABLE;
      await audit([
        {
          kind: 'retire',
          result: `deleted ${d.deleted} replicas (${d.absent} already gone) and ${d.tableBlocks} replica table blocks; ${d.failed} not deleted`,
          ...(d.problems.length ? { evidence: d.problems.join('; ') } : {}),
          time: deletion.at,
        },
      ]);
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      await audit([
        {
          kind: 'retire',
          result: 'deletion not completed',
          evidence: err.cause?.message ?? err.message,
          time: iso(Date.now()),
        },
      ]);
    }
  }

  /**
   * A round: the table's pages in order, a few per activity, each verified → renewed → repaired →
   * retired with its audit events appended; the table's new root comes back after each call.
   */
  async function round(): Promise<void> {
    inRound = true;
    try {
      await pagesRound();
    } finally {
      inRound = false;
    }
  }

  async function pagesRound(): Promise<void> {
    const now = Date.now();
    const perCall = Math.max(PAGES_PER_CALL, Math.ceil(table().pages / MAX_CALLS_PER_ROUND));
    // An evacuation under way gets a pass after the pages (and the round verifies every shard first).
    const ev = s.evacuation && !s.evacuation.completedAt && patched(OPS_PATCH) ? s.evacuation : undefined;
    const full = !!ev || (fullNext && patched(OPS_PATCH));
    fullNext = false;
    const seen = { checked: 0, healthy: 0, challenges: 0, minProbability: 1, checkedShards: 0 };
    let shards: number | undefined;
    // The round's shard sample: a window, at the count of completed rounds, on a permutation of
    // the shards keyed by the workflow id and a key drawn once (Temporal's deterministic
    // Math.random, so that the order is not known from the workflow id alone). Only a seed and
    // counts go to the activities; with 'all' nothing is sent and every shard is verified.
    const spec = s.settings.sampleShards ?? 'all';
    if (spec !== 'all') s.sampleKey ??= Math.floor(Math.random() * 2 ** 48).toString(36);
    const sample: StewardSampleRequest =
      spec === 'all' || full
        ? {}
        : { sample: { seed: `${workflowInfo().workflowId}/${s.sampleKey}`, round: s.counters.verifications, spec } };
    let down: string[] = [];
    /** Roots this round replaced: their blocks that the final table no longer uses are deleted after it. */
    const superseded: string[] = [];
    /** What each call over the table's pages is given (`down` as the previous call left it). */
    const pagesRequest = (
      tableCid: string,
      from: number,
      providers: StewardPagesRequest['providers'],
    ): StewardPagesRequest => ({
      datasetId: s.datasetId,
      manifestCid: s.manifestCid,
      tableCid,
      from,
      count: perCall,
      pageReplicas,
      copies: s.copies,
      providers,
      policy: s.policy ?? NO_POLICY,
      settings: {
        renewWindowMs: s.settings.renewWindowMs,
        unreachableGraceMs: s.settings.unreachableGraceMs,
        detectionProbability: s.settings.detectionProbability,
        lossFraction: s.settings.lossFraction,
      },
      seed: `${workflowInfo().workflowId}/${s.rounds}`,
      now,
      down,
      audit: s.audit,
      ...(s.unaudited ? { pendingEvents: s.unaudited } : {}),
      storeOn: storeOn(),
    });
    for (let from = 0; from < table().pages && s.table?.tableCid;) {
      const request: StewardPagesRequest & StewardSampleRequest = {
        // Repairs never place a copy on a provider the dataset is being moved off.
        ...pagesRequest(s.table.tableCid, from, s.evacuation ? kept() : s.providers),
        ...sample,
      };
      // Results from workers before sampling carry no sample counts (then no detection is reported).
      const r: StewardPagesResult & StewardSampleResult = await acts.provenantStewardPages.executeWithOptions(
        { summary: 'verify, renew and repair the replicas' },
        [request],
      );
      superseded.push(s.table.tableCid);
      s.table = r.table;
      s.audit = r.audit;
      if (r.unaudited) s.unaudited = r.unaudited;
      else delete s.unaudited;
      for (const k of ['repairs', 'renewals', 'retired'] as const) s.counters[k] += r.counters[k];
      seen.checked += r.checked;
      seen.healthy += r.healthy;
      seen.challenges += r.challenges;
      seen.minProbability = Math.min(seen.minProbability, r.minProbability);
      seen.checkedShards += r.checkedShards ?? 0;
      shards ??= r.shards;
      down = r.down;
      from = r.next;
    }
    // The evacuation pass: new copies elsewhere, verified, then the old ones retired (provenant rehome).
    if (ev) {
      let moved = 0;
      let remaining = 0;
      for (let from = 0; from < table().pages && s.table?.tableCid;) {
        const r = await acts.provenantEvacuatePages.executeWithOptions({ summary: 'move replicas off a provider' }, [
          {
            ...pagesRequest(s.table.tableCid, from, s.providers),
            evacuate: ev.from,
            ...(ev.to ? { to: ev.to.map((p) => p.id) } : {}),
          },
        ]);
        superseded.push(s.table.tableCid);
        s.table = r.table;
        s.audit = r.audit;
        if (r.unaudited) s.unaudited = r.unaudited;
        else delete s.unaudited;
        s.counters.repairs += r.repairs;
        s.counters.retired += r.retired;
        moved += r.moved;
        remaining += r.remaining;
        down = r.down;
        from = r.next;
      }
      ev.passes++;
      ev.moved += moved;
      ev.remaining = remaining;
      if (remaining === 0) ev.completedAt = iso(now);
    }
    providersDown = new Set(down);
    const detection =
      shards === undefined || shards === 0
        ? undefined
        : roundDetection({
            shards,
            sampled: sampleSize(spec, shards),
            checkedShards: seen.checkedShards,
            round: s.counters.verifications,
            detectionProbability: s.settings.detectionProbability,
            lossFraction: s.settings.lossFraction,
          });
    if (detection) s.lastDetection = detection;
    s.counters.verifications++;
    const auditRepairs = await checkAudit(now);
    await audit([
      {
        kind: 'verify',
        result: `${seen.healthy}/${seen.checked} replicas healthy`,
        challenges: seen.challenges,
        detectionProbability: seen.minProbability,
        evidence:
          `each healthy replica passed spot checks catching a ${s.settings.lossFraction * 100}% block loss with p ≥ ${seen.minProbability.toFixed(4)}` +
          (detection ? `; ${describeDetection(detection)}` : ''),
        time: iso(now),
      },
      ...auditRepairs,
    ]);
    if (superseded.length > 0) {
      try {
        await acts.provenantPruneReplicaTable.executeWithOptions({ summary: 'drop superseded replica-table pages' }, [
          {
            keep: s.table?.tableCid ?? null,
            drop: superseded,
            providerIds: s.providers.map((p) => p.id),
          },
        ]);
      } catch (err) {
        // A prune that fails leaves only garbage behind (blocks no table refers to).
        if (!(err instanceof ActivityFailure)) throw err;
      }
    }
    s.lastVerifiedAt = iso(now);
    s.rounds++; // last: verifyNow waits on this, and returns the audited state
  }

  /**
   * The audit log's stored copies (bounded: the newest records and a rotating window, see
   * activities/steward/audit-check.ts): missing or corrupt copies re-stored from a good one; the
   * repair events come back to be appended with the round's record. A check that fails leaves
   * the last health in place (tried again next round).
   */
  async function checkAudit(now: number): Promise<TimedAuditEvent[]> {
    if (!s.audit.cid || !patched(AUDIT_REPAIR_PATCH)) return [];
    const prev = s.auditCheck;
    try {
      const r = await acts.provenantCheckAudit.executeWithOptions({ summary: 'check the audit log' }, [
        {
          datasetId: s.datasetId,
          head: s.audit.cid,
          seq: s.audit.seq,
          // The providers that answered this round (a copy at one that is down is checked once it is back).
          providerIds: storeOn(),
          newest: AUDIT_CHECK_NEWEST,
          window: AUDIT_CHECK_WINDOW,
          cursor: prev?.cursor ?? null,
          broken: prev?.broken ?? [],
          now,
        },
      ]);
      const state = r.broken.length ? 'broken' : r.unrepaired ? 'degraded' : r.repaired ? 'repaired' : 'intact';
      s.auditCheck = {
        cursor: r.cursor,
        broken: r.broken,
        health: {
          state,
          records: s.audit.seq,
          checked: r.checked,
          lastCheckedAt: iso(now),
          repairedLastRound: r.repaired,
          repairs: (prev?.health.repairs ?? 0) + r.repaired,
          problems: r.problems,
          problemCount: r.problemCount,
        },
      };
      return r.events;
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      return [];
    }
  }
}
