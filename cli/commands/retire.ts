/**
 * provenant retire <dataset> [--yes] [--delete]: end the dataset's steward. Nothing is deleted
 * unless --delete: then, after the retirement is audited, every replica (manifest and shards) and
 * the replica table's blocks are deleted from the providers by an idempotent activity. The audit
 * log is kept: it holds no dataset bytes and is the record of what existed and that it was deleted.
 * Asks for confirmation on a terminal; without one, --yes is required.
 */
import readline from 'node:readline/promises';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { StewardStatus } from '../../shared/types.js';
import { retireSignal } from '../../workflows/index.js';
import { withRuntime } from '../../workers/runtime.js';
import { stewardOf, UsageError } from '../kit.js';
import { command } from './run.js';

async function confirm(question: string): Promise<string> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(question)).trim();
  } finally {
    rl.close();
  }
}

export const retire = command(
  'retire <dataset> [--yes] [--delete]   end stewardship; --delete also deletes every replica',
  { yes: { type: 'boolean' }, delete: { type: 'boolean' } },
  async ({ config, out, positionals, values }) => {
    const datasetId = positionals[0];
    if (!datasetId) throw new UsageError('retire needs a dataset id');
    const remove = !!values.delete;
    if (!values.yes) {
      if (!process.stdin.isTTY)
        throw new UsageError('retire asks for confirmation and stdin is not a terminal: pass --yes to retire');
      const what = remove
        ? `This ends the steward of '${datasetId}' and DELETES every replica (manifest, shards) from the providers.`
        : `This ends the steward of '${datasetId}': its replicas stay in place but are no longer verified or repaired.`;
      const answer = await confirm(`${what}\nType the dataset id to confirm: `);
      if (answer !== datasetId) {
        out.result({ datasetId, retired: false }, 'not retired');
        return 1;
      }
    }
    return withRuntime(config, async ({ client }) => {
      const steward = await stewardOf(client, datasetId);
      let already = false;
      try {
        if (remove) await steward.signal(retireSignal, { delete: true });
        else await steward.signal(retireSignal);
      } catch (err) {
        // Retired before: its result is the state it ended with.
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        already = true;
      }
      if (!already) out.info(`retiring ${datasetId}${remove ? ' and deleting its replicas' : ''}…`);
      const st = (await steward.result()) as StewardStatus;
      const d = st.deletion;
      out.result(
        { datasetId, retired: st.retired, alreadyRetired: already, deleted: !!d, deletion: d ?? null },
        [
          already ? `${datasetId} was already retired` : `retired ${datasetId}`,
          d
            ? `  deleted ${d.deleted} replicas (${d.absent} already gone) and ${d.tableBlocks} replica table blocks; ${d.failed} not deleted${d.problems.length ? `: ${d.problems.join('; ')}` : ''}`
            : '  replicas left in place',
          '  the audit log is kept (provenant audit still reads it)',
        ].join('\n'),
      );
      if (remove && already && !d) {
        process.stderr.write(`provenant: ${datasetId} was retired before without --delete; nothing deleted\n`);
        return 1;
      }
      return d && d.failed > 0 ? 1 : 0;
    });
  },
);
