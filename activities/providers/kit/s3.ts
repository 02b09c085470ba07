/**
 * The one S3 client, shared by the S3 source (ingest/s3.ts) and the S3 provider (providers/s3.ts):
 * region defaulted, endpoint and path style as configured, credentials from the environment
 * variables the config names (else the SDK's default chain), and one attempt per request, since
 * Temporal owns retries. Also what both read off an SDK error.
 */
import { createRequire } from 'node:module';
import type * as S3Sdk from '@aws-sdk/client-s3';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { requireEnv } from './env.js';

/**
 * The AWS SDK, loaded when the first S3 client is made rather than when this module is: every
 * provider module is imported wherever a ProviderSet is built (the CLI's status, audit and
 * providers too), and the SDK alone costs a third of a second to load. It is CommonJS, so a
 * synchronous require gives the same module instance an `import` would.
 */
const requireSdk = createRequire(import.meta.url);
let sdk: typeof S3Sdk | undefined;
export function s3Sdk(): typeof S3Sdk {
  return (sdk ??= requireSdk('@aws-sdk/client-s3') as typeof S3Sdk);
}

/** The S3 protocol's default region (MinIO's too), used when the config names none. */
export const S3_DEFAULT_REGION = 'us-east-1';

export interface S3Settings {
  region?: string;
  endpoint?: string;
  forcePathStyle?: boolean;
  accessKeyIdEnv?: string;
  secretAccessKeyEnv?: string;
  sessionTokenEnv?: string;
  connectTimeoutMs?: number;
}

export interface S3ClientOptions {
  /** Config path of the settings, for ConfigError issues (`providers.r2`, `source`). */
  path: string;
  env?: NodeJS.ProcessEnv;
  /**
   * For a caller that checks every byte itself (the provider: CAR CID on write and on read).
   * Request bodies are sent as UNSIGNED-PAYLOAD, so neither the SDK nor the server runs a
   * second sha256 over every byte to sign it; what travels is still checked by the server
   * through the CRC32 the caller asks for (`ChecksumAlgorithm`), a header that is signed. The
   * SDK's own CRC check of downloads is left to the caller's hash as well.
   */
  verifiesBytes?: boolean;
}

export function createS3Client(cfg: S3Settings, o: S3ClientOptions): S3Sdk.S3Client {
  const options: S3ClientConfig = {
    region: cfg.region ?? S3_DEFAULT_REGION,
    endpoint: cfg.endpoint,
    forcePathStyle: cfg.forcePathStyle,
    maxAttempts: 1,
    ...(o.verifiesBytes ? { responseChecksumValidation: 'WHEN_REQUIRED' as const } : {}),
    ...(cfg.connectTimeoutMs !== undefined ? { requestHandler: { connectionTimeout: cfg.connectTimeoutMs } } : {}),
  };
  if (cfg.accessKeyIdEnv && cfg.secretAccessKeyEnv) {
    const read = (field: string, name: string) => requireEnv(name, { path: `${o.path}.${field}`, env: o.env });
    options.credentials = {
      accessKeyId: read('accessKeyIdEnv', cfg.accessKeyIdEnv),
      secretAccessKey: read('secretAccessKeyEnv', cfg.secretAccessKeyEnv),
      sessionToken: cfg.sessionTokenEnv ? read('sessionTokenEnv', cfg.sessionTokenEnv) : undefined,
    };
  }
  const client = new (s3Sdk().S3Client)(options);
  if (o.verifiesBytes) {
    // Before signing (finalizeRequest): the signer takes a payload hash already in the headers as given.
    client.middlewareStack.add(
      (next) => async (args) => {
        const req = args.request as { headers?: Record<string, string>; body?: unknown };
        if (req.headers && req.body !== undefined && typeof req.body !== 'string')
          req.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
        return next(args);
      },
      { step: 'build', name: 'provenantUnsignedPayload' },
    );
  }
  return client;
}

/** SDK error names that mean the credentials were refused or may not do this. */
const AUTH_NAMES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'AccessDenied',
  'InvalidToken',
  'ExpiredToken',
  'CredentialsProviderError',
]);

/** What an SDK error says: its name, HTTP status, whether it is an auth refusal, and a one-line reason. */
export function s3ErrorInfo(err: unknown): { name: string; status?: number; auth: boolean; why: string } {
  const name = (err as { name?: string } | undefined)?.name ?? '';
  const status = (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  const message = (err as Error | undefined)?.message ?? String(err);
  const why = [
    status && `HTTP ${status}`,
    name !== 'Unknown' && name !== 'Error' && name,
    message !== 'UnknownError' && message,
  ]
    .filter(Boolean)
    .join(': ');
  return { name, status, auth: AUTH_NAMES.has(name) || status === 401 || status === 403, why };
}
