/**
 * Packing in units that any worker runs (pack.unitShards): the layout, the planner, and the small
 * blocks through which workers hand each other the plan and their results.
 *
 * The layout. Data shards hold only the files' raw leaves, in listing order (file after file, a
 * file's leaves in order); the DAG's inner nodes (a file's nodes over its leaves, directories)
 * go, once every leaf CID is known, into the tree shards after them (stitch.ts). Every block's
 * size follows from the listing alone (a leaf is `chunkBytes` of its file, its CID 36 bytes), so
 * the planner cuts the data shards — and units of `unitShards` of them — before any byte is read,
 * exactly where a writer filling shards in order would (the same rule as ShardWriter). A unit is
 * a range of the listing; a file larger than a unit is split at leaf boundaries. Units are
 * independent, so any worker packs any unit, and one worker running them all makes the same
 * shards: root, file and piece CIDs do not depend on who packed what.
 *
 * The blocks. A unit's plan (its listing events) and a unit's result (its shards, their block
 * indexes and where their copies went) are dag-json blocks stored as small CARs on the providers,
 * as the replica table's pages are (steward/table.ts): only their CIDs go through Temporal. An
 * encrypting run's plan pages and results also carry its encryption record (the wrapped data key
 * and the id of the key that wrapped it, never a key): every unit's worker, and the stitch, read
 * it there and unwrap the data key with the key-encryption key configured where they run.
 */
import fs from 'node:fs';
import readline from 'node:readline';
import * as dagJson from '@ipld/dag-json';
import { CID } from 'multiformats/cid';
import varint from 'varint';
import { IntegrityError, PieceSizeExceededError, StagingMissingError } from '../errors.js';
import type { DatasetEncryption } from '../encryption/record.js';
import type { ListingLine } from '../ingest/scan.js';
import type { TableStore } from '../steward/table.js';
import { encodeBlock } from '../steward/table.js';
import type { JournalLine } from '../steward/journal.js';
import { pieceOfCar, smallCar } from '../providers/kit/car.js';
import { dropRecord } from '../providers/kit/records.js';
import type { StorageProvider } from '../providers/provider.js';
import { carHeader } from './shard-writer.js';
import type { ShardInfo } from './shard-writer.js';
import { UNITS_PER_PAGE, type PieceRef, type PlanSummary } from '../../shared/types.js';

export const UNIT_PLAN_TYPE = 'provenant/pack-unit-plan';
export const UNIT_RESULT_TYPE = 'provenant/pack-unit-result';
export const PLAN_PAGE_TYPE = 'provenant/pack-plan-page';
/** A page's unit results, in plan order (stored once the page's units are all done). */
export const RESULT_PAGE_TYPE = 'provenant/pack-result-page';

/**
 * Call records (providers/kit/records.ts) of an archive run's unit packs and its stitch: a rerun
 * of either (a retry after a lost result) returns the first run's result, instead of storing a new
 * result block or replica table and orphaning the first (their placement times and `existed` flags
 * differ from run to run). They go with the plan's blocks (dropRunRecords).
 */
export const UNIT_RUN = 'provenant/pack-unit-run';
export const STITCH_RUN = 'provenant/stitch-run';
export const unitRunOf = (r: { runKey: string; planPage: string; slot: number }) => ({
  runKey: r.runKey,
  planPage: r.planPage,
  slot: r.slot,
});
export const stitchRunOf = (r: { runKey: string }) => ({ runKey: r.runKey });

/** Bytes of a CIDv1 sha2-256 CID (raw or dag-pb). */
const CID_BYTES = 36;
/** A CAR header whose root is a 36-byte CID: the same length for every shard. */
const HEADER_BYTES = carHeader(CID.parse('bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku')).length;

/**
 * One event of a unit's part of the listing: a directory entered or left, or a file's segment:
 * leaves [from, to) of the file (all of them unless the file is split across units). `file` is
 * the file's ordinal in the listing.
 */
export type UnitEvent =
  | ['D', string]
  | ['E']
  | [
      kind: 'F',
      name: string,
      size: number,
      mtimeMs: number,
      src: string,
      etag: string | null,
      from: number,
      to: number,
      file: number,
    ];

export interface UnitPlan {
  type: typeof UNIT_PLAN_TYPE;
  unit: number;
  firstShard: number;
  /** Leaves in each of the unit's shards, in order (the segments' leaves fill them in turn). */
  shardLeaves: number[];
  events: UnitEvent[];
}

