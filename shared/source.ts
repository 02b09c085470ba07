/**
 * What to archive, defined once in zod: a local directory on the worker's host, an S3 prefix, or
 * HTTP(S) URLs. Workflows see only the inferred types (type imports: zod stays out of their
 * bundle); config/ builds its request schema from these. Credentials are only ever named
 * environment variables, read by the worker.
 */
import { z } from 'zod';

/** The name of an environment variable (never its value: secrets stay out of config). */
export const EnvName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'the name of an environment variable, not its value');

/** A directory on the worker's host (absolute when sent by a client in another language). */
export const LocalSourceSchema = z.object({ kind: z.literal('local'), path: z.string().min(1) });

/**
 * A prefix of an S3 bucket to archive: every object under it becomes a file at its key minus the
 * prefix. Strict, like the provider: credentials are named environment variables, never values.
 */
export const S3SourceSchema = z
  .strictObject({
    kind: z.literal('s3'),
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'bucket: 3-63 lowercase letters, digits, . and -'),
    /** The "directory" to archive: empty (the whole bucket) or ending in '/'. */
    prefix: z
      .string()
      .regex(/^([^/][\s\S]*\/)?$/, "prefix: empty or ending in '/', not starting with '/'")
      .default(''),
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
const SourceUrl = z.url({ protocol: /^https?$/ }).refine((u) => {
  const { username, password } = new URL(u);
  return !username && !password;
}, 'no credentials in URLs: name an environment variable in authorizationEnv');

/**
 * Files fetched over HTTP(S): each URL becomes a file named after its last path segment, or at
 * the relative `path` given with it.
 */
export const HttpSourceSchema = z.strictObject({
  kind: z.literal('http'),
  urls: z
    .array(z.union([SourceUrl, z.strictObject({ url: SourceUrl, path: z.string().min(1) })]))
    .min(1)
    .max(10_000),
  /** Environment variable holding the `Authorization` header value (e.g. `Bearer …`), sent to every URL. */
  authorizationEnv: EnvName.optional(),
});
export type HttpSourceConfig = z.infer<typeof HttpSourceSchema>;

export const ArchiveSourceSchema = z.discriminatedUnion('kind', [LocalSourceSchema, S3SourceSchema, HttpSourceSchema]);
export type ArchiveSource = z.infer<typeof ArchiveSourceSchema>;
/** A source as a client may write it (defaults not yet applied). */
export type ArchiveSourceInput = z.input<typeof ArchiveSourceSchema>;
/** A source read remotely (ranged reads), not from this host's disk. */
export type RemoteSource = Exclude<ArchiveSource, { kind: 'local' }>;
