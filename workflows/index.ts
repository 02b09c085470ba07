/** Every Provenant workflow, from one module: `export * from 'provenant/workflows'` in yours. */
export { archiveDataset, archiveProgressQuery } from './archive.js';
export { restoreDataset } from './restore.js';
export { replicateShards } from './replicate.js';
export { packUnitsPage } from './units.js';
export {
  stewardDataset,
  stewardStatusQuery,
  verifyNowUpdate,
  evacuateUpdate,
  addReplicasSignal,
  retireSignal,
  sweepSignal,
  stewardWorkflowId,
} from './steward.js';
export { fleetSweep } from './fleet.js';
export { rehomeProviders, rehomeProgressQuery } from './rehome.js';
export {
  archiveWorkflowId,
  rehomeWorkflowId,
  replicateWorkflowId,
  restoreWorkflowId,
  verifyNowWithOptionsUpdate,
} from '../shared/api.js';
export type * from '../shared/types.js';
