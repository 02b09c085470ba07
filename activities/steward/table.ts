/**
 * The replica table: every stored copy of a dataset's pieces, outside workflow state. It is
 * content-addressed and paged: dag-json page blocks of at most `pageReplicas` replicas (a piece's
 * copies always share a page), and a root block listing the pages' CIDs with their counts. Each
 * block is stored as its own small CAR on the dataset's providers, the way audit records are
 * (CAR header root = the block's CID, found again with `provider.locate`), so any worker can read
 * it; every block read is checked against its CID. At 100,000 shards × 3 copies and 256 replicas
 * a page, a page is ≈ 120 KB and the root ≈ 180 KB (tests/activities/steward/table.test.ts).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as dagJson from '@ipld/dag-json';
import { CarBlockIterator } from '@ipld/car/iterator';
import { CID } from 'multiformats/cid';
import {
  EMPTY_REPLICA_TABLE,
  type ReplicaHealth,
  type ReplicaTableSummary,
  type StewardReplica,
} from '../../shared/types.js';
import { ManifestNotFoundError, StoreError, IntegrityError } from '../errors.js';
import { blockMatches, cidOf, sha256 } from '../pack/cids.js';
import { pieceOfCar, smallCar } from '../providers/kit/car.js';
import type { StorageProvider } from '../providers/provider.js';

export const TABLE_TYPE = 'provenant/replica-table';
export const PAGE_TYPE = 'provenant/replica-page';

/** A page's line in the root: its CID and counts, so health is known without reading pages. */
export interface PageEntry {
  cid: CID;
  pieces: number;
  replicas: number;
  byState: Partial<Record<ReplicaHealth, number>>;
  minHealthy: number;
  lostPieces: number;
  earliestExpiryMs?: number;
}

export interface TableRoot {
  type: typeof TABLE_TYPE;
  version: 1;
  datasetId: string;
  manifestCid: string;
  pageReplicas: number;
  pages: PageEntry[];
}

export interface TablePage {
  type: typeof PAGE_TYPE;
  replicas: StewardReplica[];
}

export const EMPTY_TABLE: ReplicaTableSummary = EMPTY_REPLICA_TABLE;

/** dag-json has no `undefined`: drop absent optional fields. */
const plain = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

export function encodeBlock(value: unknown): { cid: CID; bytes: Uint8Array } {
  const bytes = dagJson.encode(value);
  return { cid: cidOf(dagJson.code, sha256(bytes)), bytes };
}

/** Replicas grouped by piece, in table order (shard, then piece CID; the manifest, shard −1, first). */
export function groupByPiece(replicas: StewardReplica[]): StewardReplica[][] {
  const byPiece = new Map<string, StewardReplica[]>();
  for (const r of replicas) byPiece.set(r.pieceCid, [...(byPiece.get(r.pieceCid) ?? []), r]);
  return [...byPiece.values()].sort(
    (a, b) =>
      a[0]!.shard - b[0]!.shard || (a[0]!.pieceCid < b[0]!.pieceCid ? -1 : a[0]!.pieceCid > b[0]!.pieceCid ? 1 : 0),
  );
}

/** Pages of at most `pageReplicas` replicas, whole pieces each (a piece with more copies than that fills a page alone). */
export function paginate(replicas: StewardReplica[], pageReplicas: number): StewardReplica[][] {
  const pages: StewardReplica[][] = [];
  let cur: StewardReplica[] = [];
  for (const group of groupByPiece(replicas)) {
    if (cur.length > 0 && cur.length + group.length > pageReplicas) {
      pages.push(cur);
      cur = [];
    }
    cur.push(...group);
  }
  if (cur.length > 0) pages.push(cur);
  return pages;
}

