/**
 * The one place every Provenant option is defined. Defaults live here and nowhere else.
 * Parse at the edge (CLI, worker, plugin constructor); workflows receive parsed values.
 */
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

/** Filecoin Onchain Cloud's piece limit: 1,065,353,216 bytes incl. CAR overhead. */
export const FOC_MAX_PIECE_BYTES = 1_065_353_216;
export const MAX_SHARD_BYTES = 32 * 1024 ** 3;
/** A shard must hold at least one 1 MiB leaf plus its CAR framing. */
export const MIN_SHARD_BYTES = 2 * 1024 * 1024;

export function defaultDataDir(): string {
  const xdg = process.env.XDG_DATA_HOME;
  return path.join(xdg && xdg.length > 0 ? xdg : path.join(os.homedir(), '.local', 'share'), 'provenant');
}

const ProviderId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'provider id: lowercase letters, digits, . _ - (max 63)');

/** Placement attributes shared by every provider kind (used by the placement policy). */
const PlacementAttrs = {
  id: ProviderId,
  /** Where and who: used by the placement policy's caps (Spade-style max per org/city/country/continent). */
  region: z.string().optional(),
  org: z.string().optional(),
  city: z.string().optional(),
  country: z.string().optional(),
  continent: z.string().optional(),
  /** Price in USD per TiB per month, for the policy's price ceiling. */
  pricePerTiBMonth: z.number().min(0).optional(),
  /** Renewable-energy score 0–100, as a preference or a minimum. */
  energyScore: z.number().min(0).max(100).optional(),
  /** Largest piece (CAR) the provider accepts, when it has a limit. */
  maxPieceBytes: z.number().int().positive().optional(),
};

export const LocalProviderSchema = z.object({
  kind: z.literal('local'),
  ...PlacementAttrs,
  /** Directory that stands in for an independent storage provider. */
  path: z.string().min(1),
  /** How long a stored piece is kept unless renewed (a Temporal duration, e.g. '540 days'); forever when unset. */
  retention: z.string().optional(),
});

/** The name of an environment variable (never its value: secrets stay out of config). */
const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'the name of an environment variable, not its value');

/**
 * An S3 bucket (AWS, MinIO, any S3-compatible store). Strict: a secret written into the config
 * (`secretAccessKey: …`) is refused rather than silently dropped; name its variable instead.
 */
export const S3ProviderSchema = z
  .strictObject({
    kind: z.literal('s3'),
    ...PlacementAttrs,
    /** S3-compatible endpoint (e.g. http://127.0.0.1:9000 for MinIO); AWS when omitted. `region` signs requests. */
    endpoint: z.url({ protocol: /^https?$/ }).optional(),
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'bucket: 3-63 lowercase letters, digits, . and -'),
    /** Key prefix inside the bucket, e.g. 'provenant/'. */
    prefix: z.string().regex(/^([^/].*\/)?$/, "prefix: empty or ending in '/', not starting with '/'").default(''),
    /** Path-style addressing (`endpoint/bucket/key`), as MinIO needs. */
    forcePathStyle: z.boolean().default(false),
    /** Environment variables holding the credentials; the AWS SDK's default chain when omitted. */
    accessKeyIdEnv: EnvName.optional(),
    secretAccessKeyEnv: EnvName.optional(),
    sessionTokenEnv: EnvName.optional(),
    /** Multipart part size (raised automatically to stay within 10,000 parts). */
    partBytes: z.number().int().min(5 * 1024 * 1024).max(5 * 1024 ** 3).default(16 * 1024 * 1024),
    connectTimeoutMs: z.number().int().min(1).default(10_000),
  })
  .refine((c) => !!c.accessKeyIdEnv === !!c.secretAccessKeyEnv, {
    message: 'accessKeyIdEnv and secretAccessKeyEnv go together',
    path: ['secretAccessKeyEnv'],
  });
export type S3ProviderConfig = z.infer<typeof S3ProviderSchema>;

/** A Kubo (go-ipfs) node, reached through its RPC API. */
export const KuboProviderSchema = z.object({
  kind: z.literal('kubo'),
  ...PlacementAttrs,
  /** The RPC API (not the gateway), e.g. http://127.0.0.1:5001. */
  apiUrl: z.url({ protocol: /^https?$/ }),
  /** Environment variable holding the `Authorization` header value when the API requires one. */
  authorizationEnv: EnvName.optional(),
  /** MFS directory that holds Provenant's index (piece CID / root CID → file CID). */
  mfsDir: z.string().regex(/^\/[^\s]*[^/\s]$/, 'mfsDir: an absolute MFS path without a trailing /').default('/provenant'),
});
export type KuboProviderConfig = z.infer<typeof KuboProviderSchema>;

export const ProviderSchema = z.discriminatedUnion('kind', [LocalProviderSchema, S3ProviderSchema, KuboProviderSchema]);
export type ProviderConfig = z.infer<typeof ProviderSchema>;

export const TemporalSchema = z.object({
  address: z.string().min(1).default('localhost:7233'),
  namespace: z.string().min(1).default('default'),
  taskQueue: z.string().min(1).default('provenant'),
  /** Start an embedded dev server when nothing answers at `address` (CLI only). */
  embedded: z.enum(['auto', 'always', 'never']).default('auto'),
  /** How long a pack or restore may go without a heartbeat before Temporal retries it elsewhere. */
  heartbeatTimeout: z.string().min(1).default('1 minute'),
});

