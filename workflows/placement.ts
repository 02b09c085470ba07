/**
 * Placement: which providers get a piece's copies. Deterministic (pure functions of the
 * provider list and a slot number), so workflows can call them. Copies always go to
 * distinct providers; the starting provider rotates with the slot to spread load.
 */
import type { ProviderRef } from './types.js';

export function choosePlacement(providers: ProviderRef[], slot: number): ProviderRef[] {
  if (providers.length === 0) return [];
  const start = ((slot % providers.length) + providers.length) % providers.length;
  return [...providers.slice(start), ...providers.slice(0, start)];
}

/** The preferred order followed by every other provider, each once. */
export function failoverCandidates(preferred: ProviderRef[], all: ProviderRef[]): ProviderRef[] {
  const seen = new Set<string>();
  const out: ProviderRef[] = [];
  for (const p of [...preferred, ...all]) {
    if (seen.has(p.id)) continue;
    seen.add(p.id);
    out.push(p);
  }
  return out;
}
