/**
 * Keys of client-side shard encryption (see providers/encrypted.ts for the ciphertext).
 *
 * The user names a key-encryption key (KEK) by file or environment variable (config
 * `encryption`); it never leaves the worker or CLI that reads it. Each archive run draws a random
 * 32-byte data key when it starts packing, wraps it with the KEK (AES key wrap, RFC 3394) and keeps
 * only the wrapped key, in the run's staging on its host; packed in units, also in the plan's pages
 * on the providers, where the worker of each unit reads it and unwraps it with its own KEK
 * (pack/units.ts). Workflow history carries neither key nor wrapped key. The
 * manifest records what a restore needs — the cipher, the chunk size, the wrapped key and the id
 * of the KEK that wrapped it — never a key. A restore, a steward round or a repair unwraps the data
 * key with the KEK configured where it runs; a missing or different KEK is an EncryptionKeyError.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Config, EncryptionConfig } from '../../config/schema.js';
import { EncryptionKeyError, EncryptionUnsupportedError } from '../errors.js';
import { EncryptedProvider, PLAINTEXT_ONLY_KINDS, ShardCipher } from '../providers/encrypted.js';
import type { StorageProvider } from '../providers/provider.js';
import { ProviderSet } from '../providers/registry.js';
import { DatasetEncryptionSchema, KEY_WRAP, SHARD_CIPHER, type DatasetEncryption } from './record.js';

export { DatasetEncryptionSchema, type DatasetEncryption };

const KW_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');
/** The run's encryption record in its staging directory (the wrapped key only). */
export const ENCRYPTION_FILE = 'encryption.json';

export interface KeyEncryptionKey {
  keyId: string;
  key: Buffer;
  /** Where it came from, for messages (a file name or a variable name, never the value). */
  source: string;
}

/** Where the KEK is named (config `encryption`). */
export type KekConfig = Pick<EncryptionConfig, 'keyFile' | 'keyEnv'>;

/** A KEK's id: the first 8 bytes of a keyed hash of it, hex. */
export function kekIdOf(key: Buffer): string {
  return crypto.createHmac('sha256', key).update('provenant/kek-id/v1').digest('hex').slice(0, 16);
}

/** 32 bytes given raw (a file only), as 64 hex digits or as base64; undefined for anything else. */
function parseKey(raw: Buffer, allowRaw: boolean): Buffer | undefined {
  if (allowRaw && raw.length === 32) return raw;
  const text = raw.toString('utf8').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) {
    const b = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
    if (b.length === 32) return b;
  }
  return undefined;
}

/** The configured KEK, or undefined when encryption is off. Unreadable or malformed: EncryptionKeyError. */
export function loadKek(cfg: KekConfig, env: NodeJS.ProcessEnv = process.env): KeyEncryptionKey | undefined {
  if (cfg.keyFile) {
    let raw: Buffer;
    try {
      raw = fs.readFileSync(cfg.keyFile);
    } catch (cause) {
      throw new EncryptionKeyError(`cannot read the encryption key file ${cfg.keyFile}: ${(cause as Error).message}`, {
        cause,
      });
    }
    const key = parseKey(raw, true);
    if (!key)
      throw new EncryptionKeyError(
        `encryption key file ${cfg.keyFile} does not hold a 32-byte key (raw, 64 hex digits or base64)`,
      );
    return { key, keyId: kekIdOf(key), source: cfg.keyFile };
  }
  if (cfg.keyEnv) {
    const value = env[cfg.keyEnv];
    if (!value) throw new EncryptionKeyError(`environment variable ${cfg.keyEnv} (encryption.keyEnv) is not set`);
    const key = parseKey(Buffer.from(value), false);
    if (!key)
      throw new EncryptionKeyError(
        `environment variable ${cfg.keyEnv} does not hold a 32-byte key (64 hex digits or base64)`,
      );
    return { key, keyId: kekIdOf(key), source: `$${cfg.keyEnv}` };
  }
  return undefined;
}

/** A new data key, wrapped by `kek`, as the manifest will record it. */
export function newDatasetEncryption(kek: KeyEncryptionKey, chunkBytes: number): DatasetEncryption {
  const dataKey = crypto.randomBytes(32);
  const c = crypto.createCipheriv('id-aes256-wrap', kek.key, KW_IV);
  const wrapped = Buffer.concat([c.update(dataKey), c.final()]);
  dataKey.fill(0);
  return { alg: SHARD_CIPHER, keyWrap: KEY_WRAP, keyId: kek.keyId, wrappedKey: wrapped.toString('base64'), chunkBytes };
}