export const PackSchema = z.object({
  /** Target CAR shard size, CAR framing included. */
  shardBytes: z.number().int().min(MIN_SHARD_BYTES).max(MAX_SHARD_BYTES).default(FOC_MAX_PIECE_BYTES),
});

export const PlacementPolicySchema = z.object({
  /** At most this many copies of a piece per organisation / city / country / continent / region. */
  maxPerOrg: z.number().int().min(1).optional(),
  maxPerCity: z.number().int().min(1).optional(),
  maxPerCountry: z.number().int().min(1).optional(),
  maxPerContinent: z.number().int().min(1).optional(),
  maxPerRegion: z.number().int().min(1).optional(),
  /** Providers above this price (USD per TiB-month) are never used; providers without a price are. */
  maxPricePerTiBMonth: z.number().min(0).optional(),
  /** Providers below this energy score (or without one) are never used. */
  minEnergyScore: z.number().min(0).max(100).optional(),
  /** Try greener providers first (else: cheaper first, then config order rotated per piece). */
  preferEnergy: z.boolean().default(false),
  /** After a failed upload a provider is avoided for this long (health memory). */
  cooldown: z.string().min(1).default('15 minutes'),
});
export type PlacementPolicy = z.infer<typeof PlacementPolicySchema>;

export const ReplicationSchema = z.object({
  copies: z.number().int().min(1).max(16).default(2),
  /** Attempts per provider before the copy fails over to another provider. */
  putAttempts: z.number().int().min(1).max(100).default(3),
  policy: PlacementPolicySchema.prefault({}),
});

export const StewardSchema = z.object({
  /** Time between verifications of every replica (Temporal duration). */
  verifyEvery: z.string().min(1).default('1 day'),
  /** A replica expiring within this window no longer counts and is renewed or replaced (Spade: 45 days). */
  renewWindow: z.string().min(1).default('45 days'),
  /** An unreachable replica is replaced once it has been unreachable this long. */
  unreachableGrace: z.string().min(1).default('1 day'),
  /** Spot-check detection target: catch a loss of `lossFraction` of blocks with this probability. */
  detectionProbability: z.number().gt(0).lt(1).default(0.99),
  lossFraction: z.number().gt(0).lt(1).default(0.01),
  /** Continue-as-new after this many rounds at the latest (Temporal may suggest it sooner). */
  maxRoundsPerRun: z.number().int().min(1).default(500),
  /**
   * Tag steward workflows with the Keyword search attributes ProvenantHealth / ProvenantDataset.
   * The server must know them (`temporal operator search-attribute create`); the embedded dev
   * server registers them and the CLI turns this on there.
   */
  searchAttributes: z.boolean().default(false),
});

export const ConfigSchema = z
  .object({
    temporal: TemporalSchema.prefault({}),
    /** Where the embedded server's database, staging and default providers live. */
    dataDir: z.string().min(1).default(defaultDataDir),
    /** Per-host staging area for CAR shards; defaults to `<dataDir>/staging`. */
    stagingDir: z.string().min(1).optional(),
    pack: PackSchema.prefault({}),
    replication: ReplicationSchema.prefault({}),
    steward: StewardSchema.prefault({}),
    /** Defaults to three local directory providers under `<dataDir>/providers`. */
    providers: z.array(ProviderSchema).optional(),
  })
  .transform((c) => ({
    ...c,
    stagingDir: c.stagingDir ?? path.join(c.dataDir, 'staging'),
    providers:
      c.providers ??
      [1, 2, 3].map((i): ProviderConfig => ({
        kind: 'local' as const,
        id: `local-${i}`,
        path: path.join(c.dataDir, 'providers', `local-${i}`),
      })),
  }))
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.providers.forEach((p, i) => {
      if (seen.has(p.id)) ctx.addIssue({ code: 'custom', path: ['providers', i, 'id'], message: `duplicate provider id '${p.id}'` });
      seen.add(p.id);
    });
  });

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;

/** What a workflow needs to know about a provider: never credentials or paths. */
import type { ProviderRef } from '../workflows/types.js';
export type { ProviderRef };

export function providerRefs(config: Config): ProviderRef[] {
  // Placement attributes only: never paths, endpoints or credential names.
  return config.providers.map((p) => {
    const ref: ProviderRef = { id: p.id, kind: p.kind };
    for (const k of ['region', 'org', 'city', 'country', 'continent', 'pricePerTiBMonth', 'energyScore', 'maxPieceBytes'] as const) {
      if (p[k] !== undefined) (ref as unknown as Record<string, unknown>)[k] = p[k];
    }
    return ref;
  });
}

/** Input of the archive workflow, validated before it starts. */
export const ArchiveRequestSchema = z.object({
  datasetId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'dataset id: letters, digits, . _ - (max 128)'),
  source: z.discriminatedUnion('kind', [z.object({ kind: z.literal('local'), path: z.string().min(1) })]),
  copies: z.number().int().min(1).max(16),
  meta: z.record(z.string(), z.string()).default({}),
  shardBytes: z.number().int().min(MIN_SHARD_BYTES).max(MAX_SHARD_BYTES),
  providers: z.array(z.object({
    id: z.string(), kind: z.string(), region: z.string().optional(), org: z.string().optional(), city: z.string().optional(),
    country: z.string().optional(), continent: z.string().optional(), pricePerTiBMonth: z.number().optional(),
    energyScore: z.number().optional(), maxPieceBytes: z.number().optional(),
  })).min(1),
});
export type ArchiveRequest = z.infer<typeof ArchiveRequestSchema>;