export function pageEntry(cid: CID, replicas: StewardReplica[]): PageEntry {
  const byState: Partial<Record<ReplicaHealth, number>> = {};
  const healthy = new Map<string, number>();
  let earliest: number | undefined;
  for (const r of replicas) {
    byState[r.state] = (byState[r.state] ?? 0) + 1;
    healthy.set(r.pieceCid, (healthy.get(r.pieceCid) ?? 0) + (r.state === 'healthy' ? 1 : 0));
    if (r.expiresAt) {
      const e = Date.parse(r.expiresAt);
      if (earliest === undefined || e < earliest) earliest = e;
    }
  }
  const counts = [...healthy.values()];
  return {
    cid,
    pieces: healthy.size,
    replicas: replicas.length,
    byState,
    minHealthy: counts.length ? Math.min(...counts) : 0,
    lostPieces: counts.filter((n) => n === 0).length,
    ...(earliest === undefined ? {} : { earliestExpiryMs: earliest }),
  };
}

export function summarize(rootCid: string | null, root: Pick<TableRoot, 'pages'>): ReplicaTableSummary {
  const byState: Partial<Record<ReplicaHealth, number>> = {};
  let earliest: number | undefined;
  let minHealthy = Infinity;
  for (const p of root.pages) {
    for (const [k, v] of Object.entries(p.byState))
      byState[k as ReplicaHealth] = (byState[k as ReplicaHealth] ?? 0) + (v ?? 0);
    if (p.earliestExpiryMs !== undefined && (earliest === undefined || p.earliestExpiryMs < earliest))
      earliest = p.earliestExpiryMs;
    minHealthy = Math.min(minHealthy, p.minHealthy);
  }
  return {
    tableCid: root.pages.length ? rootCid : null,
    pages: root.pages.length,
    pieces: root.pages.reduce((n, p) => n + p.pieces, 0),
    replicas: root.pages.reduce((n, p) => n + p.replicas, 0),
    byState,
    minHealthy: root.pages.length ? minHealthy : 0,
    lostPieces: root.pages.reduce((n, p) => n + p.lostPieces, 0),
    ...(earliest === undefined ? {} : { earliestExpiryMs: earliest }),
  };
}

/**
 * Where table blocks are stored and read: the providers, and a per-worker cache of blocks
 * already checked (content-addressed, so a cached block is never stale; it is checked again on read).
 */
export class TableStore {
  constructor(
    private readonly providers: StorageProvider[],
    private readonly cacheDir: string,
  ) {}

  private cached(cid: string): string {
    return path.join(this.cacheDir, cid);
  }

  /** Store one block on every provider that takes it (at least one must). */
  async put(cid: CID, bytes: Uint8Array, on: StorageProvider[] = this.providers): Promise<void> {
    const car = smallCar(cid, [{ cid, bytes }]);
    const piece = pieceOfCar(car, cid.toString());
    const errors: string[] = [];
    let ok = 0;
    for (const p of on) {
      try {
        await p.put(piece, () => Readable.from([car]));
        ok++;
      } catch (err) {
        errors.push(`${p.id}: ${(err as Error).message}`);
      }
    }
    if (ok === 0)
      throw new StoreError(
        `replica table block ${cid} could not be stored on any provider: ${errors.join('; ') || 'no providers'}`,
      );
    await fsp.mkdir(this.cacheDir, { recursive: true });
    const tmp = `${this.cached(cid.toString())}.${process.pid}.tmp`;
    await fsp.writeFile(tmp, bytes);
    await fsp.rename(tmp, this.cached(cid.toString()));
  }

  /** Drop a block from this worker's cache (it was deleted from the providers). */
  forget(cid: string): void {
    fs.rmSync(this.cached(cid), { force: true });
  }

