/** The shared layer: wire types, the activity contract, workflow names, and the error table. */
export * from './activities.js';
export * from './api.js';
export * from './errors.js';
export * from './source.js';
export type * from './types.js';
