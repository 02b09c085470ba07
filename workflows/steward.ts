/**
 * stewardDataset: one entity workflow per archived dataset, for the dataset's whole life.
 * It sleeps on durable timers until the next verification or renewal deadline, then:
 * verify every replica (retrieval spot checks + provider status) → renew what expires soon →
 * repair what failed (copy from a healthy replica to a provider the placement policy allows) → audit.
 * It continues-as-new before its history grows, carrying its whole state.
 */
import {
  condition, continueAsNew, defineQuery, defineSignal, defineUpdate, proxyActivities, setHandler,
  upsertSearchAttributes, workflowInfo, allHandlersFinished, ActivityFailure,
} from '@temporalio/workflow';
import type { ProvenantActivities } from '../activities/index.js';
import { NON_RETRYABLE } from './failure-types.js';
import { nextProvider, NO_POLICY } from './placement.js';
import type { DatasetHealth, StewardReplica, StewardState, StewardStatus } from './types.js';

export const stewardStatusQuery = defineQuery<StewardStatus>('status');
export const verifyNowUpdate = defineUpdate<StewardStatus>('verifyNow');
export const addReplicasSignal = defineSignal<[number]>('addReplicas');
export const retireSignal = defineSignal('retire');
/** Fire-and-forget "verify soon" (fleet sweeps use it; verifyNow waits for the round). */
export const sweepSignal = defineSignal('sweep');

export const stewardWorkflowId = (manifestCid: string) => `provenant-steward-${manifestCid}`;

const acts = proxyActivities<ProvenantActivities>({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '5 minutes',
  retry: { nonRetryableErrorTypes: NON_RETRYABLE, maximumAttempts: 5, maximumInterval: '5 minutes' },
});

const iso = (ms: number) => new Date(ms).toISOString();

/** A round that could not be completed (say, every provider unreachable) is tried again after this at most. */
const ROUND_RETRY_MS = 15 * 60_000;
/** Audit events kept while no provider takes them; beyond this the oldest are summarised. */
const MAX_UNAUDITED = 200;

/** Whether a replica counts toward the target: healthy (or unreachable only within the grace period) and not expiring soon. */
function isCounted(r: StewardReplica, now: number, settings: StewardState['settings']): boolean {
  const inGrace = r.state === 'unreachable' && !!r.unreachableSince && now - Date.parse(r.unreachableSince) < settings.unreachableGraceMs;
  if (r.state !== 'healthy' && !inGrace) return false;
  return !r.expiresAt || Date.parse(r.expiresAt) - now > settings.renewWindowMs;
}

