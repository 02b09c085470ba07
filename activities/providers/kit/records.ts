/**
 * Call records: what a completed call returned, kept on providers so that a rerun of the call with
 * the same input (a retry whose first attempt completed, on this worker or another) returns that
 * result instead of acting again. A record is a small CAR whose root is a block named by the call's
 * kind and input alone, so it is found again with `locate`; the result is its second block. Every
 * block read is checked against its CID (readSmallCar). Storing one is best-effort: without it a
 * rerun acts again, as it would have without records.
 */
import { Readable } from 'node:stream';
import * as dagJson from '@ipld/dag-json';
import type { CID } from 'multiformats/cid';
import { cidOf, sha256 } from '../../pack/cids.js';
import type { StorageProvider } from '../provider.js';
import { pieceOfCar, readSmallCar, smallCar } from './car.js';

/** Plain JSON (no undefined fields, which dag-json refuses), as Temporal would have passed it. */
const plain = (v: unknown): unknown => (v === undefined ? null : (JSON.parse(JSON.stringify(v)) as unknown));

function block(value: unknown): { cid: CID; bytes: Uint8Array } {
  const bytes = dagJson.encode(value);
  return { cid: cidOf(dagJson.code, sha256(bytes)), bytes };
}

/** The block that names a call: its kind (`provenant/…`) and its input. */
export const recordKey = (kind: string, input: unknown) => block({ type: kind, input: plain(input) });

/** Keep what the call of `kind` with `input` returned, on every provider of `on` that takes it. */
export async function putRecord(kind: string, input: unknown, result: unknown, on: StorageProvider[]): Promise<void> {
  const key = recordKey(kind, input);
  const car = smallCar(key.cid, [key, block({ type: `${kind}-result`, result: plain(result) })]);
  const piece = pieceOfCar(car, key.cid.toString());
  for (const p of on) await p.put(piece, () => Readable.from([car])).catch(() => undefined);
}

/** What the call of `kind` with `input` returned, from the first provider with an intact record; undefined when none. */
export async function findRecord<T>(
  kind: string,
  input: unknown,
  on: StorageProvider[],
  signal?: AbortSignal,
): Promise<T | undefined> {
  const key = recordKey(kind, input).cid.toString();
  for (const p of on) {
    try {
      const ref = await p.locate(key, { signal });
      if (!ref) continue;
      const parts: Buffer[] = [];
      for await (const c of p.readRange(ref, { signal })) parts.push(c as Buffer);
      const { blocks } = await readSmallCar(Buffer.concat(parts), `${kind} record ${key}`);
      for (const b of blocks) {
        const v = dagJson.decode(b.bytes) as { type?: string; result?: unknown };
        if (v?.type === `${kind}-result`) return v.result as T;
      }
    } catch {
      // An unreadable copy: try the next provider.
    }
  }
  return undefined;
}

/** Delete the record of the call of `kind` with `input` wherever it is; how many copies went. */
export async function dropRecord(
  kind: string,
  input: unknown,
  on: StorageProvider[],
  signal?: AbortSignal,
): Promise<number> {
  const key = recordKey(kind, input).cid.toString();
  let dropped = 0;
  for (const p of on) {
    const ref = await p.locate(key, { signal }).catch(() => undefined);
    if (!ref) continue;
    const gone = await p.delete(ref, { signal }).then(
      () => true,
      () => false,
    );
    if (gone) dropped++;
  }
  return dropped;
}
