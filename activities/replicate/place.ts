/**
 * Store a staged piece's copies from inside an activity, under the placement policy (the pure
 * planner in shared/placement.ts) with failover: the pack units (pack/unit-pack.ts) and the
 * stitch (pack/stitch.ts) run on any worker, so the copies of what they stage are made where
 * the file is, not by put activities bound to one host. A piece already at a provider counts
 * (puts are idempotent), so a retried unit stores nothing twice.
 */
import fs from 'node:fs';
import { PolicyUnsatisfiableError, ProvenantError } from '../errors.js';
import { nextProvider } from '../../shared/placement.js';
import type { CopyPlan, PieceRef, ProviderRef } from '../../shared/types.js';
import type { StageContext } from '../context.js';
import type { JournalLine } from '../steward/journal.js';

export type { CopyPlan };

export async function placeCopies(
  ctx: Pick<StageContext, 'providers' | 'health' | 'metrics'>,
  o: CopyPlan & { file: string; piece: PieceRef; shard: number; slot: number; signal?: AbortSignal },
): Promise<JournalLine[]> {
  const placed: ProviderRef[] = [];
  const lines: JournalLine[] = [];
  const tried = new Set<string>();
  const errors: string[] = [];
  while (placed.length < o.copies) {
    const next = nextProvider(o.providers, o.policy, { slot: o.slot, placed, tried, pieceBytes: o.piece.bytes });
    if (!next.provider)
      throw new PolicyUnsatisfiableError(
        `piece ${o.piece.pieceCid}: only ${placed.length} of ${o.copies} copies placed; unmet: ${next.unmet}` +
          (errors.length ? `; failures: ${errors.join('; ')}` : ''),
      );
    const ref = next.provider;
    tried.add(ref.id);
    const last = placed.length === o.copies - 1;
    try {
      const where = await ctx.providers
        .get(ref.id)
        .put(o.piece, () => fs.createReadStream(o.file, { highWaterMark: 4 << 20 }), {
          signal: o.signal,
          localFile: o.file,
          consumeLocalFile: last,
        });
      placed.push(ref);
      ctx.metrics.placed(where, o.piece.bytes);
      lines.push({ shard: o.shard, piece: o.piece, placement: where });
    } catch (err) {
      // A chain that has not committed yet, or a cancellation, is not a provider failure: Temporal retries.
      if (o.signal?.aborted || (ProvenantError.is(err) && err.name === 'CommitPendingError')) throw err;
      await ctx.health.failed(ref.id, (err as Error).message);
      ctx.metrics.placeFailed(ref.id);
      errors.push(`${ref.id}: ${(err as Error).message}`);
    }
  }
  return lines;
}
