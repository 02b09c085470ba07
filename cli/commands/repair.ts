/**
 * provenant repair <dataset>: a round that verifies every shard (whatever the steward's sample)
 * and repairs what failed: missing, corrupt or expired copies, and unreachable ones past the grace
 * period, are replaced from a healthy replica under the dataset's placement policy.
 */
import { stewardStatusQuery, verifyNowWithOptionsUpdate } from '../../workflows/index.js';
import { withRuntime } from '../../workers/runtime.js';
import { stewardOf, UsageError } from '../kit.js';
import { command } from './run.js';
import { describeRound, replicaRows, replicasOf } from './verify.js';

export const repair = command(
  'repair <dataset>   verify every shard now and repair what failed; exit 1 unless healthy after it',
  {},
  async ({ config, out, positionals }) => {
    const datasetId = positionals[0];
    if (!datasetId) throw new UsageError('repair needs a dataset id');
    return withRuntime(config, async ({ client }) => {
      const steward = await stewardOf(client, datasetId);
      const before = await steward.query(stewardStatusQuery);
      out.info(`repairing ${datasetId} (health ${before.health})…`);
      const st = await steward.executeUpdate(verifyNowWithOptionsUpdate, { args: [{ full: true }] });
      const rows = replicaRows(await replicasOf(config, st));
      const repaired = st.counters.repairs - before.counters.repairs;
      const retired = st.counters.retired - before.counters.retired;
      out.result(
        {
          datasetId: st.datasetId,
          healthBefore: before.health,
          health: st.health,
          repaired,
          retired,
          renewed: st.counters.renewals - before.counters.renewals,
          detection: st.detection ?? null,
          lastRoundError: st.lastRoundError ?? null,
          replicas: rows,
        },
        `repaired ${repaired} replica(s), retired ${retired} (health ${before.health} → ${st.health})\n${describeRound(st, rows)}`,
      );
      return st.health === 'healthy' ? 0 : 1;
    });
  },
);
