/** Load configuration: defaults (schema) < file (JSON or YAML) < environment. */
import fs from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigSchema, type Config, type ConfigInput } from './schema.js';
import { ConfigError } from '../activities/errors.js';

export interface LoadOptions {
  /** Path of a JSON or YAML file; defaults to $PROVENANT_CONFIG when set. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Values that win over file and environment (CLI flags). */
  overrides?: Record<string, unknown>;
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined) continue;
    const prev = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object' && !Array.isArray(prev)
        ? deepMerge(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

function envLayer(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const temporal: Record<string, unknown> = {};
  if (env.TEMPORAL_ADDRESS) temporal.address = env.TEMPORAL_ADDRESS;
  if (env.TEMPORAL_NAMESPACE) temporal.namespace = env.TEMPORAL_NAMESPACE;
  if (env.PROVENANT_TASK_QUEUE) temporal.taskQueue = env.PROVENANT_TASK_QUEUE;
  if (env.PROVENANT_EMBEDDED) temporal.embedded = env.PROVENANT_EMBEDDED;
  if (env.PROVENANT_HEARTBEAT_TIMEOUT) temporal.heartbeatTimeout = env.PROVENANT_HEARTBEAT_TIMEOUT;
  const out: Record<string, unknown> = { temporal };
  if (env.PROVENANT_DATA_DIR) out.dataDir = env.PROVENANT_DATA_DIR;
  if (env.PROVENANT_STAGING_DIR) out.stagingDir = env.PROVENANT_STAGING_DIR;
  return out;
}

function readFileLayer(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ConfigError(`cannot read config file ${file}: ${(cause as Error).message}`, [], { cause });
  }
  try {
    const parsed = file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
    if (parsed == null) return {};
    if (typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new Error('top level must be a mapping');
    }
    return parsed as Record<string, unknown>;
  } catch (cause) {
    throw new ConfigError(`cannot parse config file ${file}: ${(cause as Error).message}`, [], { cause });
  }
}

/** Parse a config object; every bad field is reported in one ConfigError. */
export function parseConfig(input: ConfigInput | Record<string, unknown>, source = 'config'): Config {
  const r = ConfigSchema.safeParse(input);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(root)', message: i.message }));
  throw new ConfigError(
    `invalid ${source}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
    issues,
  );
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.PROVENANT_CONFIG;
  let merged: Record<string, unknown> = {};
  if (file) merged = deepMerge(merged, readFileLayer(file));
  merged = deepMerge(merged, envLayer(env));
  if (opts.overrides) merged = deepMerge(merged, opts.overrides);
  return parseConfig(merged, file ? `config (${file} + environment)` : 'config (environment)');
}

export type { Config };
export { z };
