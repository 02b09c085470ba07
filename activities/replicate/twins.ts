/**
 * Twins: extra copies of a staged shard, written while packing for providers on the staging
 * filesystem, which then take them in by moving the file (see shard-hasher.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { twinOf } from '../pack/shard-hasher.js';
import type { StorageProvider } from '../providers/provider.js';
import type { ProviderSet } from '../providers/registry.js';

/** Twins are written for at most this many copies of a shard. */
export const MAX_TWINS = 8;

/** How many of these providers take files in from `dir` by moving them (see `StorageProvider.adoptsFrom`). */
export async function adoptingProviders(set: ProviderSet, ids: string[], dir: string): Promise<number> {
  const takes = await Promise.all(
    ids.map(
      (id) =>
        set
          .get(id)
          .adoptsFrom?.(dir)
          .catch(() => false) ?? false,
    ),
  );
  return takes.filter(Boolean).length;
}

/** A twin of the staged shard `file` that provider `p` can move in, if one is left. */
export async function twinFor(p: StorageProvider, file: string): Promise<string | undefined> {
  if (!(await p.adoptsFrom?.(path.dirname(file)).catch(() => false))) return undefined;
  for (let t = 1; t <= MAX_TWINS; t++) {
    const twin = twinOf(file, t);
    if (fs.existsSync(twin)) return twin;
  }
  return undefined;
}
