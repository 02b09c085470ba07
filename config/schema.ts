/**
 * The one place every Provenant option is defined. Defaults live here and nowhere else.
 * Parse at the edge (CLI, worker, plugin constructor); workflows receive parsed values.
 */
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { CID } from 'multiformats/cid';
import { ArchiveSourceSchema, EnvName } from '../shared/source.js';
import type { ProviderRef } from '../shared/types.js';

export {
  EnvName,
  HttpSourceSchema,
  S3SourceSchema,
  type ArchiveSource,
  type ArchiveSourceInput,
  type HttpSourceConfig,
  type RemoteSource,
  type S3SourceConfig,
} from '../shared/source.js';
export type { ProviderRef };

/** Filecoin Onchain Cloud's piece limit: 1,065,353,216 bytes incl. CAR overhead. */
export const FOC_MAX_PIECE_BYTES = 1_065_353_216;
export const MAX_SHARD_BYTES = 32 * 1024 ** 3;
/** A shard must hold at least one 1 MiB leaf plus its CAR framing (at the default leaf size). */
export const MIN_SHARD_BYTES = 2 * 1024 * 1024;
/** UnixFS leaf size: ipfs-car's 1 MiB by default (root CIDs equal ipfs-car's); smaller for scale tests. */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
export const MIN_CHUNK_BYTES = 16 * 1024;
/**
 * The smallest shard for a leaf size: two leaves, and never under 64 KiB, which a file node of
 * 1,024 links (about 47 KiB) needs; a flat directory of long names may still need more.
 */
export const minShardBytes = (chunkBytes: number): number => Math.max(2 * chunkBytes, 64 * 1024);

export function defaultDataDir(): string {
  const xdg = process.env.XDG_DATA_HOME;
  return path.join(xdg && xdg.length > 0 ? xdg : path.join(os.homedir(), '.local', 'share'), 'provenant');
}

const ProviderId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'provider id: lowercase letters, digits, . _ - (max 63)');

/** Placement attributes shared by every provider kind (used by the placement policy). */
const PlacementAttrs = {
  id: ProviderId.describe('Names the provider in replicas, manifests and `--provider`.'),
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
    bucket: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'bucket: 3-63 lowercase letters, digits, . and -')
      .describe('The bucket that holds the pieces.'),
    /** Key prefix inside the bucket, e.g. 'provenant/'. */
    prefix: z
      .string()
      .regex(/^([^/].*\/)?$/, "prefix: empty or ending in '/', not starting with '/'")
      .default(''),
    /** Path-style addressing (`endpoint/bucket/key`), as MinIO needs. */
    forcePathStyle: z.boolean().default(false),
    /** Environment variables holding the credentials; the AWS SDK's default chain when omitted. */
    accessKeyIdEnv: EnvName.optional(),
    secretAccessKeyEnv: EnvName.optional(),
    sessionTokenEnv: EnvName.optional(),
    /** Multipart part size (raised automatically to stay within 10,000 parts). */
    partBytes: z
      .number()
      .int()
      .min(5 * 1024 * 1024)
      .max(5 * 1024 ** 3)
      .default(16 * 1024 * 1024),
    connectTimeoutMs: z
      .number()
      .int()
      .min(1)
      .default(10_000)
      .describe('Timeout of opening a connection to the endpoint.'),
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
  mfsDir: z
    .string()
    .regex(/^\/[^\s]*[^/\s]$/, 'mfsDir: an absolute MFS path without a trailing /')
    .default('/provenant'),
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
  .refine((c) => c.topUpRunwayDays >= c.minRunwayDays, {
    message: 'topUpRunwayDays must be at least minRunwayDays',
    path: ['topUpRunwayDays'],
  });
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
  clientAddress: z
    .string()
    .regex(/^[ft][0-4][a-z0-9]+$/, 'clientAddress: a Filecoin address such as f1…')
    .optional(),
  /** Deal length in epochs (the market accepts 180 to 1,278 days; default 540 days). */
  dealDurationEpochs: z
    .number()
    .int()
    .min(180 * EPOCHS_PER_DAY)
    .max(1278 * EPOCHS_PER_DAY)
    .default(540 * EPOCHS_PER_DAY),
  /** Epochs between proposing a deal and its start (time for the provider to seal). */
  dealStartOffsetEpochs: z
    .number()
    .int()
    .min(0)
    .default(4 * EPOCHS_PER_DAY),
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

export const ProviderSchema = z.discriminatedUnion('kind', [
  LocalProviderSchema,
  S3ProviderSchema,
  KuboProviderSchema,
  SynapseProviderSchema,
  LotusProviderSchema,
]);
export type ProviderConfig = z.infer<typeof ProviderSchema>;

