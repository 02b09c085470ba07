/** Restore stage: fetch, verify and write a dataset (any worker, or the target host's queue). */
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import type { RestoreRequest, SharedQueueActivities } from '../../shared/activities.js';
import type { StageContext } from '../context.js';
import { boundary, heartbeater } from '../temporal.js';
import { restoreDataset } from './restore.js';

/**
 * Where this activity notes that it has started writing into its target: outside the target, in
 * the worker's data dir, keyed by the workflow run and activity id (the same for every attempt).
 * A run again of the same activity (a retry after a crash, or after a result that never reached
 * the server) finds its own earlier output in the target and writes over it, instead of refusing
 * a target that is "not empty" with TargetNotEmptyError; any other restore into it is still refused.
 */
function claimOf(ctx: StageContext, r: RestoreRequest): { file: string; text: string } {
  const info = Context.current().info;
  const who = `${info.workflowExecution?.workflowId ?? ''}/${info.workflowExecution?.runId ?? ''}/${info.activityId}`;
  const text = JSON.stringify({ who, manifestCid: r.manifestCid, target: path.resolve(r.target) });
  const name = crypto.createHash('sha256').update(text).digest('hex').slice(0, 32);
  return { file: path.join(ctx.config.dataDir, 'cache', 'restore-claims', `${name}.json`), text };
}

/** True when the target has nothing in it but restore work directories (as restoreDataset sees it). */
async function targetEmpty(target: string): Promise<boolean> {
  const names = await fsp.readdir(target).catch(() => [] as string[]);
  return names.every((n) => n.startsWith('.provenant-restore-'));
}

export function createRestoreActivities(ctx: StageContext) {
  const { providers } = ctx;
  const shared = {
    provenantRestore: boundary(async (r) => {
      const list = r.providerIds?.length ? r.providerIds.map((id) => providers.get(id)) : providers.all();
      const beat = heartbeater();
      const claim = claimOf(ctx, r);
      const ours = (await fsp.readFile(claim.file, 'utf8').catch(() => undefined)) === claim.text;
      if (!ours && (r.force || (await targetEmpty(path.resolve(r.target))))) {
        await fsp.mkdir(path.dirname(claim.file), { recursive: true });
        await fsp.writeFile(claim.file, claim.text);
      }
      const started = performance.now();
      const summary = await restoreDataset({
        manifestCid: r.manifestCid,
        target: r.target,
        force: r.force || ours,
        ...(r.paths?.length ? { paths: r.paths } : {}),
        providers: list,
        signal: Context.current().cancellationSignal,
        onProgress: (p) => beat(p),
        encryption: ctx.config.encryption,
      });
      ctx.metrics.retrieved((performance.now() - started) / 1000, { partial: !!r.paths?.length });
      return summary;
    }),
  } satisfies Pick<SharedQueueActivities, 'provenantRestore'>;
  // The same activity on the host queue: a restore into a directory of one host runs there.
  return { shared, host: shared };
}