export function healthOf(s: StewardState, now: number): DatasetHealth {
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

function nextDeadlines(s: StewardState) {
  const last = s.lastVerifiedAt ? Date.parse(s.lastVerifiedAt) : Date.parse(workflowInfo().startTime.toISOString());
  const verifyAt = last + s.settings.verifyEveryMs;
  let earliestExpiry: number | undefined;
  for (const r of s.replicas) {
    if (!r.expiresAt) continue;
    const e = Date.parse(r.expiresAt);
    if (earliestExpiry === undefined || e < earliestExpiry) earliestExpiry = e;
  }
  const renewAt = earliestExpiry === undefined ? undefined : earliestExpiry - s.settings.renewWindowMs;
  const due = renewAt === undefined ? verifyAt : Math.min(verifyAt, renewAt);
  // After a failed round, not before its retry time.
  const next = s.lastRoundError ? Math.max(due, Date.parse(s.lastRoundError.retryAt)) : due;
  return { verifyAt, earliestExpiry, renewAt, next };
}

export async function stewardDataset(state: StewardState): Promise<StewardStatus> {
  const s = state;
  let wake = false;
  let retired = false;
  let providersDown = new Set<string>();
  const status = (): StewardStatus => {
    const d = nextDeadlines(s);
    return {
      datasetId: s.datasetId, manifestCid: s.manifestCid, health: healthOf(s, Date.now()), copies: s.copies,
      pieces: new Set(s.replicas.map((r) => r.pieceCid)).size, replicas: s.replicas, lastVerifiedAt: s.lastVerifiedAt,
      nextVerificationAt: iso(d.verifyAt), earliestExpiry: d.earliestExpiry === undefined ? undefined : iso(d.earliestExpiry),
      nextRenewalAt: d.renewAt === undefined ? undefined : iso(d.renewAt), auditHead: s.audit.cid, auditRecords: s.audit.seq,
      rounds: s.rounds, runs: s.runs, counters: s.counters, retired, unauditedEvents: s.unaudited?.length ?? 0,
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
  const audit = async (events: Parameters<ProvenantActivities['provenantAppendAudit']>[0]['events']) => {
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
        kept = [{ kind: 'verify', result: `${dropped} audit events could not be stored while every provider was unreachable`, time: kept[dropped - 1]!.time }, ...kept.slice(dropped)];
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
    await audit([{ kind: 'archive', result: `archived: ${new Set(s.replicas.map((r) => r.pieceCid)).size} pieces × ${s.copies} copies`, time: iso(Date.now()) }]);
  }
  tag();

  let roundsThisRun = 0;
  while (!retired) {
    if (workflowInfo().continueAsNewSuggested || roundsThisRun >= s.settings.maxRoundsPerRun) break;
    const { next } = nextDeadlines(s);
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
      s.lastRoundError = { at: iso(now), message, retryAt: iso(now + Math.min(s.settings.verifyEveryMs, ROUND_RETRY_MS)) };
      await audit([{ kind: 'verify', result: `round not completed: ${message}; next try at ${s.lastRoundError.retryAt}`, time: iso(now) }]);
      s.rounds++;
    }
    roundsThisRun++;
    tag();
  }

  if (retired) {
    await audit([{ kind: 'retire', result: 'steward retired by request; replicas left in place', time: iso(Date.now()) }]);
    await condition(allHandlersFinished);
    return status();
  }
  await condition(allHandlersFinished);
  return continueAsNew<typeof stewardDataset>({ ...s, runs: s.runs + 1 });

  async function round(): Promise<void> {
    const now = Date.now();
    const policy = s.policy ?? NO_POLICY;
    const events: Parameters<typeof audit>[0] = [];
    // 1. Verify every replica.
    const results = await acts.provenantVerifyReplicas({
      manifestCid: s.manifestCid,
      replicas: s.replicas.map(({ shard, pieceCid, carCid, rootCid, bytes, providerId }) => ({ shard, pieceCid, carCid, rootCid, bytes, providerId })),
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
      else events.push({ kind: 'verify', pieceCid: r.pieceCid, providerId: r.providerId, result: res.state, challenges: res.challenges, detectionProbability: res.detectionProbability, evidence: res.evidence, time: iso(now) });
    });
    providersDown = new Set(results.filter((r) => r.state === 'unreachable').map((r) => r.providerId));
    const healthy = results.filter((r) => r.state === 'healthy');
    events.unshift({
      kind: 'verify', result: `${healthy.length}/${results.length} replicas healthy`,
      challenges: results.reduce((n, r) => n + r.challenges, 0), detectionProbability: minProbability,
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
      const result = res.renewed ? `renewed until ${res.expiresAt ?? 'forever'}` : res.error ? 'renewal failed; will be replaced' : 'provider cannot renew; will be replaced';
      events.push({ kind: 'renew', pieceCid: r.pieceCid, providerId: r.providerId, result, ...(res.error ? { evidence: res.error } : {}), time: iso(now) });
    }

    // 3. Retire replicas that failed (unreachable only after the grace period).
    const bad = s.replicas.filter(
      (r) => r.state === 'missing' || r.state === 'corrupt' || r.state === 'expired' ||
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
      const failing = new Set(reps.filter((r) => bad.includes(r) && r.state !== 'unreachable').map((r) => r.providerId));
      const tried = new Set([...down, ...reps.filter((r) => !bad.includes(r) && !good.includes(r)).map((r) => r.providerId)]);
      const template = reps[0]!;
      while (need > 0) {
        const next = nextProvider(s.providers, policy, { slot: 0, placed: holding, tried, avoid: failing, pieceBytes: template.bytes });
        if (!next.provider) {
          events.push({ kind: 'repair', pieceCid, result: `${need} more copies needed; no provider left that the placement policy allows (${next.unmet})`, time: iso(now) });
          break;
        }
        const p = next.provider;
        tried.add(p.id);
        if (failing.has(p.id)) {
          await acts.provenantRetirePiece({ pieceCid, providerId: p.id });
        }
        try {
          const placed = await acts.provenantCopyPiece({ piece: { pieceCid, carCid: template.carCid, rootCid: template.rootCid, bytes: template.bytes }, from: sources, to: p.id });
          const fresh: StewardReplica = { ...template, providerId: p.id, state: 'healthy', lastCheckedAt: iso(now), lastEvidence: placed.evidence ?? 'copied from a verified replica', expiresAt: placed.expiresAt };
          delete fresh.unreachableSince;
          const replacing = reps.find((r) => r.providerId === p.id);
          s.replicas = s.replicas.filter((r) => r !== replacing);
          s.replicas.push(fresh);
          holding.push(p);
          need--;
          s.counters.repairs++;
          events.push({ kind: 'repair', pieceCid, providerId: p.id, result: `new copy from ${sources.join('/')}`, time: iso(now) });
        } catch (err) {
          if (!(err instanceof ActivityFailure)) throw err;
          events.push({ kind: 'repair', pieceCid, providerId: p.id, result: 'failed', evidence: err.cause?.message ?? err.message, time: iso(now) });
        }
      }
    }
    // 5. Drop the failed replicas (best-effort delete where the provider answers).
    for (const r of bad) {
      if (!s.replicas.includes(r)) continue;
      if (r.state !== 'unreachable') await acts.provenantRetirePiece({ pieceCid: r.pieceCid, providerId: r.providerId });
      s.replicas = s.replicas.filter((x) => x !== r);
      s.counters.retired++;
      events.push({ kind: 'retire', pieceCid: r.pieceCid, providerId: r.providerId, result: `retired (${r.state})`, evidence: r.lastEvidence, time: iso(now) });
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
        events.push({ kind: 'retire', pieceCid, providerId: r.providerId, result: 'retired (expiring; replaced)', time: iso(now) });
      }
    }
    await audit(events);
    s.lastVerifiedAt = iso(now);
    s.rounds++; // last: verifyNow waits on this, and returns the audited state
  }
}