/**
 * TLS to the Temporal server (self-hosted with mTLS, or Temporal Cloud). Files only: a key or
 * certificate written into the config is refused; the TOML profile and TEMPORAL_TLS_* variables
 * (workers/connection.ts) may also set these.
 */
export const TemporalTlsSchema = z.strictObject({
  /** false turns TLS off even when the profile or an API key would turn it on. */
  enabled: z.boolean().optional(),
  /** The name the server's certificate must carry, when it is not the host of `address`. */
  serverName: z.string().min(1).optional(),
  /** PEM file of the CA that signed the server's certificate; the system's roots when unset. */
  serverCaCertFile: z.string().min(1).optional(),
  /** PEM files of the client certificate and its key (mTLS); both or neither. */
  clientCertFile: z.string().min(1).optional(),
  clientKeyFile: z.string().min(1).optional(),
});
export type TemporalTls = z.infer<typeof TemporalTlsSchema>;

export const TemporalSchema = z.object({
  /** Defaults < TOML profile < config file < TEMPORAL_ADDRESS (config/load.ts). */
  address: z.string().min(1).default('localhost:7233'),
  namespace: z.string().min(1).default('default').describe('Temporal namespace (env TEMPORAL_NAMESPACE).'),
  /** Profile of a Temporal TOML config file (TEMPORAL_PROFILE); 'default' when the file has one. */
  profile: z.string().min(1).optional(),
  /** The Temporal TOML config file (TEMPORAL_CONFIG_FILE); ~/.config/temporalio/temporal.toml when unset. */
  configFile: z.string().min(1).optional(),
  tls: TemporalTlsSchema.optional(),
  /** The environment variable holding the API key (Temporal Cloud); TEMPORAL_API_KEY or the profile's when unset. */
  apiKeyEnv: EnvName.optional(),
  /** Refused: a key written into the config could reach logs and histories; name its variable with apiKeyEnv. */
  apiKey: z
    .never({ error: 'temporal.apiKey: put the key in an environment variable and name it with apiKeyEnv' })
    .optional(),
  taskQueue: z
    .string()
    .min(1)
    .default('provenant')
    .describe("Task queue of Provenant's workflows and shared activities (env PROVENANT_TASK_QUEUE)."),
  /** Start an embedded dev server when nothing answers at a local `address` without TLS (CLI only). */
  embedded: z.enum(['auto', 'always', 'never']).default('auto'),
  /** How long a pack or restore may go without a heartbeat before Temporal retries it elsewhere. */
  heartbeatTimeout: z.string().min(1).default('1 minute'),
  /**
   * How long a source may stay unavailable (network errors, 5xx: SourceUnavailableError on every
   * retry of the scan or the pack) before the archive fails instead of retrying on.
   */
  sourceUnavailableFor: z.string().min(1).default('10 minutes'),
});

export const PackSchema = z.object({
  /** Target CAR shard size, CAR framing included (at least minShardBytes(chunkBytes), checked in ConfigSchema). */
  shardBytes: z.number().int().min(minShardBytes(MIN_CHUNK_BYTES)).max(MAX_SHARD_BYTES).default(FOC_MAX_PIECE_BYTES),
  /** UnixFS leaf size, recorded in the manifest's layout; other than 1 MiB, root CIDs differ from ipfs-car's. */
  chunkBytes: z.number().int().min(MIN_CHUNK_BYTES).max(DEFAULT_CHUNK_BYTES).default(DEFAULT_CHUNK_BYTES),
  /**
   * Shards a pack runs ahead of replication on this host: shard k + W is started only once shard
   * k's staged files (the shard and its twins) are gone, taken or deleted by the puts of its
   * copies. Staging then holds at most about W × shardBytes × (1 + twins) of shards, whatever the
   * dataset's size (plus the block indexes, the listing and files.ndjson, which are small).
   */
  stagingWindowShards: z.number().int().min(1).default(8),
  /**
   * Pack in units of this many shards that any worker on the task queue runs (activities/pack/
   * units.ts), each packing its shards, storing their copies and removing them; the DAG's inner
   * nodes go into tree shards after the data shards. Unset: one pack on the host that scanned.
   * The source must be readable from every worker (an S3 prefix, or a path on a shared filesystem).
   */
  unitShards: z.number().int().min(1).optional(),
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
  copies: z
    .number()
    .int()
    .min(1)
    .max(16)
    .default(2)
    .describe('Copies of every shard, each on a distinct provider (`provenant archive --replicas`).'),
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
  lossFraction: z
    .number()
    .gt(0)
    .lt(1)
    .default(0.01)
    .describe("The fraction of a replica's blocks whose loss the spot checks must detect."),
  /**
   * Shards whose replicas a round verifies (each with the spot checks above): 'all' (every shard,
   * every round: the default), a fraction of the shards (0 < x < 1, at least one) or a whole
   * number of shards. A sample is a window on a permutation of the shards that moves on each
   * round, so every shard is verified within ⌈shards / sample⌉ rounds; the round reports its
   * P(detect) for the dataset (shared/sampling.ts). Replicas not healthy at their last check, and
   * the manifest, are verified every round.
   */
  sampleShards: z.union([z.literal('all'), z.number().gt(0).lt(1), z.number().int().min(1)]).default('all'),
  /** Continue-as-new after this many rounds at the latest (Temporal may suggest it sooner). */
  maxRoundsPerRun: z.number().int().min(1).default(500),
  /** Replicas per page of the replica table (content-addressed, stored on the providers; every block stays far under 1 MiB). */
  pageReplicas: z.number().int().min(1).max(4096).default(256),
  /**
   * Tag steward workflows with the Keyword search attributes ProvenantHealth / ProvenantDataset.
   * The server must know them (`temporal operator search-attribute create`); the embedded dev
   * server registers them and the CLI turns this on there.
   */
  searchAttributes: z.boolean().default(false),
});

