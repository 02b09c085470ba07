/**
 * The optional payload codec: AES-256-GCM encryption of every payload workers and clients send to
 * Temporal (workflow inputs and results, activity inputs and results, signals, heartbeats,
 * failures' details), so that the server's history holds no dataset id, path or meta in the clear.
 *
 * Keys have ids. Payloads are encrypted under the current key and carry its id; decoding picks the
 * key by the id the payload names, so after a rotation (a new `current`, the old key kept in
 * `keys`) histories written under the old key still decode. The keys come from a file or the
 * environment on the worker and the client, never from workflow history:
 *
 *   {"current": "2026-12", "keys": {"2026-12": "<base64 of 32 bytes>", "2026-06": "<base64>"}}
 *
 * Sources, first wins: PROVENANT_CODEC_KEYS (the JSON itself), PROVENANT_CODEC_KEYS_FILE (its path),
 * `codec.keysFile` in the config. None of them: no codec.
 *
 * Wire format of an encoded payload: metadata `encoding: binary/encrypted` and
 * `encryption-key-id: <id>`; data = 12-byte IV ‖ ciphertext ‖ 16-byte GCM tag, over the original
 * payload serialized as JSON ({metadata: {k: base64}, data: base64}); the key id is authenticated
 * data, so a payload cannot be moved to another key's id. Follows the samples' encryption codec,
 * minus its payload logging.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import type { Config } from '../config/schema.js';
import { CodecKeyError, PayloadDecryptError } from '../shared/errors.js';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

export interface CodecKeys {
  /** The id new payloads are encrypted under. */
  current: string;
  keys: Record<string, Uint8Array>;
}

const text = new TextEncoder();
const untext = new TextDecoder();
const b64 = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64');
const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

/** Parse the keys JSON (`where` names its source in errors; key bytes never appear in a message). */
export function parseCodecKeys(json: string, where: string): CodecKeys {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (cause) {
    throw new CodecKeyError(`codec keys (${where}) are not JSON: ${(cause as Error).message}`, { cause });
  }
  const o = raw as { current?: unknown; keys?: unknown };
  if (!o || typeof o !== 'object' || typeof o.current !== 'string' || !o.keys || typeof o.keys !== 'object')
    throw new CodecKeyError(`codec keys (${where}) must be {"current": "<id>", "keys": {"<id>": "<base64>"}}`);
  const keys: Record<string, Uint8Array> = {};
  for (const [id, v] of Object.entries(o.keys as Record<string, unknown>)) {
    const bytes = typeof v === 'string' && /^[A-Za-z0-9+/]+={0,2}$/.test(v) ? unb64(v) : undefined;
    if (!id || !bytes || bytes.length !== KEY_BYTES)
      throw new CodecKeyError(`codec key '${id}' (${where}) is not the base64 of ${KEY_BYTES} bytes`);
    keys[id] = bytes;
  }
  if (!keys[o.current])
    throw new CodecKeyError(`codec keys (${where}): the current key id '${o.current}' is not among the keys`);
  return { current: o.current, keys };
}

/** The codec's keys from the environment or the config's keys file; undefined when none is configured. */
export function loadCodecKeys(
  config: Pick<Config, 'codec'>,
  env: NodeJS.ProcessEnv = process.env,
): CodecKeys | undefined {
  if (env.PROVENANT_CODEC_KEYS) return parseCodecKeys(env.PROVENANT_CODEC_KEYS, 'PROVENANT_CODEC_KEYS');
  const file = env.PROVENANT_CODEC_KEYS_FILE || config.codec?.keysFile;
  if (!file) return undefined;
  let json: string;
  try {
    json = fs.readFileSync(file, 'utf8');
  } catch (cause) {
    throw new CodecKeyError(`cannot read codec keys file ${file}: ${(cause as Error).message}`, { cause });
  }
  return parseCodecKeys(json, file);
}

/** A fresh random key, base64 (for a keys file). */
export function newCodecKey(): string {
  return crypto.randomBytes(KEY_BYTES).toString('base64');
}

function serialize(p: Payload): Uint8Array {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) if (v) metadata[k] = b64(v);
  return text.encode(JSON.stringify({ metadata, data: b64(p.data ?? new Uint8Array()) }));
}

function deserialize(bytes: Uint8Array): Payload {
  const o = JSON.parse(untext.decode(bytes)) as { metadata: Record<string, string>; data: string };
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(o.metadata)) metadata[k] = unb64(v);
  return { metadata, data: unb64(o.data) };
}

export class EncryptionCodec implements PayloadCodec {
  constructor(private readonly keys: CodecKeys) {}

  /** The id payloads are encrypted under now. */
  get currentKeyId(): string {
    return this.keys.current;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const id = this.keys.current;
    const key = this.keys.keys[id]!;
    return payloads.map((p) => {
      const iv = crypto.randomBytes(IV_BYTES);
      const c = crypto.createCipheriv('aes-256-gcm', key, iv);
      c.setAAD(text.encode(id));
      const body = Buffer.concat([iv, c.update(serialize(p)), c.final(), c.getAuthTag()]);
      return {
        metadata: { encoding: text.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: text.encode(id) },
        data: new Uint8Array(body),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const enc = p.metadata?.encoding;
      // Payloads not encrypted (written before the codec was turned on) pass through.
      if (!enc || untext.decode(enc) !== ENCRYPTED_ENCODING) return p;
      const idBytes = p.metadata?.[KEY_ID_METADATA];
      if (!idBytes) throw new PayloadDecryptError(`an encrypted payload has no ${KEY_ID_METADATA}`);
      const id = untext.decode(idBytes);
      const key = this.keys.keys[id];
      if (!key)
        throw new CodecKeyError(
          `payload encrypted under key id '${id}', which is not among the codec keys (${Object.keys(this.keys.keys).join(', ')})`,
        );
      const data = p.data ?? new Uint8Array();
      if (data.length < IV_BYTES + TAG_BYTES)
        throw new PayloadDecryptError(`encrypted payload (key id '${id}') is truncated: ${data.length} bytes`);
      try {
        const d = crypto.createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
        d.setAAD(idBytes);
        d.setAuthTag(data.subarray(data.length - TAG_BYTES));
        const plain = Buffer.concat([d.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), d.final()]);
        return deserialize(plain);
      } catch (cause) {
        throw new PayloadDecryptError(
          `encrypted payload (key id '${id}') fails authentication: altered, truncated or not ours`,
          { cause },
        );
      }
    });
  }
}

/** The codec of this config and environment, or undefined when no keys are configured. */
export function codecOf(
  config: Pick<Config, 'codec'>,
  env: NodeJS.ProcessEnv = process.env,
): EncryptionCodec | undefined {
  const keys = loadCodecKeys(config, env);
  return keys ? new EncryptionCodec(keys) : undefined;
}

/** `dc` with `codec` appended as the last codec (encryption runs after any compression of the user's). */
export function withCodec(dc: DataConverter | undefined, codec: PayloadCodec): DataConverter {
  return { ...dc, payloadCodecs: [...(dc?.payloadCodecs ?? []), codec] };
}

/** Client options' data converter for this config: `{ dataConverter }` with the codec, or `{}` without one. */
export function clientDataConverter(
  config: Pick<Config, 'codec'>,
  env: NodeJS.ProcessEnv = process.env,
): {
  dataConverter?: DataConverter;
} {
  const codec = codecOf(config, env);
  return codec ? { dataConverter: withCodec(undefined, codec) } : {};
}
