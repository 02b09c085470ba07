/** Reading and rewriting evidence bundles (`provenant evidence` CARs) in tests, as whoever holds one could. */
import fs from 'node:fs';
import * as dagJson from '@ipld/dag-json';
import { CarBlockIterator } from '@ipld/car/iterator';
import { CID } from 'multiformats/cid';
import type { EvidenceIndex } from '../../activities/evidence/bundle.js';
import { cidOf, sha256 } from '../../activities/pack/cids.js';
import { smallCar } from '../../activities/providers/kit/car.js';

/** Encode a dag-json value into `blocks`; its CID. */
export function putBlock(blocks: Map<string, Uint8Array>, value: unknown): string {
  const bytes = dagJson.encode(value);
  const cid = cidOf(dagJson.code, sha256(bytes)).toString();
  blocks.set(cid, bytes);
  return cid;
}

/** The bundle's index and its other blocks, by CID. */
export async function readBundle(file: string): Promise<{ index: EvidenceIndex; blocks: Map<string, Uint8Array> }> {
  const it = await CarBlockIterator.fromBytes(fs.readFileSync(file));
  const root = (await it.getRoots())[0]!.toString();
  const blocks = new Map<string, Uint8Array>();
  for await (const b of it) blocks.set(b.cid.toString(), b.bytes);
  const index = dagJson.decode(blocks.get(root)!) as EvidenceIndex;
  blocks.delete(root);
  return { index, blocks };
}

/**
 * The bundle written again to `out` with `edit` applied to its index and blocks, re-hashed up to a
 * new index, so that every CID matches again: only the signatures (and the anchors) can tell.
 */
export async function rewrite(
  file: string,
  out: string,
  edit: (index: EvidenceIndex, blocks: Map<string, Uint8Array>) => void,
): Promise<string> {
  const { index, blocks } = await readBundle(file);
  edit(index, blocks);
  const bytes = dagJson.encode(index);
  const cid = cidOf(dagJson.code, sha256(bytes));
  const all = [{ cid, bytes }, ...[...blocks].map(([c, b]) => ({ cid: CID.parse(c), bytes: b }))];
  fs.writeFileSync(out, smallCar(cid, all));
  return out;
}