/**
 * Signing of manifests, audit heads and exports (DSSE over in-toto statements). The private key
 * is read by the activities that sign, from a PEM file on the worker; it never enters workflow
 * history. `PROVENANT_SIGNING_KEY_FILE` sets keyFile.
 */
export const SigningSchema = z.object({
  /** PEM private key (PKCS#8 or SEC1): Ed25519 or ECDSA P-256. */
  keyFile: z.string().min(1).optional(),
  /** The key id recorded with each signature; defaults to the sha256 of the public key (SPKI DER), hex. */
  keyId: z.string().min(1).optional(),
  /** Public keys (PEM files) of earlier signing keys: signatures made with them still verify after a rotation. */
  previousPublicKeyFiles: z.array(z.string().min(1)).default([]),
});
export type SigningConfig = z.infer<typeof SigningSchema>;

/**
 * The optional payload codec (workers/codec.ts): AES-256-GCM encryption of every payload the
 * workers and clients send to Temporal. The keys file is JSON `{"current": "<id>", "keys": {"<id>":
 * "<base64 of 32 bytes>"}}`, read by workers and clients, never sent to Temporal; the environment's
 * PROVENANT_CODEC_KEYS_FILE (a path) or PROVENANT_CODEC_KEYS (the JSON itself) win over keysFile.
 */
export const CodecSchema = z.object({
  /** The codec keys file (JSON, see above); no keys from any source: payloads are not encrypted. */
  keysFile: z.string().min(1).optional(),
});
export type CodecConfig = z.infer<typeof CodecSchema>;

/**
 * Optional client-side encryption of shard data (activities/providers/encrypted.ts): each archive
 * run gets a random data key, wrapped (AES key wrap) by the key-encryption key named here; shards
 * reach providers only as AES-256-GCM ciphertext, and the manifest records the wrapped key and its
 * key id, never a key. The key is 32 bytes: a file holding them raw, as 64 hex digits or as base64;
 * or an environment variable holding hex or base64. `PROVENANT_ENCRYPTION_KEY_FILE` sets keyFile.
 * Neither set: shards are stored as they are.
 */
export const EncryptionSchema = z
  .object({
    /** File holding the key-encryption key (32 bytes raw, 64 hex digits or base64). */
    keyFile: z.string().min(1).optional(),
    /** Environment variable holding the key-encryption key (64 hex digits or base64), instead of keyFile. */
    keyEnv: EnvName.optional(),
    /** Plaintext bytes per AES-256-GCM chunk (each adds a 16-byte tag); a ranged read decrypts whole chunks. */
    chunkBytes: z
      .number()
      .int()
      .min(4096)
      .max(16 << 20)
      .default(1 << 20),
  })
  .refine((c) => !(c.keyFile && c.keyEnv), {
    message: 'name the key by keyFile or by keyEnv, not both',
    path: ['keyEnv'],
  });
export type EncryptionConfig = z.infer<typeof EncryptionSchema>;

/**
 * The built-in Prometheus endpoint of a worker (workers/metrics.ts): Provenant's metrics
 * (activities/telemetry.ts) at `http://host:port/metrics` while the worker runs. Off unless a port
 * is set; a meter of one's own can be passed to ProvenantPlugin instead (`meter`).
 */
export const PrometheusSchema = z.strictObject({
  /** Serve /metrics on this port while a worker runs (`provenant worker --metrics-port N`); off when unset. */
  port: z.number().int().min(1).max(65535).optional(),
  /** The address it listens on: loopback unless set (e.g. '0.0.0.0' for a scraper on another host). */
  host: z.string().min(1).default('127.0.0.1'),
});

