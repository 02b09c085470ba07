/**
 * One page of a steward round: verify the replicas of the round's sampled shards (every shard
 * unless the round samples) → renew what expires soon → repair what failed (copy from a healthy
 * replica to a provider the placement policy allows) → retire what failed or was replaced. The
 * rules are the round's (workflows/steward.ts keeps the same ones for stewards started before the
 * replica table); a page holds whole pieces, so every decision about a piece's copies is taken
 * with all of them in view. Side effects go through `ops`, so the rules can be tested without
 * providers.
 */
import type { StewardPagesRequest } from '../../shared/activities.js';
import { nextProvider } from '../../shared/placement.js';
import type { Placement, PieceRef, StewardReplica, TimedAuditEvent, VerifyResult } from '../../shared/types.js';

export interface PageOps {
  verify(r: StewardReplica): Promise<VerifyResult>;
  renew(r: { pieceCid: string; providerId: string }): Promise<{ renewed: boolean; expiresAt?: string }>;
  /** `replacing`: `to` holds a copy that failed (the new one is read back before it counts). */
  copy(r: { piece: PieceRef; from: string[]; to: string; replacing?: boolean }): Promise<Placement>;
  retire(r: { pieceCid: string; providerId: string }): Promise<unknown>;
}

export interface PageOutcome {
  replicas: StewardReplica[];
  events: TimedAuditEvent[];
  checked: number;
  healthy: number;
  challenges: number;
  minProbability: number;
  /** Providers seen unreachable (with those known before). */
  down: Set<string>;
  /** Distinct shards (not the manifest) whose replicas were verified. */
  checkedShards: number;
  /** Replicas not verified: outside the round's shard sample and healthy at their last check. */
  skipped: number;
  counters: { repairs: number; renewals: number; retired: number };
}

type Rules = Pick<StewardPagesRequest, 'now' | 'copies' | 'providers' | 'policy' | 'settings' | 'down'> & {
  /** Whether the round's shard sample holds this shard (absent: every shard). */
  sampled?: (shard: number) => boolean;
};

const iso = (ms: number) => new Date(ms).toISOString();

/** Whether a replica counts toward the target: healthy (or unreachable only within the grace period) and not expiring soon. */
export function isCounted(r: StewardReplica, now: number, settings: Rules['settings']): boolean {
  const inGrace =
    r.state === 'unreachable' &&
    !!r.unreachableSince &&
    now - Date.parse(r.unreachableSince) < settings.unreachableGraceMs;
  if (r.state !== 'healthy' && !inGrace) return false;
  return !r.expiresAt || Date.parse(r.expiresAt) - now > settings.renewWindowMs;
}