/** The data key of `enc`, unwrapped with `kek`. No KEK, another KEK or a wrapped key that fails its check: EncryptionKeyError. */
export function unwrapDataKey(enc: DatasetEncryption, kek: KeyEncryptionKey | undefined): Buffer {
  if (!kek)
    throw new EncryptionKeyError(
      `the dataset is encrypted with key ${enc.keyId}: configure it (encryption.keyFile, encryption.keyEnv or PROVENANT_ENCRYPTION_KEY_FILE)`,
    );
  if (kek.keyId !== enc.keyId)
    throw new EncryptionKeyError(
      `the dataset is encrypted with key ${enc.keyId}, but the configured key (${kek.source}) is ${kek.keyId}`,
    );
  try {
    const d = crypto.createDecipheriv('id-aes256-wrap', kek.key, KW_IV);
    return Buffer.concat([d.update(Buffer.from(enc.wrappedKey, 'base64')), d.final()]);
  } catch (cause) {
    throw new EncryptionKeyError(`the wrapped data key does not unwrap with key ${kek.keyId}: altered or wrong key`, {
      cause,
    });
  }
}

/**
 * The run's encryption record, made when the run starts packing if this worker encrypts (a
 * configured KEK), and read back by every later attempt and activity of the run on this host: one
 * data key per run, whatever the retries.
 */
export async function startRunEncryption(
  config: Config,
  stageDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<DatasetEncryption | undefined> {
  const have = await runEncryption(stageDir);
  if (have) return have;
  const kek = loadKek(config.encryption, env);
  if (!kek) return undefined;
  const enc = newDatasetEncryption(kek, config.encryption.chunkBytes);
  const file = path.join(stageDir, ENCRYPTION_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  await fsp.writeFile(tmp, JSON.stringify(enc), { flag: 'w' });
  const fh = await fsp.open(tmp, 'r+');
  await fh.sync();
  await fh.close();
  // A link, not a rename: an attempt that raced this one and won keeps its key.
  await fsp.link(tmp, file).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  await fsp.rm(tmp, { force: true });
  return (await runEncryption(stageDir))!;
}

/** The run's encryption record in its staging directory, if the run encrypts. */
export async function runEncryption(stageDir: string): Promise<DatasetEncryption | undefined> {
  const text = await fsp.readFile(path.join(stageDir, ENCRYPTION_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  return DatasetEncryptionSchema.parse(JSON.parse(text));
}

/**
 * Refuse, before anything is packed, an encrypting run whose providers include one that cannot
 * hold ciphertext (Filecoin, Kubo: see providers/encrypted.ts).
 */
export function refusePlaintextOnlyProviders(providers: StorageProvider[]): void {
  const bad = providers.filter((p) => PLAINTEXT_ONLY_KINDS.has(p.kind));
  if (bad.length)
    throw new EncryptionUnsupportedError(
      `encrypted shards cannot go to ${bad.map((p) => `${p.id} (${p.kind})`).join(', ')}: use local or s3 providers, or archive without encryption`,
    );
}

/** Ciphertext CIDs by data key: a worker's decorators of one run share what they computed. */
const sealedByKey = new Map<string, Map<string, string>>();

/**
 * `providers` seen through the data key of `enc`, unwrapped with the KEK that `cfg` names.
 * Pieces in `plain` (the manifest's own) pass through as they are.
 */
export function encryptedProviders(
  providers: StorageProvider[],
  enc: DatasetEncryption,
  cfg: KekConfig,
  o: { plain?: ReadonlySet<string>; env?: NodeJS.ProcessEnv } = {},
): StorageProvider[] {
  const dataKey = unwrapDataKey(enc, loadKek(cfg, o.env));
  const cipher = new ShardCipher(dataKey, enc.chunkBytes);
  const id = `${enc.wrappedKey}/${enc.chunkBytes}`;
  let sealed = sealedByKey.get(id);
  if (!sealed) sealedByKey.set(id, (sealed = new Map()));
  return providers.map((p) => new EncryptedProvider(p, cipher, { sealed, ...(o.plain ? { plain: o.plain } : {}) }));
}

/** `ctx` with its providers seen through the data key of `enc` (unchanged when `enc` is undefined). */
export function encryptedContext<T extends { config: Config; providers: ProviderSet }>(
  ctx: T,
  enc: DatasetEncryption | undefined,
  o: { plain?: ReadonlySet<string>; env?: NodeJS.ProcessEnv } = {},
): T {
  if (!enc) return ctx;
  return {
    ...ctx,
    providers: new ProviderSet([], encryptedProviders(ctx.providers.all(), enc, ctx.config.encryption, o)),
  };
}