/**
 * OpenLineage run events of archives (activities/lineage/lineage.ts): START, COMPLETE (the output
 * is the manifest CID) and FAIL, POSTed as JSON; the input is the source. Off unless a URL is set.
 */
export const OpenLineageSchema = z.strictObject({
  /** The endpoint that receives the events, e.g. Marquez's http://host:5000/api/v1/lineage; none sent when unset. */
  url: HttpUrl.optional(),
  /** Namespace of the archive jobs (`archive.<dataset>`) in the events. */
  namespace: z.string().min(1).default('provenant'),
  /** Environment variable holding a bearer token for the endpoint, when it needs one. */
  apiKeyEnv: EnvName.optional(),
  /** How long one event may take to send. */
  timeoutMs: z.number().int().min(1).default(10_000),
});

/**
 * Metrics and lineage. Nothing leaves the machine unless configured here (or, for traces and a
 * meter of one's own, passed to ProvenantPlugin in code).
 */
export const TelemetrySchema = z.object({
  prometheus: PrometheusSchema.prefault({}),
  openLineage: OpenLineageSchema.prefault({}),
});
export type TelemetryConfig = z.infer<typeof TelemetrySchema>;

export const ConfigSchema = z
  .object({
    temporal: TemporalSchema.prefault({}),
    /** Where the embedded server's database, staging and default providers live. */
    dataDir: z
      .string()
      .min(1)
      .default(defaultDataDir)
      .meta({ default: '$XDG_DATA_HOME/provenant, else ~/.local/share/provenant' }),
    /** Per-host staging area for CAR shards; defaults to `<dataDir>/staging`. */
    stagingDir: z.string().min(1).optional(),
    pack: PackSchema.prefault({}),
    replication: ReplicationSchema.prefault({}),
    steward: StewardSchema.prefault({}),
    signing: SigningSchema.prefault({}),
    codec: CodecSchema.prefault({}),
    encryption: EncryptionSchema.prefault({}),
    telemetry: TelemetrySchema.prefault({}),
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
    if (c.pack.shardBytes < minShardBytes(c.pack.chunkBytes))
      ctx.addIssue({
        code: 'custom',
        path: ['pack', 'shardBytes'],
        message: `a shard must hold two leaves: at least ${minShardBytes(c.pack.chunkBytes)} bytes at chunkBytes ${c.pack.chunkBytes}`,
      });
    const seen = new Set<string>();
    c.providers.forEach((p, i) => {
      if (seen.has(p.id))
        ctx.addIssue({ code: 'custom', path: ['providers', i, 'id'], message: `duplicate provider id '${p.id}'` });
      seen.add(p.id);
    });
  });

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;

/** What a workflow needs to know about a provider (never credentials or paths). */

export function providerRefs(config: Config): ProviderRef[] {
  // Placement attributes only: never paths, endpoints or credential names.
  return config.providers.map((p) => {
    const ref: ProviderRef = { id: p.id, kind: p.kind };
    for (const k of [
      'region',
      'org',
      'city',
      'country',
      'continent',
      'pricePerTiBMonth',
      'energyScore',
      'maxPieceBytes',
    ] as const) {
      if (p[k] !== undefined) (ref as unknown as Record<string, unknown>)[k] = p[k];
    }
    return ref;
  });
}

/** Input of the archive workflow, validated before it starts. */
export const ArchiveRequestSchema = z.object({
  datasetId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'dataset id: letters, digits, . _ - (max 128)'),
  source: ArchiveSourceSchema,
  copies: z.number().int().min(1).max(16),
  meta: z.record(z.string(), z.string()).default({}),
  /** Manifest CIDs of parent datasets or base models (lineage): `archive --derived-from`. */
  derivedFrom: z
    .array(
      z.string().refine((s) => {
        try {
          CID.parse(s);
          return true;
        } catch {
          return false;
        }
      }, 'derived-from: a manifest CID'),
    )
    .max(64)
    .optional(),
  shardBytes: z.number().int().min(minShardBytes(MIN_CHUNK_BYTES)).max(MAX_SHARD_BYTES),
  chunkBytes: z.number().int().min(MIN_CHUNK_BYTES).max(DEFAULT_CHUNK_BYTES).optional(),
  unitShards: z.number().int().min(1).optional(),
  providers: z
    .array(
      z.object({
        id: z.string(),
        kind: z.string(),
        region: z.string().optional(),
        org: z.string().optional(),
        city: z.string().optional(),
        country: z.string().optional(),
        continent: z.string().optional(),
        pricePerTiBMonth: z.number().optional(),
        energyScore: z.number().optional(),
        maxPieceBytes: z.number().optional(),
      }),
    )
    .min(1),
});
export type ArchiveRequest = z.infer<typeof ArchiveRequestSchema>;
