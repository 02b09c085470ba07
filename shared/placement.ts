/**
 * Placement: which providers get a piece's copies. Pure, deterministic functions of the
 * provider list, the policy and what is already placed, so workflows can call them.
 * Copies always go to distinct providers. Hard constraints (price ceiling, energy minimum,
 * max piece size, caps per org/city/country/continent/region) are checked before any upload;
 * an unsatisfiable policy names the constraint that cannot be met.
 */
import type { PlacementPolicyInput, ProviderRef } from './types.js';

export const NO_POLICY: PlacementPolicyInput = { preferEnergy: false, cooldownMs: 0 };

const CAPS = [
  ['maxPerOrg', 'org'],
  ['maxPerCity', 'city'],
  ['maxPerCountry', 'country'],
  ['maxPerContinent', 'continent'],
  ['maxPerRegion', 'region'],
] as const;

/** Why a provider is never eligible under the policy (or undefined when it is). */
export function ineligible(p: ProviderRef, policy: PlacementPolicyInput, pieceBytes = 0): string | undefined {
  if (
    policy.maxPricePerTiBMonth !== undefined &&
    p.pricePerTiBMonth !== undefined &&
    p.pricePerTiBMonth > policy.maxPricePerTiBMonth
  ) {
    return `maxPricePerTiBMonth ${policy.maxPricePerTiBMonth} (${p.id} costs ${p.pricePerTiBMonth})`;
  }
  if (policy.minEnergyScore !== undefined && (p.energyScore ?? -1) < policy.minEnergyScore) {
    return `minEnergyScore ${policy.minEnergyScore} (${p.id} scores ${p.energyScore ?? 'nothing'})`;
  }
  if (p.maxPieceBytes !== undefined && pieceBytes > p.maxPieceBytes) {
    return `maxPieceBytes (${p.id} takes pieces up to ${p.maxPieceBytes} bytes, this one is ${pieceBytes})`;
  }
  return undefined;
}

/** Preference order for a piece: greener or cheaper first, then config order rotated by slot. */
export function preferenceOrder(providers: ProviderRef[], policy: PlacementPolicyInput, slot: number): ProviderRef[] {
  const n = providers.length;
  if (n === 0) return [];
  const start = ((slot % n) + n) % n;
  const rotated = [...providers.slice(start), ...providers.slice(0, start)];
  const rank = new Map(rotated.map((p, i) => [p.id, i]));
  return rotated.sort((a, b) => {
    if (policy.preferEnergy && (a.energyScore ?? -1) !== (b.energyScore ?? -1))
      return (b.energyScore ?? -1) - (a.energyScore ?? -1);
    if (policy.maxPricePerTiBMonth !== undefined && (a.pricePerTiBMonth ?? 0) !== (b.pricePerTiBMonth ?? 0))
      return (a.pricePerTiBMonth ?? 0) - (b.pricePerTiBMonth ?? 0);
    return rank.get(a.id)! - rank.get(b.id)!;
  });
}

/** True when adding `p` to `placed` keeps every cap of the policy. */
export function withinCaps(p: ProviderRef, placed: ProviderRef[], policy: PlacementPolicyInput): string | undefined {
  for (const [cap, attr] of CAPS) {
    const max = policy[cap];
    const v = p[attr];
    if (max === undefined || v === undefined) continue;
    if (placed.filter((q) => q[attr] === v).length >= max) return `${cap} ${max} (${attr} '${v}')`;
  }
  return undefined;
}

/** The next provider to try for a piece, or why there is none. */
export function nextProvider(
  providers: ProviderRef[],
  policy: PlacementPolicyInput,
  o: { slot: number; placed: ProviderRef[]; tried: Set<string>; avoid?: Set<string>; pieceBytes?: number },
): { provider?: ProviderRef; unmet?: string } {
  let unmet: string | undefined;
  const order = preferenceOrder(providers, policy, o.slot);
  // Providers cooling down after failures come last: used only when nothing else is left.
  const ranked = [...order.filter((p) => !o.avoid?.has(p.id)), ...order.filter((p) => o.avoid?.has(p.id))];
  for (const p of ranked) {
    if (o.tried.has(p.id) || o.placed.some((q) => q.id === p.id)) continue;
    const why = ineligible(p, policy, o.pieceBytes) ?? withinCaps(p, o.placed, policy);
    if (why) {
      unmet ??= why;
      continue;
    }
    return { provider: p };
  }
  return { unmet: unmet ?? 'distinct providers (every provider already holds or failed this piece)' };
}

/**
 * Check before any upload that `copies` distinct providers can satisfy the policy.
 * Returns undefined when they can, else the unmet constraint.
 */
export function checkSatisfiable(
  providers: ProviderRef[],
  policy: PlacementPolicyInput,
  copies: number,
  pieceBytes = 0,
): string | undefined {
  if (copies > providers.length) {
    return `distinct providers: ${copies} copies need ${copies} providers, ${providers.length} configured (${providers.map((p) => p.id).join(', ')})`;
  }
  const placed: ProviderRef[] = [];
  let unmet: string | undefined;
  for (let i = 0; i < copies; i++) {
    const next = nextProvider(providers, policy, { slot: 0, placed, tried: new Set(), pieceBytes });
    if (!next.provider) {
      unmet = next.unmet;
      break;
    }
    placed.push(next.provider);
  }
  return unmet === undefined ? undefined : `${copies} copies cannot be placed: ${unmet}`;
}
