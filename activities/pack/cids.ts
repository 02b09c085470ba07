/** CID helpers shared by pack, providers and restore. All CIDs are v1 with sha2-256. */
import crypto from 'node:crypto';
import { CID } from 'multiformats/cid';
import * as Digest from 'multiformats/hashes/digest';
import * as raw from 'multiformats/codecs/raw';
import * as dagPb from '@ipld/dag-pb';

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
