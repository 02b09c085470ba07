/** Client-side helpers: build a workflow's input from config (parse at the edge) and start it. */
import path from 'node:path';
import { Client, WorkflowExecutionAlreadyStartedError, type WorkflowHandle } from '@temporalio/client';
import { ArchiveRequestSchema, providerRefs, type Config } from '../config/schema.js';
import { ConfigError, UnknownProviderError } from '../activities/errors.js';
import { archiveDataset, restoreDataset } from '../workflows/index.js';
import type { ArchiveInput, PlacementPolicyInput, RestoreInput, StewardSettings } from '../workflows/types.js';
import crypto from 'node:crypto';
import { msToNumber } from '@temporalio/common/lib/time.js';

export const archiveWorkflowId = (datasetId: string) => `provenant-archive-${datasetId}`;

export function stewardSettings(config: Config): StewardSettings {
  const ms = (field: string, v: string) => {
    try {
      return msToNumber(v as never);
    } catch {
      throw new ConfigError(`invalid config: steward.${field}: not a duration: ${JSON.stringify(v)}`, [{ path: `steward.${field}`, message: 'not a duration' }]);
    }
  };
  const st = config.steward;
  return {
    verifyEveryMs: ms('verifyEvery', st.verifyEvery), renewWindowMs: ms('renewWindow', st.renewWindow),
    unreachableGraceMs: ms('unreachableGrace', st.unreachableGrace), detectionProbability: st.detectionProbability,
    lossFraction: st.lossFraction, maxRoundsPerRun: st.maxRoundsPerRun, searchAttributes: st.searchAttributes,
  };
}

export function placementPolicy(config: Config): PlacementPolicyInput {
  const { cooldown, ...rest } = config.replication.policy;
  let cooldownMs: number;
  try {
    cooldownMs = msToNumber(cooldown as never);
  } catch {
    throw new ConfigError(`invalid config: replication.policy.cooldown: not a duration: ${JSON.stringify(cooldown)}`, [{ path: 'replication.policy.cooldown', message: 'not a duration' }]);
  }
  const out: PlacementPolicyInput = { preferEnergy: rest.preferEnergy, cooldownMs };
  for (const k of ['maxPerOrg', 'maxPerCity', 'maxPerCountry', 'maxPerContinent', 'maxPerRegion', 'maxPricePerTiBMonth', 'minEnergyScore'] as const) {
    if (rest[k] !== undefined) out[k] = rest[k];
  }
  return out;
}

export interface ArchiveArgs {
  /** Start no steward for this dataset. */
  noSteward?: boolean;
  dir: string;
  datasetId?: string;
  copies?: number;
  meta?: Record<string, string>;
  providers?: string[];
  createdAt?: string;
  workflowId?: string;
}

export function defaultDatasetId(dir: string): string {
  const abs = path.resolve(dir);
  const base = path.basename(abs).replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]+/, '') || 'dataset';
  return `${base.slice(0, 100)}-${crypto.createHash('sha256').update(abs).digest('hex').slice(0, 8)}`;
}

export function archiveInput(config: Config, a: ArchiveArgs): ArchiveInput {
  let refs = providerRefs(config);
  if (a.providers?.length) {
    const byId = new Map(refs.map((r) => [r.id, r]));
    refs = a.providers.map((id) => {
      const r = byId.get(id);
      if (!r) throw new UnknownProviderError(`unknown provider '${id}' (configured: ${[...byId.keys()].join(', ')})`);
      return r;
    });
  }
  const parsed = ArchiveRequestSchema.safeParse({
    datasetId: a.datasetId ?? defaultDatasetId(a.dir),
    source: { kind: 'local', path: path.resolve(a.dir) },
    copies: a.copies ?? config.replication.copies,
    meta: a.meta ?? {},
    shardBytes: config.pack.shardBytes,
    providers: refs,
  });
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
    throw new ConfigError(`invalid archive request: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, issues);
  }
  return {
    ...parsed.data,
    heartbeatTimeout: config.temporal.heartbeatTimeout,
    putAttempts: config.replication.putAttempts,
    ...(a.createdAt ? { createdAt: a.createdAt } : {}),
    ...(a.noSteward ? {} : { steward: stewardSettings(config) }),
    policy: placementPolicy(config),
  };
}

/** Start (or attach to) the archive of a dataset: the same dataset id is never archived twice. */
export async function startArchive(client: Client, config: Config, a: ArchiveArgs): Promise<{ handle: WorkflowHandle<typeof archiveDataset>; existing: boolean }> {
  const input = archiveInput(config, a);
  const workflowId = a.workflowId ?? archiveWorkflowId(input.datasetId);
  try {
    const handle = await client.workflow.start(archiveDataset, {
      taskQueue: config.temporal.taskQueue,
      workflowId,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      searchAttributes: undefined,
    });
    return { handle, existing: false };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      return { handle: client.workflow.getHandle(workflowId), existing: true };
    }
    throw err;
  }
}

export async function startRestore(client: Client, config: Config, r: Omit<RestoreInput, 'heartbeatTimeout'> & { workflowId?: string }) {
  return client.workflow.start(restoreDataset, {
    taskQueue: config.temporal.taskQueue,
    workflowId: r.workflowId ?? `provenant-restore-${r.manifestCid.slice(-20)}-${Date.now().toString(36)}`,
    args: [{ ...r, target: path.resolve(r.target), heartbeatTimeout: config.temporal.heartbeatTimeout }],
  });
}