export async function stewardPage(
  ops: PageOps,
  page: StewardReplica[],
  rules: Rules,
  beat: () => void = () => undefined,
): Promise<PageOutcome> {
  const { now, settings, copies, policy } = rules;
  const counters = { repairs: 0, renewals: 0, retired: 0 };
  const events: TimedAuditEvent[] = [];
  let replicas = page.map((r) => ({ ...r }));

  // 1. Verify the replicas of the round's sample of shards. The manifest, and replicas not healthy
  // at their last check (unreachable, unknown), are verified every round; the others keep their
  // last check, and still go through renewal and repair below with it.
  let minProbability = 1;
  let challenges = 0;
  let healthy = 0;
  let skipped = 0;
  const shards = new Set<number>();
  for (const r of replicas) {
    if (rules.sampled && r.shard >= 0 && r.state === 'healthy' && !rules.sampled(r.shard)) {
      skipped++;
      continue;
    }
    if (r.shard >= 0) shards.add(r.shard);
    const res = await ops.verify(r);
    beat();
    r.state = res.state;
    r.lastCheckedAt = iso(now);
    r.lastEvidence = res.evidence;
    r.detectionProbability = res.detectionProbability;
    if (res.expiresAt) r.expiresAt = res.expiresAt;
    // A commitment the put could not record yet (a Lotus deal still sealing then), once the chain has it.
    if (res.state === 'healthy' && res.commitment && !r.commitment) r.commitment = res.commitment;
    if (res.state === 'unreachable') r.unreachableSince ??= iso(now);
    else delete r.unreachableSince;
    challenges += res.challenges;
    if (res.state === 'healthy') {
      healthy++;
      minProbability = Math.min(minProbability, res.detectionProbability);
    } else {
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
    }
  }
  const checked = replicas.length - skipped;

  // 2. Renew healthy replicas inside the renewal window.
  for (const r of replicas) {
    if (r.state !== 'healthy' || !r.expiresAt || Date.parse(r.expiresAt) - now > settings.renewWindowMs) continue;
    let res: { renewed: boolean; expiresAt?: string; error?: string };
    try {
      res = await ops.renew({ pieceCid: r.pieceCid, providerId: r.providerId });
    } catch (err) {
      // Refused (funds, a claim that cannot be extended…): the replica is replaced below instead.
      res = { renewed: false, error: (err as Error).message };
    }
    beat();
    if (res.renewed && res.expiresAt) r.expiresAt = res.expiresAt;
    counters.renewals += res.renewed ? 1 : 0;
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
  const bad = replicas.filter(
    (r) =>
      r.state === 'missing' ||
      r.state === 'corrupt' ||
      r.state === 'expired' ||
      (r.state === 'unreachable' && now - Date.parse(r.unreachableSince!) >= settings.unreachableGraceMs),
  );
  // 4. Restore the replica count for every piece.
  const down = new Set([...rules.down, ...replicas.filter((r) => r.state === 'unreachable').map((r) => r.providerId)]);
  const byPiece = new Map<string, StewardReplica[]>();
  for (const r of replicas) byPiece.set(r.pieceCid, [...(byPiece.get(r.pieceCid) ?? []), r]);
  for (const [pieceCid, reps] of byPiece) {
    const good = reps.filter((r) => isCounted(r, now, settings));
    const sources = reps.filter((r) => r.state === 'healthy').map((r) => r.providerId);
    let need = copies - good.length;
    if (need <= 0) continue;
    if (sources.length === 0) {
      events.push({ kind: 'repair', pieceCid, result: 'no healthy replica left to copy from', time: iso(now) });
      continue;
    }
    // The archive's placement policy, as when the copies were first made: distinct providers,
    // the caps counted against the copies that stay, price, energy and piece size. Providers that
    // are down or hold a copy being replaced (expiring) are not tried; one whose copy is
    // missing/corrupt (but that answers) comes last.
    const holding = rules.providers.filter((p) => good.some((r) => r.providerId === p.id));
    const failing = new Set(reps.filter((r) => bad.includes(r) && r.state !== 'unreachable').map((r) => r.providerId));
    const tried = new Set([
      ...down,
      ...reps.filter((r) => !bad.includes(r) && !good.includes(r)).map((r) => r.providerId),
    ]);
    const template = reps[0]!;
    while (need > 0) {
      const next = nextProvider(rules.providers, policy, {
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
      if (failing.has(p.id)) await ops.retire({ pieceCid, providerId: p.id });
      try {
        const placed = await ops.copy({
          piece: { pieceCid, carCid: template.carCid, rootCid: template.rootCid, bytes: template.bytes },
          from: sources,
          to: p.id,
          ...(failing.has(p.id) ? { replacing: true } : {}),
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
        if (fresh.expiresAt === undefined) delete fresh.expiresAt;
        // The chain's record of the copy copied from is not this copy's: only its own put's counts.
        delete fresh.commitment;
        if (placed.commitment) fresh.commitment = placed.commitment;
        const replacing = reps.find((r) => r.providerId === p.id);
        replicas = replicas.filter((r) => r !== replacing);
        replicas.push(fresh);
        holding.push(p);
        need--;
        counters.repairs++;
        events.push({
          kind: 'repair',
          pieceCid,
          providerId: p.id,
          result: `new copy from ${sources.join('/')}`,
          time: iso(now),
        });
      } catch (err) {
        events.push({
          kind: 'repair',
          pieceCid,
          providerId: p.id,
          result: 'failed',
          evidence: (err as Error).message,
          time: iso(now),
        });
      }
      beat();
    }
  }
  // 5. Drop the failed replicas (best-effort delete where the provider answers).
  for (const r of bad) {
    if (!replicas.includes(r)) continue;
    if (r.state !== 'unreachable') await ops.retire({ pieceCid: r.pieceCid, providerId: r.providerId });
    replicas = replicas.filter((x) => x !== r);
    counters.retired++;
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
    const reps = replicas.filter((r) => r.pieceCid === pieceCid);
    const counted = reps.filter((r) => isCounted(r, now, settings));
    if (counted.length < copies) continue;
    for (const r of reps) {
      if (counted.includes(r)) continue;
      await ops.retire({ pieceCid, providerId: r.providerId });
      replicas = replicas.filter((x) => x !== r);
      counters.retired++;
      events.push({
        kind: 'retire',
        pieceCid,
        providerId: r.providerId,
        result: 'retired (expiring; replaced)',
        time: iso(now),
      });
    }
  }
  return {
    replicas,
    events,
    checked,
    healthy,
    challenges,
    minProbability,
    down,
    counters,
    checkedShards: shards.size,
    skipped,
  };
}
