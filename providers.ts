/**
 * `import … from 'provenant/providers'`: the StorageProvider contract (what the plugin takes), the
 * registry that builds providers from config, and the provider classes.
 */
export type * from './activities/providers/provider.js';
export * from './activities/providers/registry.js';
export { LocalProvider } from './activities/providers/local.js';
export { S3Provider } from './activities/providers/s3.js';
export { KuboProvider } from './activities/providers/kubo.js';
export { SynapseProvider } from './activities/providers/synapse.js';
export { LotusProvider } from './activities/providers/lotus.js';
