/** CID helpers shared by pack, providers and restore. Block and CAR CIDs are v1 with sha2-256; piece CIDs (v1 ↔ v2) at the end. */
import crypto from 'node:crypto';
import { CID } from 'multiformats/cid';
import * as Digest from 'multiformats/hashes/digest';
import * as raw from 'multiformats/codecs/raw';
import * as dagPb from '@ipld/dag-pb';
import { varint } from 'multiformats';

export const SHA256_CODE = 0x12;
/** Multicodec of a CAR file ('car', 0x0202): the code of a shard's own CID. */
export const CAR_CODE = 0x0202;
export const RAW_CODE = raw.code;
export const DAG_PB_CODE = dagPb.code;

export function sha256(bytes: Uint8Array): Buffer {
  return crypto.createHash('sha256').update(bytes).digest();
}

export function cidOf(code: number, sha: Uint8Array): CID {
  return CID.createV1(code, Digest.create(SHA256_CODE, sha));
}

export function carCidFromSha256(sha: Uint8Array): string {
  return cidOf(CAR_CODE, sha).toString();
}

/** True when `bytes` hash to `cid` (sha2-256 only: every CID we write uses it). */
export function blockMatches(cid: CID, bytes: Uint8Array): boolean {
  if (cid.multihash.code !== SHA256_CODE) return false;
  return Buffer.from(cid.multihash.digest).equals(sha256(bytes));
}

// ---- piece CIDs: v1 (baga…, what the chain and Lotus deals name) ↔ v2 (FRC-0069, what we store by) ----
/** Multicodecs of piece CIDs: v1 is fil-commitment-unsealed + sha2-256-trunc254-padded; v2 raw + fr32-sha256-trunc254-padbintree. */
const FIL_COMMITMENT_UNSEALED = 0xf101;
const SHA256_TRUNC254_PADDED = 0x1012;
const FR32_SHA256_TRUNC254_PADBINTREE = 0x1011;

/** The v1 CID, padded size and payload length a v2 piece CID encodes. */
export function pieceInfo(v2: string): { v1: string; paddedBytes: number; rawBytes: number } {
  const cid = CID.parse(v2);
  if (cid.code !== RAW_CODE || cid.multihash.code !== FR32_SHA256_TRUNC254_PADBINTREE)
    throw new Error(`not a v2 piece CID: ${v2}`);
  const d = cid.multihash.digest;
  const [padding, n] = varint.decode(d);
  const height = d[n]!;
  const root = d.subarray(n + 1);
  if (root.length !== 32) throw new Error(`not a v2 piece CID: ${v2}`);
  const paddedBytes = 2 ** height * 32;
  const v1 = CID.create(1, FIL_COMMITMENT_UNSEALED, Digest.create(SHA256_TRUNC254_PADDED, root)).toString();
  return { v1, paddedBytes, rawBytes: (paddedBytes / 128) * 127 - padding };
}

/** The v2 piece CID of a v1 CID with its padded size and payload length. */
export function pieceCidV2(v1: string, paddedBytes: number, rawBytes: number): string {
  const height = Math.log2(paddedBytes / 32);
  const padding = (paddedBytes / 128) * 127 - rawBytes;
  if (!Number.isInteger(height) || padding < 0)
    throw new Error(`inconsistent piece size ${paddedBytes}/${rawBytes} for ${v1}`);
  return pieceCidV2FromRoot(CID.parse(v1).multihash.digest, height, padding);
}

/** The v2 piece CID of a CommP tree root: digest = uvarint(padding) ‖ height ‖ root. */
export function pieceCidV2FromRoot(root: Uint8Array, height: number, padding: number): string {
  const n = varint.encodingLength(padding);
  const digest = new Uint8Array(n + 1 + root.length);
  varint.encodeTo(padding, digest, 0);
  digest[n] = height;
  digest.set(root, n + 1);
  return CID.create(1, RAW_CODE, Digest.create(FR32_SHA256_TRUNC254_PADBINTREE, digest)).toString();
}

/** The CID a string spells, or undefined (lives here, not in the manifest module, so the CLI can tell a CID from a dataset id without loading that). */
export function parseCid(text: string): CID | undefined {
  try {
    return CID.parse(text);
  } catch {
    return undefined;
  }
}
