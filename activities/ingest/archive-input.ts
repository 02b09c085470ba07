/**
 * The archive workflow's input, built from config and a request (parse at the edge): by the CLI
 * and the TypeScript client, and by the worker itself for a request that names only the dataset
 * and its source (`provenantArchiveInput`; what a client in another language sends).
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { msToNumber } from '@temporalio/common/lib/time.js';
import {
  ArchiveRequestSchema,
  DEFAULT_CHUNK_BYTES,
  providerRefs,
  type ArchiveSourceInput,
  type Config,
} from '../../config/schema.js';
import { ConfigError, UnknownProviderError, UnsupportedSourceError } from '../errors.js';
import { httpTargets } from './http.js';
import type { ArchiveInput, PlacementPolicyInput, StewardSettings } from '../../shared/types.js';

export function stewardSettings(config: Config): StewardSettings {
  const ms = (field: string, v: string) => {
    try {
      return msToNumber(v as never);
    } catch {
      throw new ConfigError(`invalid config: steward.${field}: not a duration: ${JSON.stringify(v)}`, [
        { path: `steward.${field}`, message: 'not a duration' },
      ]);
    }
  };
  const st = config.steward;
  return {
    verifyEveryMs: ms('verifyEvery', st.verifyEvery),
    renewWindowMs: ms('renewWindow', st.renewWindow),
    unreachableGraceMs: ms('unreachableGrace', st.unreachableGrace),
    detectionProbability: st.detectionProbability,
    lossFraction: st.lossFraction,
    maxRoundsPerRun: st.maxRoundsPerRun,
    searchAttributes: st.searchAttributes,
    pageReplicas: st.pageReplicas,
    sampleShards: st.sampleShards,
    heartbeatTimeout: config.temporal.heartbeatTimeout,
  };
}

export function placementPolicy(config: Config): PlacementPolicyInput {
  const { cooldown, ...rest } = config.replication.policy;
  let cooldownMs: number;
  try {
    cooldownMs = msToNumber(cooldown as never);
  } catch {
    throw new ConfigError(`invalid config: replication.policy.cooldown: not a duration: ${JSON.stringify(cooldown)}`, [
      { path: 'replication.policy.cooldown', message: 'not a duration' },
    ]);
  }
  const out: PlacementPolicyInput = { preferEnergy: rest.preferEnergy, cooldownMs };
  for (const k of [
    'maxPerOrg',
    'maxPerCity',
    'maxPerCountry',
    'maxPerContinent',
    'maxPerRegion',
    'maxPricePerTiBMonth',
    'minEnergyScore',
  ] as const) {
    if (rest[k] !== undefined) out[k] = rest[k];
  }
  return out;
}

export interface ArchiveArgs {
  /** Start no steward for this dataset. */
  noSteward?: boolean;
  /** A local directory to archive; or give `source` (see `sourceFromArgs`). */
  dir?: string;
  source?: ArchiveSourceInput;
  datasetId?: string;
  copies?: number;
  meta?: Record<string, string>;
  /** Manifest CIDs of parent datasets or base models (lineage). */
  derivedFrom?: string[];
  providers?: string[];
  createdAt?: string;
  workflowId?: string;
}

export function defaultDatasetId(dir: string): string {
  const abs = path.resolve(dir);
  const base =
    path
      .basename(abs)
      .replace(/[^A-Za-z0-9._-]/g, '_')
      .replace(/^[^A-Za-z0-9]+/, '') || 'dataset';
  return `${base.slice(0, 100)}-${crypto.createHash('sha256').update(abs).digest('hex').slice(0, 8)}`;
}

/** Flags of `provenant archive` for remote sources; each falls back to an environment variable. */
export interface SourceFlags {
  s3Endpoint?: string;
  s3Region?: string;
  s3PathStyle?: boolean;
  s3AccessKeyIdEnv?: string;
  s3SecretAccessKeyEnv?: string;
  httpAuthorizationEnv?: string;
}

const S3_URI = /^s3:\/\/([^/]*)\/?(.*)$/is;
const HTTP_ARG = /^(?:([^=]+)=)?(https?:\/\/.+)$/is;
/** `scheme://…`, or `path=scheme://…` (RFC 3986 scheme syntax). */
const URL_ARG = /^(?:[^=]+=)?([A-Za-z][A-Za-z0-9+.-]*):\/\//s;
const SUPPORTED_SCHEMES = ['s3', 'http', 'https', 'file'];

/** An argument in `scheme://` form whose scheme is not archived fails here, never taken as a local path. */
function checkScheme(arg: string): void {
  const scheme = URL_ARG.exec(arg)?.[1]?.toLowerCase();
  if (scheme !== undefined && !SUPPORTED_SCHEMES.includes(scheme))
    throw new UnsupportedSourceError(
      `unsupported source scheme '${scheme}://' in ${JSON.stringify(arg)}: supported are a directory, ${SUPPORTED_SCHEMES.map((s) => `${s}://`).join(', ')}`,
    );
}

