/** provenant replicas <dataset> [--add N]: the copies per piece; with --add, raise the target and wait for a round to place them. */
import { addReplicasSignal, stewardStatusQuery, verifyNowUpdate } from '../../workflows/index.js';
import type { StewardReplica } from '../../shared/types.js';
import { withRuntime } from '../../workers/runtime.js';
import { stewardOf, UsageError } from '../kit.js';
import { command } from './run.js';
import { replicasOf } from './verify.js';

/** Healthy copies per piece, and replicas per provider. */
export function copiesOf(replicas: StewardReplica[]) {
  const perPiece = new Map<string, number>();
  const perProvider: Record<string, number> = {};
  for (const r of replicas) {
    perPiece.set(r.pieceCid, (perPiece.get(r.pieceCid) ?? 0) + (r.state === 'healthy' ? 1 : 0));
    if (r.state === 'healthy') perProvider[r.providerId] = (perProvider[r.providerId] ?? 0) + 1;
  }
  const counts = [...perPiece.values()];
  return {
    pieces: perPiece.size,
    minHealthyCopies: counts.length ? Math.min(...counts) : 0,
    maxHealthyCopies: counts.length ? Math.max(...counts) : 0,
    perProvider,
  };
}

export const replicas = command(
  'replicas <dataset> [--add N]   copies per piece; --add N raises the target and waits for a round to place them',
  { add: { type: 'string' } },
  async ({ config, out, positionals, values }) => {
    const datasetId = positionals[0];
    if (!datasetId) throw new UsageError('replicas needs a dataset id');
    const addText = values.add as string | undefined;
    const add = addText === undefined ? 0 : Number(addText);
    if (addText !== undefined && (!Number.isInteger(add) || add < 1))
      throw new UsageError(`--add expects a whole number ≥ 1, got ${JSON.stringify(addText)}`);
    return withRuntime(config, async ({ client }) => {
      const steward = await stewardOf(client, datasetId);
      const before = await steward.query(stewardStatusQuery);
      let st = before;
      if (add > 0) {
        out.info(`${datasetId}: ${before.copies} → ${before.copies + add} copies; waiting for a round to place them…`);
        await steward.signal(addReplicasSignal, add);
        // A round that starts after the signal places the new copies; verifyNow waits for one.
        st = await steward.executeUpdate(verifyNowUpdate);
      }
      const c = copiesOf(await replicasOf(config, st));
      const placed = c.minHealthyCopies >= st.copies;
      out.result(
        {
          datasetId: st.datasetId,
          copiesBefore: before.copies,
          copies: st.copies,
          added: add,
          health: st.health,
          placed,
          ...c,
        },
        [
          `${st.datasetId}: ${st.copies} copies wanted; every piece has ${c.minHealthyCopies === c.maxHealthyCopies ? c.minHealthyCopies : `${c.minHealthyCopies}–${c.maxHealthyCopies}`} healthy (${c.pieces} pieces, health ${st.health})`,
          `  per provider: ${Object.entries(c.perProvider)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')}`,
          ...(placed ? [] : [`  not every piece has ${st.copies} copies yet (see provenant audit ${st.datasetId})`]),
        ].join('\n'),
      );
      return placed ? 0 : 1;
    });
  },
);