export interface UnitShard {
  info: ShardInfo;
  /** The shard's block index: [offset, length, cid] per block, in CAR order. */
  index: [number, number, string][];
}

/** A page of the plan: its units' plan CIDs. */
export interface PlanPage {
  type: typeof PLAN_PAGE_TYPE;
  units: string[];
  /** The run's encryption record, when it encrypts (the same on every page). */
  encryption?: DatasetEncryption;
}

/** A page's results: its units' result CIDs, in plan order. */
export interface ResultPage {
  type: typeof RESULT_PAGE_TYPE;
  results: string[];
}

export interface UnitResult {
  type: typeof UNIT_RESULT_TYPE;
  unit: number;
  shards: UnitShard[];
  /** Where each shard's copies went (the placement journal's lines). */
  placements: JournalLine[];
  /** sha256 of the files of more than one leaf wholly in this unit, by file ordinal. */
  sha256: Record<string, string>;
  /** The run's encryption record, when it encrypts: a failed archive retires the ciphertext through it. */
  encryption?: DatasetEncryption;
  /**
   * When it encrypts, the id each new copy's ciphertext is stored under, by piece CID: a failed
   * archive retires them on any worker, one without the key-encryption key too.
   */
  storedAs?: Record<string, string>;
}

/** The piece a shard is stored as. */
export const shardPiece = (sh: ShardInfo): PieceRef => ({
  pieceCid: sh.pieceCid,
  carCid: sh.carCid,
  rootCid: sh.rootCid,
  bytes: sh.carBytes,
});

/** How many leaves a file of `size` bytes has (an empty file has none: its empty leaf is a tree block). */
export function leafCount(size: number, chunkBytes: number): number {
  return Math.ceil(size / chunkBytes);
}

/** Bytes a leaf of `length` takes in a CAR section. */
function framed(length: number): number {
  return varint.encodingLength(CID_BYTES + length) + CID_BYTES + length;
}

/**
 * Cut a listing into units of `unitShards` data shards each; `store` keeps each unit's plan
 * (it is given the plan block and returns its CID). A block that could not fit a shard is refused
 * here, before anything is read. An encrypting run's `encryption` record goes into every page.
 */
export async function planUnits(
  listingPath: string,
  o: { shardBytes: number; chunkBytes: number; unitShards: number; encryption?: DatasetEncryption },
  store: (value: unknown) => Promise<string>,
): Promise<Omit<PlanSummary, 'host'>> {
  if (!fs.existsSync(listingPath)) throw new StagingMissingError(`listing missing: ${listingPath}`);
  if (HEADER_BYTES + framed(o.chunkBytes) > o.shardBytes)
    throw new PieceSizeExceededError(`a ${o.chunkBytes}-byte leaf does not fit in a ${o.shardBytes}-byte shard`);
  const unitPlanCids: string[] = [];
  const planPages: string[] = [];
  let unit: UnitPlan = { type: UNIT_PLAN_TYPE, unit: 0, firstShard: 0, shardLeaves: [], events: [] };
  let shard = -1; // the open shard (-1: none yet)
  let carBytes = 0;
  let shards = 0;
  let files = 0;
  let bytes = 0;
  const flushPage = async (force: boolean) => {
    if (unitPlanCids.length >= UNITS_PER_PAGE || (force && unitPlanCids.length > 0))
      planPages.push(
        await store({
          type: PLAN_PAGE_TYPE,
          units: unitPlanCids.splice(0),
          ...(o.encryption ? { encryption: o.encryption } : {}),
        }),
      );
  };
  const finishUnit = async () => {
    unitPlanCids.push(await store(unit));
    await flushPage(false);
  };
  /** Place one leaf; `beforeCut` runs first when the leaf opens a new unit (its file's segment ends there). */
  const placeLeaf = async (length: number, beforeCut: () => void): Promise<void> => {
    const need = framed(length);
    if (shard < 0 || carBytes + need > o.shardBytes) {
      if (shard >= 0 && unit.shardLeaves.length >= o.unitShards) {
        beforeCut();
        await finishUnit();
        unit = { type: UNIT_PLAN_TYPE, unit: unit.unit + 1, firstShard: shard + 1, shardLeaves: [], events: [] };
      }
      shard++;
      shards++;
      carBytes = HEADER_BYTES;
      unit.shardLeaves.push(0);
    }
    carBytes += need;
    unit.shardLeaves[unit.shardLeaves.length - 1]!++;
  };

  const rl = readline.createInterface({ input: fs.createReadStream(listingPath), crlfDelay: Infinity });
  try {
    for await (const text of rl) {
      if (!text) continue;
      const ev = JSON.parse(text) as ListingLine;
      if (ev[0] !== 'F') {
        unit.events.push(ev);
        continue;
      }
      const [, name, size, mtimeMs, src, etag] = ev;
      if (size < 0) throw new IntegrityError(`a file of unknown size cannot be packed in units: ${src}`);
      const ordinal = files++;
      bytes += size;
      const leaves = leafCount(size, o.chunkBytes);
      let from = 0;
      const segment = (to: number): UnitEvent => ['F', name, size, mtimeMs, src, etag ?? null, from, to, ordinal];
      for (let i = 0; i < leaves; i++) {
        await placeLeaf(Math.min(o.chunkBytes, size - i * o.chunkBytes), () => {
          // Leaves [from, i) of this file end the unit that is closing.
          if (i > from) unit.events.push(segment(i));
          from = i;
        });
      }
      unit.events.push(segment(leaves));
    }
  } finally {
    rl.close();
  }
  await finishUnit();
  await flushPage(true);
  return { planPages, units: unit.unit + 1, shards, files, bytes };
}

