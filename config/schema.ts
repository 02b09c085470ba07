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

/** Filecoin epochs: one every 30 seconds, 2,880 a day. */
const EPOCHS_PER_DAY = 2880;
const HttpUrl = z.url({ protocol: /^https?$/ });

/**
 * Filecoin Onchain Cloud (PDP proofs, paid through Filecoin Pay) through the Synapse SDK.
 * Strict: a secret written into the config is refused; name its environment variable instead.
 */
export const SynapseProviderSchema = z
  .strictObject({
    kind: z.literal('synapse'),
    ...PlacementAttrs,
    /** Which deployment of the contracts (FWSS, PDPVerifier, Filecoin Pay, USDFC) to use. */
    network: z.enum(['mainnet', 'calibration']).default('mainnet'),
    /** Filecoin EVM JSON-RPC endpoint, e.g. https://api.node.glif.io/rpc/v1. */
    rpcUrl: HttpUrl,
    /** Environment variable holding the wallet's private key (0x followed by 64 hex digits). */
    privateKeyEnv: EnvName,
    /** The storage provider's id in the ServiceProviderRegistry. */
    providerId: z.number().int().min(1),
    /** Reach the provider's PDP API at this URL instead of the one it registered. */
    serviceUrl: HttpUrl.optional(),
    /** Use this existing data set (it must belong to the wallet) instead of Provenant's own. */
    dataSetId: z.number().int().min(1).optional(),
    /** Names the data set Provenant creates on this provider; change it to start a fresh one. */
    dataSetLabel: z.string().min(1).max(64).default('provenant'),
    /** Renewal tops up the payment deposit when the runway is shorter than this many days. */
    minRunwayDays: z.number().int().min(1).default(45),
    /** …up to this many days of runway. */
    topUpRunwayDays: z.number().int().min(1).default(180),
    /** Largest piece accepted (bytes, CAR framing included); the provider's own limit applies too. */
    maxPieceBytes: z.number().int().min(127).max(FOC_MAX_PIECE_BYTES).default(FOC_MAX_PIECE_BYTES),
    /** How far back `status` looks for proof faults, in epochs. */
    faultLookbackEpochs: z.number().int().min(1).default(EPOCHS_PER_DAY),
    /** Timeout of each chain and provider request (uploads excepted). */
    requestTimeoutMs: z.number().int().min(1).default(30_000),
  })
  .refine((c) => c.topUpRunwayDays >= c.minRunwayDays, { message: 'topUpRunwayDays must be at least minRunwayDays', path: ['topUpRunwayDays'] });
export type SynapseProviderConfig = z.infer<typeof SynapseProviderSchema>;

/**
 * Filecoin storage deals and DDO claims with one storage provider, through a Lotus node's
 * JSON-RPC API (client wallet, deal making, chain state) and the provider's HTTP piece endpoint.
 */
export const LotusProviderSchema = z.strictObject({
  kind: z.literal('lotus'),
  ...PlacementAttrs,
  /** Lotus JSON-RPC endpoint, e.g. http://127.0.0.1:1234/rpc/v1. */
  apiUrl: HttpUrl,
  /** Environment variable holding the Lotus API token (JWT with write permission for deals). */
  tokenEnv: EnvName.optional(),
  /** The storage provider's miner actor, e.g. f01234. */
  minerId: z.string().regex(/^[ft]0\d+$/, 'minerId: an ID address such as f01234'),
  /** The provider's HTTP retrieval endpoint serving /piece/<pieceCid> (Boost, Curio). */
  retrievalUrl: HttpUrl,
  /** Client wallet that makes the deals; the node's default wallet when omitted. */
  clientAddress: z.string().regex(/^[ft][0-4][a-z0-9]+$/, 'clientAddress: a Filecoin address such as f1…').optional(),
  /** Deal length in epochs (the market accepts 180 to 1,278 days; default 540 days). */
  dealDurationEpochs: z.number().int().min(180 * EPOCHS_PER_DAY).max(1278 * EPOCHS_PER_DAY).default(540 * EPOCHS_PER_DAY),
  /** Epochs between proposing a deal and its start (time for the provider to seal). */
  dealStartOffsetEpochs: z.number().int().min(0).default(4 * EPOCHS_PER_DAY),
  /** Make verified (Filecoin Plus) deals, which become claims that renewal can extend. */
  verifiedDeal: z.boolean().default(true),
  /** Price per epoch in attoFIL (a decimal string). */
  pricePerEpochAttoFil: z.string().regex(/^\d+$/).default('0'),
  /** Largest piece accepted (bytes); the miner's sector size applies too. */
  maxPieceBytes: z.number().int().min(127).optional(),
  /** Timeout of each chain and provider request (uploads and full reads excepted). */
  requestTimeoutMs: z.number().int().min(1).default(30_000),
});
export type LotusProviderConfig = z.infer<typeof LotusProviderSchema>;

