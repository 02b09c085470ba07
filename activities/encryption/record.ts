/**
 * What a manifest records of its shards' encryption (activities/encryption/keys.ts,
 * providers/encrypted.ts): everything a restore needs but the key-encryption key, and never a key.
 */
import { z } from 'zod';

/** The content cipher: AES-256-GCM over fixed-size chunks, per-piece keys, counter nonces. */
export const SHARD_CIPHER = 'AES-256-GCM-chunked-v1';
/** How the data key is wrapped: AES-256 key wrap (RFC 3394). */
export const KEY_WRAP = 'A256KW';

export const DatasetEncryptionSchema = z.object({
  alg: z.literal(SHARD_CIPHER),
  keyWrap: z.literal(KEY_WRAP),
  /** Id of the key-encryption key that wrapped the data key (a keyed fingerprint: no key can be derived from it). */
  keyId: z.string().regex(/^[0-9a-f]{16}$/),
  /** The 32-byte data key wrapped by that key (40 bytes), base64. */
  wrappedKey: z.string().regex(/^[A-Za-z0-9+/]{54}==$/),
  /** Plaintext bytes per sealed chunk. */
  chunkBytes: z
    .number()
    .int()
    .min(4096)
    .max(16 << 20),
});
export type DatasetEncryption = z.infer<typeof DatasetEncryptionSchema>;
