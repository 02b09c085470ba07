/**
 * provenant rehome --from PROVIDER [--to PROVIDER]… [--detach]: move every dataset's replicas off
 * a provider, under each dataset's placement policy (with --to, only onto those providers). It
 * runs as a workflow (rehomeProviders: checkpointed per page of stewards, resumable: run it again
 * to attach to it or, once it ended, to pick up what is left); each steward copies from a healthy
 * replica, verifies the new copy, then retires the old one, auditing every step in the dataset's log.
 * Exit 1 while any replica is left on the provider.
 */
import type { RehomeProgress } from '../../shared/types.js';
import { rehomeProviders, rehomeWorkflowId } from '../../workflows/index.js';
import { withRuntime } from '../../workers/runtime.js';
import { UsageError } from '../kit.js';
import { command } from './run.js';

const list = (v: unknown): string[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]).map(String);

export function describeRehome(from: string[], p: RehomeProgress): string {
  return [
    `rehome off ${from.join(', ')}: ${p.done ? 'done' : 'running'}: ${p.datasets} datasets (${p.completed} complete), ${p.moved} replicas moved, ${p.remaining} left, ${p.skipped} skipped, ${p.failed} failed`,
    ...p.incomplete.map((i) => `  ${i.datasetId ?? i.workflowId}: ${i.why}`),
  ].join('\n');
}

export const rehome = command(
  'rehome --from PROVIDER [--to PROVIDER]... [--detach]   move every dataset off a provider',
  { from: { type: 'string', multiple: true }, to: { type: 'string', multiple: true }, detach: { type: 'boolean' } },
  async ({ config, out, values }) => {
    const from = [...new Set(list(values.from))];
    const to = [...new Set(list(values.to))];
    if (from.length === 0) throw new UsageError('rehome needs --from PROVIDER');
    const ids = new Set(config.providers.map((p) => p.id));
    for (const id of to) if (!ids.has(id)) throw new UsageError(`--to ${id}: no such provider in the config`);
    for (const id of to) if (from.includes(id)) throw new UsageError(`--to ${id} is also a --from provider`);
    return withRuntime(config, async ({ client }) => {
      const handle = await client.workflow.start(rehomeProviders, {
        workflowId: rehomeWorkflowId(from),
        taskQueue: config.temporal.taskQueue,
        // A rehome under way is attached to, not started twice.
        workflowIdConflictPolicy: 'USE_EXISTING',
        args: [{ from, ...(to.length ? { to } : {}), pageSize: 100, concurrency: 4, pagesPerRun: 10 }],
        staticSummary: `rehome off ${from.join(', ')}${to.length ? ` onto ${to.join(', ')}` : ''}`,
      });
      if (values.detach) {
        out.result({ workflowId: handle.workflowId, from, to }, `rehome started: ${handle.workflowId}`);
        return 0;
      }
      out.info(`rehoming off ${from.join(', ')} (${handle.workflowId})…`);
      const p = await handle.result();
      out.result({ workflowId: handle.workflowId, from, to, ...p }, describeRehome(from, p));
      return p.remaining === 0 && p.failed === 0 && p.incomplete.length === 0 ? 0 : 1;
    });
  },
);
