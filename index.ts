/**
 * `import … from 'provenant'`: what client code and your own worker need. The plugin, the shared
 * layer (wire types, the workflows' signal/query/update definitions and ids, the error classes),
 * and the config loader with its schema. Workflows: 'provenant/workflows'; providers: 'provenant/providers'.
 */
export { ProvenantPlugin, workflowsPath, type ProvenantPluginOptions } from './workers/plugin.js';
export * from './shared/index.js';
export { loadConfig, parseConfig, type LoadOptions } from './config/load.js';
export { ConfigSchema, ProviderSchema, type Config, type ConfigInput, type ProviderConfig } from './config/schema.js';