/** `file:///abs/path` (or `file://localhost/…`) → the local path; a file URL naming another host is refused. */
function localPath(arg: string): string {
  if (!/^file:\/\//i.test(arg)) return path.resolve(arg);
  try {
    return fileURLToPath(new URL(arg));
  } catch (err) {
    throw new UnsupportedSourceError(
      `unsupported file URL ${JSON.stringify(arg)}: only file:///absolute/path on this host (${(err as Error).message})`,
      { cause: err },
    );
  }
}

/**
 * The source `provenant archive <arg>...` names: a directory (or `file:///abs/path`);
 * `s3://bucket/prefix` (the prefix is taken as a directory: a '/' is added); or one or more
 * http(s) URLs, each optionally `path=URL` to choose its file's path. S3 settings come from `flags`, else from PROVENANT_S3_ENDPOINT,
 * PROVENANT_S3_REGION, PROVENANT_S3_PATH_STYLE (1/true), PROVENANT_S3_ACCESS_KEY_ID_ENV and
 * PROVENANT_S3_SECRET_ACCESS_KEY_ENV (the last two name the variables holding the credentials);
 * an Authorization header for URLs from the variable PROVENANT_HTTP_AUTHORIZATION_ENV names.
 * Any other `scheme://` is an UnsupportedSourceError, before anything is written or started.
 */
export function sourceFromArgs(
  args: string[],
  flags: SourceFlags = {},
  env: NodeJS.ProcessEnv = process.env,
): ArchiveSourceInput {
  const bad = (message: string) =>
    new ConfigError(`invalid archive request: source: ${message}`, [{ path: 'source', message }]);
  if (args.length === 0) throw bad('a directory, an s3://bucket/prefix or http(s) URLs');
  args.forEach(checkScheme);
  const s3 = S3_URI.exec(args[0]!);
  if (s3) {
    if (args.length > 1) throw bad('one s3://bucket/prefix at a time');
    const [, bucket, rest] = s3;
    const opt = <T>(v: T | undefined, name: string) => v ?? (env[name] || undefined);
    const pathStyle = flags.s3PathStyle ?? /^(1|true|yes)$/i.test(env.PROVENANT_S3_PATH_STYLE ?? '');
    return {
      kind: 's3',
      bucket: bucket!,
      prefix: rest && !rest.endsWith('/') ? `${rest}/` : rest!,
      endpoint: opt(flags.s3Endpoint, 'PROVENANT_S3_ENDPOINT'),
      region: opt(flags.s3Region, 'PROVENANT_S3_REGION'),
      forcePathStyle: pathStyle,
      accessKeyIdEnv: opt(flags.s3AccessKeyIdEnv, 'PROVENANT_S3_ACCESS_KEY_ID_ENV'),
      secretAccessKeyEnv: opt(flags.s3SecretAccessKeyEnv, 'PROVENANT_S3_SECRET_ACCESS_KEY_ENV'),
    };
  }
  if (args.some((a) => HTTP_ARG.test(a))) {
    const urls = args.map((a) => {
      const m = HTTP_ARG.exec(a);
      if (!m) throw bad(`not an http(s) URL: ${JSON.stringify(a)} (URLs and directories do not mix)`);
      return m[1] ? { url: m[2]!, path: m[1] } : m[2]!;
    });
    const authorizationEnv = flags.httpAuthorizationEnv ?? (env.PROVENANT_HTTP_AUTHORIZATION_ENV || undefined);
    return { kind: 'http', urls, ...(authorizationEnv ? { authorizationEnv } : {}) };
  }
  if (args.length > 1) throw bad('one directory at a time');
  return { kind: 'local', path: localPath(args[0]!) };
}

/** The default dataset id of a remote source: its last path segment (or bucket) and a hash of its URI. */
function remoteDatasetId(source: ArchiveSourceInput): string {
  let uri: string;
  let base: string;
  if (source.kind === 's3') {
    uri = `s3://${source.bucket}/${source.prefix ?? ''}`;
    base = (source.prefix ?? '').split('/').filter(Boolean).pop() ?? source.bucket;
  } else if (source.kind === 'http') {
    const urls = source.urls.map((u) => (typeof u === 'string' ? u : u.url));
    uri = urls.join(' ');
    base =
      urls.length === 1
        ? (urls[0]!.split(/[?#]/)[0]!.split('/').filter(Boolean).pop() ?? '')
        : (urls[0]!.split('/')[2] ?? '');
  } else {
    return defaultDatasetId(source.path);
  }
  const clean = base.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]+/, '') || 'dataset';
  return `${clean.slice(0, 100)}-${crypto.createHash('sha256').update(uri).digest('hex').slice(0, 8)}`;
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
  const source: ArchiveSourceInput | undefined =
    a.source ?? (a.dir !== undefined ? { kind: 'local', path: a.dir } : undefined);
  if (!source)
    throw new ConfigError('invalid archive request: source: a directory or a remote source is required', [
      { path: 'source', message: 'required' },
    ]);
  const parsed = ArchiveRequestSchema.safeParse({
    datasetId: a.datasetId ?? (source.kind === 'local' ? defaultDatasetId(source.path) : remoteDatasetId(source)),
    source: source.kind === 'local' ? { ...source, path: path.resolve(source.path) } : source,
    copies: a.copies ?? config.replication.copies,
    meta: a.meta ?? {},
    ...(a.derivedFrom?.length ? { derivedFrom: a.derivedFrom } : {}),
    shardBytes: config.pack.shardBytes,
    ...(config.pack.chunkBytes !== DEFAULT_CHUNK_BYTES ? { chunkBytes: config.pack.chunkBytes } : {}),
    ...(config.pack.unitShards ? { unitShards: config.pack.unitShards } : {}),
    providers: refs,
  });
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
    throw new ConfigError(
      `invalid archive request: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      issues,
    );
  }
  if (parsed.data.source.kind === 'http') httpTargets(parsed.data.source); // a URL with no file name fails here, before any start
  return {
    ...parsed.data,
    heartbeatTimeout: config.temporal.heartbeatTimeout,
    putAttempts: config.replication.putAttempts,
    ...(a.createdAt ? { createdAt: a.createdAt } : {}),
    ...(a.noSteward ? {} : { steward: stewardSettings(config) }),
    policy: placementPolicy(config),
  };
}
