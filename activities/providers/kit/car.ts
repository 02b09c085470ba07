/**
 * Framing of small CARs built in memory (audit records, test pieces) and the piece reference of
 * such a CAR. The header is the packer's own (pack/shard-writer.ts), so every CAR we write is
 * framed the same way; the packer frames its large shards itself, in shared buffers.
 */
import { CarBlockIterator } from '@ipld/car/iterator';
import varint from 'varint';
import type { CID } from 'multiformats/cid';
import { IntegrityError } from '../../errors.js';
import { blockMatches, carCidFromSha256, sha256 } from '../../pack/cids.js';
import { commpOf } from '../../pack/commp.js';
import { carHeader } from '../../pack/shard-writer.js';
import type { PieceRef } from '../provider.js';

export { carHeader };

/** One block's section of a CAR: varint(length of CID + data), the CID, the data. */
export function carBlock(cid: CID, bytes: Uint8Array): Uint8Array[] {
  return [Uint8Array.from(varint.encode(cid.bytes.length + bytes.length)), cid.bytes, bytes];
}

/** A whole CAR in memory: header with `root`, then the blocks in order. */
export function smallCar(root: CID, blocks: { cid: CID; bytes: Uint8Array }[]): Buffer {
  return Buffer.concat([carHeader(root), ...blocks.flatMap((b) => carBlock(b.cid, b.bytes))]);
}

/** The piece reference of CAR bytes held in memory: piece CID (CommP), CAR CID, length. */
export function pieceOfCar(car: Uint8Array, rootCid: string): PieceRef {
  return { pieceCid: commpOf(car).pieceCid, carCid: carCidFromSha256(sha256(car)), rootCid, bytes: car.length };
}

/**
 * The roots and blocks of a small CAR held in memory (an audit record, a table page), every block
 * checked against its CID. Anything malformed (framing, header, a CID, a hash) is an IntegrityError
 * naming `what`: the bytes read are not the CAR that was stored.
 */
export async function readSmallCar(
  car: Uint8Array,
  what: string,
): Promise<{ roots: CID[]; blocks: { cid: CID; bytes: Uint8Array }[] }> {
  const blocks: { cid: CID; bytes: Uint8Array }[] = [];
  let roots: CID[];
  try {
    const it = await CarBlockIterator.fromBytes(car);
    roots = (await it.getRoots()) as unknown as CID[];
    for await (const b of it) blocks.push({ cid: b.cid as unknown as CID, bytes: b.bytes });
  } catch (err) {
    throw new IntegrityError(`${what} is not a readable CAR: ${(err as Error).message}`, { cause: err });
  }
  for (const b of blocks) {
    if (!blockMatches(b.cid, b.bytes)) throw new IntegrityError(`${what}: block ${b.cid} does not match its hash`);
  }
  return { roots, blocks };
}
