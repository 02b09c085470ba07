/**
 * Every side effect Provenant performs, as Temporal activities, composed from the stages (one
 * folder and one factory each). Names are prefixed (`provenant…`) so they sit beside a user's
 * own activities on a shared worker. Two sets: `shared` runs on any worker of the task queue,
 * `host` only on this host's own queue (it touches staged files); each is registered only on its
 * own queue (workers/plugin.ts).
 */
import type { HostQueueActivities, SharedQueueActivities } from '../shared/activities.js';
import { createStageContext, type ActivityDeps } from './context.js';
import { createIngestActivities } from './ingest/activities.js';
import { createLineageActivities } from './lineage/lineage.js';
import { createPackActivities } from './pack/activities.js';
import { createReplicateActivities } from './replicate/activities.js';
import { createRestoreActivities } from './restore/activities.js';
import { createStewardActivities } from './steward/activities.js';
import { createRehomeActivities } from './steward/rehome.js';

export { hostQueueName, type ActivityDeps } from './context.js';
export type { HostQueueActivities, ProvenantActivities, SharedQueueActivities } from '../shared/activities.js';

export interface ActivitySets {
  shared: SharedQueueActivities;
  host: HostQueueActivities;
  hostQueue: string;
  /** Release the provider clients (S3 sockets and the like). */
  close(): Promise<void>;
}

export function createActivities(deps: ActivityDeps): ActivitySets {
  const ctx = createStageContext(deps);
  const ingest = createIngestActivities(ctx);
  const pack = createPackActivities(ctx);
  const replicate = createReplicateActivities(ctx);
  const steward = createStewardActivities(ctx);
  const restore = createRestoreActivities(ctx);
  const rehome = createRehomeActivities(ctx);
  const lineage = createLineageActivities(ctx);
  return {
    shared: {
      ...ingest.shared,
      ...pack.shared,
      ...replicate.shared,
      ...steward.shared,
      ...rehome.shared,
      ...restore.shared,
      ...lineage.shared,
    },
    host: { ...ingest.host, ...pack.host, ...replicate.host, ...steward.host, ...restore.host },
    hostQueue: ctx.hostQueue,
    close: () => ctx.providers.close(),
  };
}
