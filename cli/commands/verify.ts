/** provenant verify <dataset>: a verification round now, each replica's result and the round's detection probability. */
import { readReplicaTable } from '../../activities/steward/activities.js';
import { describeDetection } from '../../shared/sampling.js';
import type { StewardReplica, StewardStatus } from '../../shared/types.js';
import { verifyNowUpdate, verifyNowWithOptionsUpdate } from '../../workflows/index.js';
import { withRuntime } from '../../workers/runtime.js';
import type { Config } from '../../config/schema.js';
import { stewardOf, UsageError } from '../kit.js';
import { command } from './run.js';

/** The replicas of a steward's status: inline (stewards before the table) or read from its replica table. */
export async function replicasOf(config: Config, st: StewardStatus): Promise<StewardReplica[]> {
  return st.replicas ?? (await readReplicaTable(config, st.replicaTable?.tableCid ?? null)).replicas;
}

export function replicaRows(replicas: StewardReplica[]) {
  return [...replicas]
    .sort(
      (a, b) => a.shard - b.shard || a.pieceCid.localeCompare(b.pieceCid) || a.providerId.localeCompare(b.providerId),
    )
    .map((r) => ({
      shard: r.shard,
      pieceCid: r.pieceCid,
      providerId: r.providerId,
      state: r.state,
      lastCheckedAt: r.lastCheckedAt ?? null,
      detectionProbability: r.detectionProbability ?? null,
      evidence: r.lastEvidence ?? null,
    }));
}

export function describeRound(st: StewardStatus, rows: ReturnType<typeof replicaRows>): string {
  const healthy = rows.filter((r) => r.state === 'healthy').length;
  return [
    `${st.datasetId}: ${st.health} (${healthy}/${rows.length} replicas healthy, ${st.copies} copies wanted, round ${st.rounds})`,
    ...(st.detection ? [`  verification: ${describeDetection(st.detection)}`] : []),
    ...(st.lastRoundError
      ? [`  round not completed: ${st.lastRoundError.message} (next try ${st.lastRoundError.retryAt})`]
      : []),
    ...rows.map(
      (r) =>
        `  ${r.shard < 0 ? 'manifest' : `shard ${r.shard}`}\t${r.providerId}\t${r.state}` +
        (r.detectionProbability !== null && r.state === 'healthy' ? `\tp≥${r.detectionProbability.toFixed(4)}` : '') +
        (r.state !== 'healthy' && r.evidence ? `\t${r.evidence}` : ''),
    ),
  ].join('\n');
}

export const verify = command(
  'verify <dataset> [--full]   a verification round now; exit 1 unless healthy after it',
  { full: { type: 'boolean' } },
  async ({ config, out, positionals, values }) => {
    const datasetId = positionals[0];
    if (!datasetId) throw new UsageError('verify needs a dataset id');
    return withRuntime(config, async ({ client }) => {
      const steward = await stewardOf(client, datasetId);
      out.info(`verifying ${datasetId}…`);
      const st = values.full
        ? await steward.executeUpdate(verifyNowWithOptionsUpdate, { args: [{ full: true }] })
        : await steward.executeUpdate(verifyNowUpdate);
      const rows = replicaRows(await replicasOf(config, st));
      out.result(
        {
          datasetId: st.datasetId,
          manifestCid: st.manifestCid,
          health: st.health,
          copies: st.copies,
          rounds: st.rounds,
          lastVerifiedAt: st.lastVerifiedAt ?? null,
          detection: st.detection ?? null,
          detectionProbability: st.detection?.probability ?? null,
          lastRoundError: st.lastRoundError ?? null,
          replicas: rows,
        },
        describeRound(st, rows),
      );
      return st.health === 'healthy' ? 0 : 1;
    });
  },
);
