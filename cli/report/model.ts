/**
 * What `provenant report` shows, built from what the read-only commands already read: each
 * running steward's status query, its replica table (page by page) and its table root (for the
 * manifest signature). Pure: the command (cli/commands/report.ts) feeds it, render.ts prints it.
 *
 * Bounded whatever the fleet size: replicas are folded into counts as their pages stream by (per
 * provider and state, per day of last check, per month of expiry); only one small row per dataset
 * is kept, and the lists the page shows (datasets, upcoming rounds, expiries, audit problems) are
 * capped when the report is built, each with the count of what was left out.
 */
import type { Envelope } from '../../activities/evidence/dsse.js';
import { checkEnvelope } from '../../activities/evidence/dsse.js';
import type { VerifyingKey } from '../../activities/evidence/keys.js';
import { manifestStatementMismatch } from '../../activities/evidence/sign.js';
import type {
  AuditChainState,
  DatasetHealth,
  ReplicaHealth,
  StewardReplica,
  StewardStatus,
} from '../../shared/types.js';

const DAY_MS = 86_400_000;

/** How much of each list the report shows (the rest is counted). */
export interface ReportLimits {
  /** Dataset rows, worst health first. */
  datasets: number;
  /** Days of replica checks the timeline shows, ending today. */
  timelineDays: number;
  /** Days of scheduled rounds shown after today. */
  upcomingDays: number;
  /** Rows in the lists of recent rounds, upcoming rounds, expiries and audit problems. */
  listRows: number;
  /** Months of replica expiries shown from this month on (later ones are summed). */
  calendarMonths: number;
}

export const DEFAULT_LIMITS: ReportLimits = {
  datasets: 500,
  timelineDays: 30,
  upcomingDays: 14,
  listRows: 50,
  calendarMonths: 12,
};

/**
 * The manifest signature a dataset's replica table root carries: 'trusted' (it verifies with a key
 * this host trusts: the signing key or a previous public key), 'unchecked' (signed, but this host
 * has no key to check it with), 'bad' (no key at hand verifies it, or it signs another manifest),
 * 'unsigned' (no signing key was configured when it was archived), 'unknown' (the root could not
 * be read).
 */
export type EvidenceState = 'trusted' | 'unchecked' | 'bad' | 'unsigned' | 'unknown';

export interface DatasetEvidence {
  state: EvidenceState;
  keyId?: string;
  detail?: string;
}

export interface DatasetRow {
  datasetId: string;
  manifestCid: string;
  health: DatasetHealth;
  copies: number;
  pieces: number;
  replicas: number;
  /** Replicas per provider (from the replica table). */
  providers: Record<string, number>;
  /** Replicas per state (from the replica table). */
  byState: Partial<Record<ReplicaHealth, number>>;
  rounds: number;
  repairs: number;
  renewals: number;
  lastVerifiedAt?: string;
  nextVerificationAt: string;
  earliestExpiry?: string;
  nextRenewalAt?: string;
  detectionProbability?: number;
  lastRoundError?: string;
  audit: { state: AuditChainState | 'unchecked'; records: number; problems: string[]; problemCount: number };
  unauditedEvents: number;
  evidence: DatasetEvidence;
  /** The replica table could not be read: why (the counts above are then the steward's own). */
  tableError?: string;
}

export interface ProviderRow {
  id: string;
  /** Replicas per state. */
  byState: Partial<Record<ReplicaHealth, number>>;
  replicas: number;
  bytes: number;
  datasets: number;
}

export interface TimelineDay {
  /** YYYY-MM-DD (UTC). */
  day: string;
  /** Replicas whose last check was that day, by its outcome. */
  healthy: number;
  failed: number;
  /** Datasets whose next round is scheduled that day (days after today only). */
  scheduled: number;
}

export interface CalendarMonth {
  /** YYYY-MM (UTC), or 'later' for everything past the last month shown. */
  month: string;
  /** Replicas that expire in it, per provider. */
  byProvider: Record<string, number>;
  replicas: number;
  /** Datasets whose next renewal falls in it. */
  renewals: number;
}

