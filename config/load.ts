/**
 * Load configuration: defaults (schema) < Temporal TOML profile (temporal.*) < file (JSON or YAML)
 * < environment < overrides (CLI flags).
 */
import fs from 'node:fs';
import { loadClientConfigProfile, type ClientConfigProfile } from '@temporalio/envconfig';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigSchema, type Config, type ConfigInput } from './schema.js';
import { ConfigError } from '../shared/errors.js';

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
  if (env.TEMPORAL_PROFILE) temporal.profile = env.TEMPORAL_PROFILE;
  if (env.TEMPORAL_CONFIG_FILE) temporal.configFile = env.TEMPORAL_CONFIG_FILE;
  // TLS files and flags, the names the Temporal CLI and SDKs read; keys given as data
  // (TEMPORAL_TLS_*_DATA) and the API key stay out of the config (workers/connection.ts reads them).
  const tls: Record<string, unknown> = {};
  const on = envBool(env.TEMPORAL_TLS);
  if (on !== undefined) tls.enabled = on;
  if (env.TEMPORAL_TLS_SERVER_NAME) tls.serverName = env.TEMPORAL_TLS_SERVER_NAME;
  if (env.TEMPORAL_TLS_SERVER_CA_CERT_PATH) tls.serverCaCertFile = env.TEMPORAL_TLS_SERVER_CA_CERT_PATH;
  if (env.TEMPORAL_TLS_CLIENT_CERT_PATH) tls.clientCertFile = env.TEMPORAL_TLS_CLIENT_CERT_PATH;
  if (env.TEMPORAL_TLS_CLIENT_KEY_PATH) tls.clientKeyFile = env.TEMPORAL_TLS_CLIENT_KEY_PATH;
  if (Object.keys(tls).length) temporal.tls = tls;
  if (env.PROVENANT_TASK_QUEUE) temporal.taskQueue = env.PROVENANT_TASK_QUEUE;
  if (env.PROVENANT_EMBEDDED) temporal.embedded = env.PROVENANT_EMBEDDED;
  if (env.PROVENANT_HEARTBEAT_TIMEOUT) temporal.heartbeatTimeout = env.PROVENANT_HEARTBEAT_TIMEOUT;
  const out: Record<string, unknown> = { temporal };
  if (env.PROVENANT_DATA_DIR) out.dataDir = env.PROVENANT_DATA_DIR;
  if (env.PROVENANT_STAGING_DIR) out.stagingDir = env.PROVENANT_STAGING_DIR;
  if (env.PROVENANT_SIGNING_KEY_FILE) out.signing = { keyFile: env.PROVENANT_SIGNING_KEY_FILE };
  if (env.PROVENANT_ENCRYPTION_KEY_FILE) out.encryption = { keyFile: env.PROVENANT_ENCRYPTION_KEY_FILE };
  return out;
}

/** TEMPORAL_TLS's reading in the Temporal SDKs: '1' or 'true' is on, anything else set is off. */
function envBool(v: string | undefined): boolean | undefined {
  return v === undefined || v === '' ? undefined : v === '1' || v === 'true';
}

/**
 * The non-secret settings of a Temporal TOML profile (address, namespace, TLS files and server
 * name), as a layer under the config file. The profile is `temporal.profile` (TEMPORAL_PROFILE),
 * else 'default' when the file has one; the file is `temporal.configFile` (TEMPORAL_CONFIG_FILE),
 * else the Temporal default (~/.config/temporalio/temporal.toml), none when it does not exist.
 * Its API key and inline certificate data are read when connecting, never put in the config.
 */
function tomlProfileLayer(temporal: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const profileName = typeof temporal.profile === 'string' ? temporal.profile : undefined;
  const file = typeof temporal.configFile === 'string' ? temporal.configFile : undefined;
  if (file && !fs.existsSync(file)) throw new ConfigError(`cannot read Temporal config file ${file}: not found`, []);
  let p: ClientConfigProfile;
  try {
    p = loadTemporalProfile({ profile: profileName, configFile: file }, env);
  } catch (cause) {
    const where = file ?? env.TEMPORAL_CONFIG_FILE ?? 'the Temporal config file';
    throw new ConfigError(`cannot load Temporal profile from ${where}: ${(cause as Error).message}`, [], { cause });
  }
  const out: Record<string, unknown> = {};
  if (p.address) out.address = p.address;
  if (p.namespace) out.namespace = p.namespace;
  if (p.tls) {
    const tls: Record<string, unknown> = {};
    if (p.tls.disabled !== undefined) tls.enabled = !p.tls.disabled;
    if (p.tls.serverName) tls.serverName = p.tls.serverName;
    if (p.tls.serverCACert && 'path' in p.tls.serverCACert) tls.serverCaCertFile = p.tls.serverCACert.path;
    if (p.tls.clientCert && 'path' in p.tls.clientCert) tls.clientCertFile = p.tls.clientCert.path;
    if (p.tls.clientKey && 'path' in p.tls.clientKey) tls.clientKeyFile = p.tls.clientKey.path;
    out.tls = tls;
  }
  return Object.keys(out).length ? { temporal: out } : {};
}

/**
 * A Temporal TOML profile as @temporalio/envconfig reads it, from the file only (`withEnv`:
 * TEMPORAL_ADDRESS, TEMPORAL_API_KEY, TEMPORAL_TLS_* applied over it, as the SDKs do). A missing
 * file gives an empty profile unless a profile was named.
 */
export function loadTemporalProfile(
  t: { profile?: string; configFile?: string },
  env: NodeJS.ProcessEnv = process.env,
  o: { withEnv?: boolean } = {},
): ClientConfigProfile {
  const vars = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
  return loadClientConfigProfile({
    profile: t.profile,
    configSource: t.configFile ? { path: t.configFile } : undefined,
    overrideEnvVars: vars,
    disableEnv: !o.withEnv,
  });
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
  throw new ConfigError(`invalid ${source}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, issues);
}

export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.PROVENANT_CONFIG;
  let merged: Record<string, unknown> = {};
  if (file) merged = deepMerge(merged, readFileLayer(file));
  merged = deepMerge(merged, envLayer(env));
  if (opts.overrides) merged = deepMerge(merged, opts.overrides);
  merged = deepMerge(tomlProfileLayer((merged.temporal ?? {}) as Record<string, unknown>, env), merged);
  return parseConfig(merged, file ? `config (${file} + environment)` : 'config (environment)');
}

export type { Config };
export { z };