export const ProviderSchema = z.discriminatedUnion('kind', [LocalProviderSchema, S3ProviderSchema, KuboProviderSchema, SynapseProviderSchema, LotusProviderSchema]);
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

/**
 * A prefix of an S3 bucket to archive: every object under it becomes a file at its key minus the
 * prefix. Strict, like the provider: credentials are named environment variables, never values.
 */
export const S3SourceSchema = z
  .strictObject({
    kind: z.literal('s3'),
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'bucket: 3-63 lowercase letters, digits, . and -'),
    /** The "directory" to archive: empty (the whole bucket) or ending in '/'. */
    prefix: z.string().regex(/^([^/][\s\S]*\/)?$/, "prefix: empty or ending in '/', not starting with '/'").default(''),
    /** S3-compatible endpoint (e.g. http://127.0.0.1:9000 for MinIO); AWS when omitted. */
    endpoint: z.url({ protocol: /^https?$/ }).optional(),
    region: z.string().min(1).optional(),
    /** Path-style addressing (`endpoint/bucket/key`), as MinIO needs. */
    forcePathStyle: z.boolean().default(false),
    /** Environment variables holding the credentials; the AWS SDK's default chain when omitted. */
    accessKeyIdEnv: EnvName.optional(),
    secretAccessKeyEnv: EnvName.optional(),
    sessionTokenEnv: EnvName.optional(),
  })
  .refine((c) => !!c.accessKeyIdEnv === !!c.secretAccessKeyEnv, {
    message: 'accessKeyIdEnv and secretAccessKeyEnv go together',
    path: ['secretAccessKeyEnv'],
  });
export type S3SourceConfig = z.infer<typeof S3SourceSchema>;

/** An http(s) URL without user:password (a secret in a URL would be written into workflow history). */
const SourceUrl = z
  .url({ protocol: /^https?$/ })
  .refine((u) => {
    const { username, password } = new URL(u);
    return !username && !password;
  }, 'no credentials in URLs: name an environment variable in authorizationEnv');

/**
 * Files fetched over HTTP(S): each URL becomes a file named after its last path segment, or at
 * the relative `path` given with it.
 */
export const HttpSourceSchema = z.strictObject({
  kind: z.literal('http'),
  urls: z.array(z.union([SourceUrl, z.strictObject({ url: SourceUrl, path: z.string().min(1) })])).min(1).max(10_000),
  /** Environment variable holding the `Authorization` header value (e.g. `Bearer …`), sent to every URL. */
  authorizationEnv: EnvName.optional(),
});
export type HttpSourceConfig = z.infer<typeof HttpSourceSchema>;

/** Input of the archive workflow, validated before it starts. */
export const ArchiveRequestSchema = z.object({
  datasetId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'dataset id: letters, digits, . _ - (max 128)'),
  source: z.discriminatedUnion('kind', [z.object({ kind: z.literal('local'), path: z.string().min(1) }), S3SourceSchema, HttpSourceSchema]),
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
export type ArchiveSource = ArchiveRequest['source'];
export type ArchiveSourceInput = z.input<typeof ArchiveRequestSchema>['source'];
/** A source that is mirrored into staging before the scan. */
export type RemoteSource = Exclude<ArchiveSource, { kind: 'local' }>;