export interface ReportData {
  generatedAt: string;
  server: { address: string; namespace: string; taskQueue: string };
  limits: ReportLimits;
  datasetCount: number;
  health: Record<DatasetHealth, number>;
  /** Worst health first, then by id; at most `limits.datasets`. */
  datasets: DatasetRow[];
  providers: ProviderRow[];
  timeline: {
    days: TimelineDay[];
    /** Replica checks older than the first day shown, and replicas never checked. */
    earlier: number;
    neverChecked: number;
    /** The most recently verified datasets. */
    recent: { datasetId: string; at: string; health: DatasetHealth; detectionProbability?: number }[];
    recentTotal: number;
    /** The next rounds due, soonest first (overdue ones included). */
    upcoming: { datasetId: string; at: string }[];
    upcomingTotal: number;
  };
  calendar: {
    months: CalendarMonth[];
    /** Replicas already past their expiry, and replicas that never expire. */
    expired: number;
    noExpiry: number;
    /** Datasets by earliest expiry or next renewal, soonest first. */
    soonest: { datasetId: string; earliestExpiry?: string; nextRenewalAt?: string }[];
    soonestTotal: number;
  };
  audit: {
    byState: Record<AuditChainState | 'unchecked', number>;
    records: number;
    unauditedEvents: number;
    /** Datasets whose chain was repaired in the last check, is degraded or broken: worst first. */
    problems: { datasetId: string; state: AuditChainState; problems: string[]; problemCount: number }[];
    problemsTotal: number;
  };
  evidence: {
    signing: { configured: boolean; keyId?: string; algorithm?: string; previousKeys: number; error?: string };
    byState: Record<EvidenceState, number>;
    /** Replicas for which a chain records that their provider holds the piece (Filecoin), of all replicas. */
    committedReplicas: number;
    replicas: number;
    /** Datasets whose manifest signature is bad or could not be read. */
    problems: { datasetId: string; state: EvidenceState; detail?: string }[];
    problemsTotal: number;
  };
}

const HEALTH_ORDER: Record<DatasetHealth, number> = { lost: 0, degraded: 1, unknown: 2, healthy: 3 };
const AUDIT_ORDER: Record<AuditChainState, number> = { broken: 0, degraded: 1, repaired: 2, intact: 3 };

const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const monthOf = (ms: number) => new Date(ms).toISOString().slice(0, 7);

/** The evidence state of a table root's manifest signature, checked with the keys this host trusts. */
export function manifestEvidence(
  root: { manifestCid?: string; manifestSignature?: Envelope } | undefined,
  keys: Pick<VerifyingKey, 'keyId' | 'algorithm' | 'publicKey'>[],
): DatasetEvidence {
  if (!root) return { state: 'unknown', detail: 'no replica table' };
  const env = root.manifestSignature;
  if (!env) return { state: 'unsigned' };
  const keyId = env.signatures?.[0]?.keyid;
  try {
    const mismatch = root.manifestCid ? manifestStatementMismatch(env, root.manifestCid) : undefined;
    if (mismatch) return { state: 'bad', ...(keyId ? { keyId } : {}), detail: mismatch };
  } catch (err) {
    return { state: 'bad', ...(keyId ? { keyId } : {}), detail: (err as Error).message };
  }
  if (keys.length === 0) return { state: 'unchecked', ...(keyId ? { keyId } : {}) };
  const c = checkEnvelope(env, keys, []);
  if (c.state === 'trusted') return { state: 'trusted', keyId: c.keyId };
  return { state: 'bad', keyId: c.keyId, detail: c.state === 'bad' ? c.detail : 'not signed by a trusted key' };
}

interface Tally {
  byState: Partial<Record<ReplicaHealth, number>>;
  replicas: number;
  bytes: number;
  datasets: number;
}

/**
 * Folds datasets and their replica pages into a report. Call `dataset` once per steward, then
 * `replicas` for each page of its table, then `build`.
 */
