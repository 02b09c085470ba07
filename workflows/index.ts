/** Every Provenant workflow, from one module: `export * from 'provenant/workflows'` in yours. */
export { archiveDataset, archiveProgressQuery } from './archive.js';
export { restoreDataset } from './restore.js';
export { stewardDataset, stewardStatusQuery, verifyNowUpdate, addReplicasSignal, retireSignal, sweepSignal, stewardWorkflowId } from './steward.js';
export { fleetSweep } from './fleet.js';
export type * from './types.js';