  /** A block by CID: from the cache or the first provider whose copy hashes to it. */
  async get(cidText: string): Promise<Uint8Array> {
    const cid = CID.parse(cidText);
    const file = this.cached(cidText);
    if (fs.existsSync(file)) {
      const b = await fsp.readFile(file);
      if (blockMatches(cid, b)) return b;
    }
    const problems: string[] = [];
    for (const p of this.providers) {
      const ref = await p.locate(cidText).catch(() => undefined);
      if (!ref) continue;
      try {
        const parts: Buffer[] = [];
        for await (const c of p.readRange(ref)) parts.push(c as Buffer);
        const it = await CarBlockIterator.fromIterable(Readable.from([Buffer.concat(parts)]));
        for await (const b of it) {
          if (b.cid.toString() !== cidText) continue;
          if (!blockMatches(cid, b.bytes)) break;
          await fsp.mkdir(this.cacheDir, { recursive: true });
          await fsp.writeFile(file, b.bytes);
          return b.bytes;
        }
        problems.push(`${p.id}: copy does not hash to ${cidText}`);
      } catch (err) {
        problems.push(`${p.id}: ${(err as Error).message}`);
      }
    }
    if (problems.length)
      throw new IntegrityError(`replica table block ${cidText}: no intact copy (${problems.join('; ')})`);
    throw new ManifestNotFoundError(`replica table block ${cidText} not found on any provider`);
  }

  async root(cid: string): Promise<TableRoot> {
    const v = dagJson.decode(await this.get(cid)) as TableRoot;
    if (v?.type !== TABLE_TYPE || !Array.isArray(v.pages))
      throw new IntegrityError(`block ${cid} is not a replica table root`);
    return v;
  }

  async page(cid: string): Promise<StewardReplica[]> {
    const v = dagJson.decode(await this.get(cid)) as TablePage;
    if (v?.type !== PAGE_TYPE || !Array.isArray(v.replicas))
      throw new IntegrityError(`block ${cid} is not a replica table page`);
    return v.replicas;
  }

  /** Store pages for `replicas` (split at `pageReplicas`), returning their root entries. */
  async putPages(replicas: StewardReplica[], pageReplicas: number, on?: StorageProvider[]): Promise<PageEntry[]> {
    const out: PageEntry[] = [];
    for (const reps of paginate(replicas, pageReplicas)) {
      const page: TablePage = { type: PAGE_TYPE, replicas: plain(reps) };
      const { cid, bytes } = encodeBlock(page);
      await this.put(cid, bytes, on);
      out.push(pageEntry(cid, reps));
    }
    return out;
  }

  async putRoot(
    meta: Omit<TableRoot, 'type' | 'version' | 'pages'>,
    pages: PageEntry[],
    on?: StorageProvider[],
  ): Promise<ReplicaTableSummary> {
    if (pages.length === 0) return EMPTY_TABLE;
    // Entries hold no undefined fields (pageEntry leaves absent ones out): dag-json takes them as they are.
    const root: TableRoot = { type: TABLE_TYPE, version: 1, ...meta, pages };
    const { cid, bytes } = encodeBlock(root);
    await this.put(cid, bytes, on);
    return summarize(cid.toString(), root);
  }

  /**
   * The table `root` with its pages `from`..`from + count` replaced by pages of `replicas`: the new
   * table and how many pages the replicas took.
   */
  async replacePages(
    root: TableRoot,
    from: number,
    count: number,
    replicas: StewardReplica[],
    pageReplicas: number,
    on?: StorageProvider[],
  ): Promise<{ table: ReplicaTableSummary; written: number }> {
    const fresh = await this.putPages(replicas, pageReplicas, on);
    const pages = [...root.pages.slice(0, from), ...fresh, ...root.pages.slice(from + count)];
    const { type: _t, version: _v, pages: _p, ...meta } = root;
    return { table: await this.putRoot(meta, pages, on), written: fresh.length };
  }

  /** A whole table from a list of replicas. */
  async build(
    meta: Omit<TableRoot, 'type' | 'version' | 'pages'>,
    replicas: StewardReplica[],
    on?: StorageProvider[],
  ): Promise<ReplicaTableSummary> {
    return this.putRoot(meta, await this.putPages(replicas, meta.pageReplicas, on), on);
  }

  /** Every replica of a table, page by page (each block checked against its CID). */
  async *replicas(tableCid: string | null): AsyncGenerator<StewardReplica[]> {
    if (!tableCid) return;
    const root = await this.root(tableCid);
    for (const p of root.pages) yield await this.page(p.cid.toString());
  }
}
