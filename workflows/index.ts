/** Every Provenant workflow, from one module: `export * from 'provenant/workflows'` in yours. */
export { archiveDataset, archiveProgressQuery } from './archive.js';
export { restoreDataset } from './restore.js';
export { stewardDataset, stewardStatusQuery, verifyNowUpdate, addReplicasSignal, retireSignal, stewardWorkflowId } from './steward.js';
export type * from './types.js';