/** Read a plan or result block back (checked against its CID by the store). */
export async function loadBlock<T extends { type: string }>(
  store: TableStore,
  cid: string,
  type: T['type'],
): Promise<T> {
  const v = dagJson.decode(await store.get(cid)) as T;
  if (v?.type !== type) throw new IntegrityError(`block ${cid} is not a ${type}`);
  return v;
}

/** Store a plan or result block on the providers; its CID. */
export async function storeBlock(store: TableStore, value: unknown): Promise<string> {
  const { cid, bytes } = encodeBlock(JSON.parse(JSON.stringify(value)) as unknown);
  await store.put(cid, bytes);
  return cid.toString();
}

/**
 * Delete the plan and result blocks of an archive once its manifest holds what they said (best
 * effort, idempotent): the units' blocks first, the pages that list them last, so that a retry
 * after a crash still finds the rest through the pages.
 */
export async function dropUnitBlocks(
  store: TableStore,
  providers: StorageProvider[],
  pages: { planPages: string[]; resultPages: string[]; runKey?: string },
): Promise<number> {
  // The run's call records first: naming a unit's takes its plan page.
  let dropped = pages.runKey ? await dropRunRecords(store, providers, { ...pages, runKey: pages.runKey }) : 0;
  const children: string[] = [];
  /** A page's children; none when the page is gone already (a retry after a crash). */
  const read = async <T>(cid: string, pick: (v: T) => string[] | undefined) => {
    try {
      children.push(...(pick(dagJson.decode(await store.get(cid)) as T) ?? []));
    } catch (err) {
      if (!(err instanceof Error && err.name === 'ManifestNotFoundError')) throw err;
    }
  };
  for (const cid of pages.planPages) await read<PlanPage>(cid, (v) => v.units);
  for (const cid of pages.resultPages) await read<ResultPage>(cid, (v) => v.results);
  for (const cid of [...children, ...pages.planPages, ...pages.resultPages]) {
    let bytes: Uint8Array;
    try {
      bytes = await store.get(cid);
    } catch {
      continue; // gone already
    }
    const parsed = CID.parse(cid);
    const piece = pieceOfCar(smallCar(parsed, [{ cid: parsed, bytes }]), cid);
    for (const p of providers) await p.delete(piece).catch(() => undefined);
    store.forget(cid);
    dropped++;
  }
  return dropped;
}

/**
 * Delete the call records of run `runKey`: each unit's of the plan `planPages` (a page gone
 * already counts none), and the stitch's. How many copies went.
 */
export async function dropRunRecords(
  store: TableStore,
  providers: StorageProvider[],
  r: { runKey: string; planPages: string[] },
): Promise<number> {
  let dropped = 0;
  for (const planPage of r.planPages) {
    let units: string[];
    try {
      units = (dagJson.decode(await store.get(planPage)) as PlanPage).units;
    } catch {
      continue;
    }
    for (let slot = 0; slot < units.length; slot++)
      dropped += await dropRecord(UNIT_RUN, unitRunOf({ runKey: r.runKey, planPage, slot }), providers);
  }
  return dropped + (await dropRecord(STITCH_RUN, stitchRunOf(r), providers));
}