export class ReportBuilder {
  private readonly rows = new Map<string, DatasetRow>();
  private readonly providers = new Map<string, Tally>();
  /** Replica checks per day (ms of the day's start → counts), inside the window only. */
  private readonly checks = new Map<string, { healthy: number; failed: number }>();
  private readonly expiries = new Map<string, { byProvider: Record<string, number>; replicas: number }>();
  private earlier = 0;
  private committed = 0;
  private replicaTotal = 0;
  private neverChecked = 0;
  private expired = 0;
  private noExpiry = 0;
  private readonly firstDayMs: number;
  private readonly todayMs: number;
  private readonly lastMonth: string;

  constructor(
    private readonly now: number,
    private readonly limits: ReportLimits = DEFAULT_LIMITS,
  ) {
    this.todayMs = Math.floor(now / DAY_MS) * DAY_MS;
    this.firstDayMs = this.todayMs - (limits.timelineDays - 1) * DAY_MS;
    const d = new Date(now);
    this.lastMonth = monthOf(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + limits.calendarMonths - 1, 1));
  }

  /** A steward's status and its manifest evidence (replica counts come from `replicas`). */
  dataset(st: StewardStatus, evidence: DatasetEvidence): void {
    this.rows.set(st.datasetId, {
      datasetId: st.datasetId,
      manifestCid: st.manifestCid,
      health: st.health,
      copies: st.copies,
      pieces: st.pieces,
      replicas: 0,
      providers: {},
      byState: {},
      rounds: st.rounds,
      repairs: st.counters?.repairs ?? 0,
      renewals: st.counters?.renewals ?? 0,
      ...(st.lastVerifiedAt ? { lastVerifiedAt: st.lastVerifiedAt } : {}),
      nextVerificationAt: st.nextVerificationAt,
      ...(st.earliestExpiry ? { earliestExpiry: st.earliestExpiry } : {}),
      ...(st.nextRenewalAt ? { nextRenewalAt: st.nextRenewalAt } : {}),
      ...(st.detection ? { detectionProbability: st.detection.probability } : {}),
      ...(st.lastRoundError ? { lastRoundError: st.lastRoundError.message } : {}),
      audit: st.audit
        ? {
            state: st.audit.state,
            records: st.audit.records,
            problems: st.audit.problems,
            problemCount: st.audit.problemCount,
          }
        : { state: 'unchecked', records: st.auditRecords, problems: [], problemCount: 0 },
      unauditedEvents: st.unauditedEvents,
      evidence,
    });
  }

  /** The replica table could not be read: keep the steward's own counts and say why. */
  tableUnreadable(st: StewardStatus, why: string): void {
    const row = this.rows.get(st.datasetId);
    if (!row) return;
    row.tableError = why;
    row.replicas = st.replicaCount ?? 0;
    row.byState = { ...(st.replicaTable?.byState ?? {}) };
  }

  /** One page of a dataset's replicas. */
  replicas(datasetId: string, page: StewardReplica[]): void {
    const row = this.rows.get(datasetId);
    for (const r of page) {
      if (row) {
        if (row.providers[r.providerId] === undefined) {
          row.providers[r.providerId] = 0;
          this.tally(r.providerId).datasets++;
        }
        row.providers[r.providerId]!++;
        row.byState[r.state] = (row.byState[r.state] ?? 0) + 1;
        row.replicas++;
      }
      this.replicaTotal++;
      // A chain's record of the copy (Filecoin providers), read loosely: older tables have none.
      if ((r as { commitment?: unknown }).commitment) this.committed++;
      const t = this.tally(r.providerId);
      t.replicas++;
      t.bytes += r.bytes;
      t.byState[r.state] = (t.byState[r.state] ?? 0) + 1;
      this.check(r);
      this.expiry(r);
    }
  }

  private tally(id: string): Tally {
    let t = this.providers.get(id);
    if (!t) this.providers.set(id, (t = { byState: {}, replicas: 0, bytes: 0, datasets: 0 }));
    return t;
  }

  private check(r: StewardReplica): void {
    const at = r.lastCheckedAt ? Date.parse(r.lastCheckedAt) : NaN;
    if (Number.isNaN(at)) {
      this.neverChecked++;
      return;
    }
    if (at < this.firstDayMs) {
      this.earlier++;
      return;
    }
    const day = dayOf(Math.min(at, this.todayMs));
    const c = this.checks.get(day) ?? { healthy: 0, failed: 0 };
    if (r.state === 'healthy') c.healthy++;
    else c.failed++;
    this.checks.set(day, c);
  }

  private expiry(r: StewardReplica): void {
    const at = r.expiresAt ? Date.parse(r.expiresAt) : NaN;
    if (Number.isNaN(at)) {
      this.noExpiry++;
      return;
    }
    if (at < this.now) {
      this.expired++;
      return;
    }
    const m = monthOf(at);
    const key = m > this.lastMonth ? 'later' : m;
    const e = this.expiries.get(key) ?? { byProvider: {}, replicas: 0 };
    e.byProvider[r.providerId] = (e.byProvider[r.providerId] ?? 0) + 1;
    e.replicas++;
    this.expiries.set(key, e);
  }

  build(o: {
    server: ReportData['server'];
    signing: ReportData['evidence']['signing'];
    generatedAt?: string;
  }): ReportData {
    const L = this.limits;
    const all = [...this.rows.values()];
    const health: Record<DatasetHealth, number> = { healthy: 0, degraded: 0, lost: 0, unknown: 0 };
    const auditBy: Record<AuditChainState | 'unchecked', number> = {
      intact: 0,
      repaired: 0,
      degraded: 0,
      broken: 0,
      unchecked: 0,
    };
    const evidenceBy: Record<EvidenceState, number> = { trusted: 0, unchecked: 0, bad: 0, unsigned: 0, unknown: 0 };
    let records = 0;
    let unaudited = 0;
    for (const r of all) {
      health[r.health]++;
      auditBy[r.audit.state]++;
      evidenceBy[r.evidence.state]++;
      records += r.audit.records;
      unaudited += r.unauditedEvents;
    }
    const datasets = [...all]
      .sort((a, b) => HEALTH_ORDER[a.health] - HEALTH_ORDER[b.health] || a.datasetId.localeCompare(b.datasetId))
      .slice(0, L.datasets);

    // Timeline: every day of the window, checks in the past, scheduled rounds after today.
    const scheduled = new Map<string, number>();
    const endMs = this.todayMs + L.upcomingDays * DAY_MS;
    for (const r of all) {
      const at = Date.parse(r.nextVerificationAt);
      if (Number.isNaN(at) || at < this.todayMs + DAY_MS || at >= endMs + DAY_MS) continue;
      scheduled.set(dayOf(at), (scheduled.get(dayOf(at)) ?? 0) + 1);
    }
    const days: TimelineDay[] = [];
    for (let ms = this.firstDayMs; ms <= endMs; ms += DAY_MS) {
      const day = dayOf(ms);
      const c = this.checks.get(day);
      days.push({ day, healthy: c?.healthy ?? 0, failed: c?.failed ?? 0, scheduled: scheduled.get(day) ?? 0 });
    }
    const verified = all
      .filter((r) => r.lastVerifiedAt)
      .sort((a, b) => b.lastVerifiedAt!.localeCompare(a.lastVerifiedAt!));
    const recent = verified.slice(0, L.listRows).map((r) => ({
      datasetId: r.datasetId,
      at: r.lastVerifiedAt!,
      health: r.health,
      ...(r.detectionProbability !== undefined ? { detectionProbability: r.detectionProbability } : {}),
    }));
    const upcomingAll = all
      .filter((r) => !Number.isNaN(Date.parse(r.nextVerificationAt)))
      .sort((a, b) => a.nextVerificationAt.localeCompare(b.nextVerificationAt));

    // Calendar: this month and the next ones, then 'later'.
    const months: CalendarMonth[] = [];
    const d = new Date(this.now);
    const renewals = new Map<string, number>();
    for (const r of all) {
      const at = r.nextRenewalAt ? Date.parse(r.nextRenewalAt) : NaN;
      if (Number.isNaN(at)) continue;
      const m = monthOf(Math.max(at, this.now));
      const key = m > this.lastMonth ? 'later' : m;
      renewals.set(key, (renewals.get(key) ?? 0) + 1);
    }
    for (let i = 0; i < L.calendarMonths; i++) {
      const month = monthOf(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + i, 1));
      const e = this.expiries.get(month);
      months.push({
        month,
        byProvider: e?.byProvider ?? {},
        replicas: e?.replicas ?? 0,
        renewals: renewals.get(month) ?? 0,
      });
    }
    const later = this.expiries.get('later');
    if (later || renewals.get('later'))
      months.push({
        month: 'later',
        byProvider: later?.byProvider ?? {},
        replicas: later?.replicas ?? 0,
        renewals: renewals.get('later') ?? 0,
      });
    const soonestOf = (r: DatasetRow) =>
      [r.earliestExpiry, r.nextRenewalAt].filter((x): x is string => !!x).sort()[0] ?? '';
    const soonestAll = all.filter((r) => soonestOf(r)).sort((a, b) => soonestOf(a).localeCompare(soonestOf(b)));

    const auditProblems = all
      .filter((r) => r.audit.state !== 'intact' && r.audit.state !== 'unchecked')
      .sort(
        (a, b) =>
          AUDIT_ORDER[a.audit.state as AuditChainState] - AUDIT_ORDER[b.audit.state as AuditChainState] ||
          a.datasetId.localeCompare(b.datasetId),
      );
    const evidenceProblems = all
      .filter((r) => r.evidence.state === 'bad' || r.evidence.state === 'unknown')
      .sort((a, b) => (a.evidence.state === 'bad' ? 0 : 1) - (b.evidence.state === 'bad' ? 0 : 1));

    return {
      generatedAt: o.generatedAt ?? new Date(this.now).toISOString(),
      server: o.server,
      limits: L,
      datasetCount: all.length,
      health,
      datasets,
      providers: [...this.providers].map(([id, t]) => ({ id, ...t })).sort((a, b) => a.id.localeCompare(b.id)),
      timeline: {
        days,
        earlier: this.earlier,
        neverChecked: this.neverChecked,
        recent,
        recentTotal: verified.length,
        upcoming: upcomingAll.slice(0, L.listRows).map((r) => ({ datasetId: r.datasetId, at: r.nextVerificationAt })),
        upcomingTotal: upcomingAll.length,
      },
      calendar: {
        months,
        expired: this.expired,
        noExpiry: this.noExpiry,
        soonest: soonestAll.slice(0, L.listRows).map((r) => ({
          datasetId: r.datasetId,
          ...(r.earliestExpiry ? { earliestExpiry: r.earliestExpiry } : {}),
          ...(r.nextRenewalAt ? { nextRenewalAt: r.nextRenewalAt } : {}),
        })),
        soonestTotal: soonestAll.length,
      },
      audit: {
        byState: auditBy,
        records,
        unauditedEvents: unaudited,
        problems: auditProblems.slice(0, L.listRows).map((r) => ({
          datasetId: r.datasetId,
          state: r.audit.state as AuditChainState,
          problems: r.audit.problems,
          problemCount: r.audit.problemCount,
        })),
        problemsTotal: auditProblems.length,
      },
      evidence: {
        signing: o.signing,
        byState: evidenceBy,
        committedReplicas: this.committed,
        replicas: this.replicaTotal,
        problems: evidenceProblems.slice(0, L.listRows).map((r) => ({
          datasetId: r.datasetId,
          state: r.evidence.state,
          ...(r.evidence.detail ? { detail: r.evidence.detail } : {}),
        })),
        problemsTotal: evidenceProblems.length,
      },
    };
  }
}
