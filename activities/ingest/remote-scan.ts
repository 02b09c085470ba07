/**
 * Scan a remote source (S3 prefix, HTTP URLs) into the same listing the local scan writes
 * (scan.ts), without fetching its bytes: the pack streams each object from the source itself
 * (packer.ts), so no host ever holds the dataset.
 *
 * A source lists its paths in byte order (S3's key order). The listing must be depth-first with
 * each directory's entries in byte order of their names, which differs wherever a name holds a
 * byte below '/' ("a-1/x" lists before "a/y", but the directory "a" comes before "a-1"). Sorting
 * the paths with '/' taken as the lowest byte gives exactly the depth-first order, so the paths
 * go through an external merge sort under that key: sorted runs of RUN_ENTRIES in memory, written
 * to disk, then merged. A million-object listing never sits in memory.
 *
 * The file line carries the object's ref (key or URL) in place of a path, and its ETag, so the
 * pack reads exactly the listed version (a changed object is a SourceChangedError).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { once } from 'node:events';
import { EmptyDatasetError } from '../errors.js';
import type { ListingLine } from './scan.js';
import { checkRelPath, PathOrder, type Source, type SourceEntry } from './sources.js';

/** Entries sorted in memory per run (about 200 bytes each). */
export const RUN_ENTRIES = 100_000;

export interface RemoteScanResult {
  files: number;
  dirs: number;
  bytes: number;
  /** Files whose size the source could not state before the transfer (the pack learns it). */
  unsized: number;
}

export interface RemoteScanOptions {
  signal?: AbortSignal;
  onProgress?: (p: { files: number; bytes: number }) => void;
  /** Entries per sorted run (tests lower it to exercise the merge). */
  runEntries?: number;
}

/** The depth-first sort key of a relative path: '/' sorts below every other byte. */
export function treeKey(rel: string): Buffer {
  const b = Buffer.from(rel);
  for (let i = 0; i < b.length; i++) if (b[i] === 0x2f) b[i] = 0;
  return b;
}

type Row = [path: string, ref: string, size: number, mtimeMs: number, etag?: string];

export async function scanRemote(
  source: Source,
  listingPath: string,
  o: RemoteScanOptions = {},
): Promise<RemoteScanResult> {
  const work = `${listingPath}.runs`;
  await fsp.rm(work, { recursive: true, force: true });
  await fsp.mkdir(work, { recursive: true });
  const runEntries = o.runEntries ?? RUN_ENTRIES;
  const order = new PathOrder();
  const runs: string[] = [];
  let rows: Row[] = [];
  let files = 0;
  let bytes = 0;
  let unsized = 0;
  const flushRun = async () => {
    if (rows.length === 0) return;
    const keyed = rows.map((r) => ({ k: treeKey(r[0]), r }));
    keyed.sort((a, b) => Buffer.compare(a.k, b.k));
    const file = path.join(work, `run-${runs.length}`);
    await fsp.writeFile(file, keyed.map(({ r }) => JSON.stringify(r)).join('\n') + '\n');
    runs.push(file);
    rows = [];
  };
  try {
    for await (const e of source.list(o.signal)) {
      checkRelPath(e.path, e.ref);
      order.add(e);
      const size = e.size ?? (await sizeFromGet(source, e, o.signal));
      if (size < 0) unsized++;
      else bytes += size;
      files++;
      rows.push([e.path, e.ref, size, Math.trunc(e.mtimeMs ?? 0), ...(e.etag ? [e.etag] : [])] as Row);
      if (rows.length >= runEntries) await flushRun();
      if (files % 1000 === 0) o.onProgress?.({ files, bytes });
    }
    if (files === 0) throw new EmptyDatasetError(`source has no files to archive: ${source.uri}`);
    await flushRun();
    const dirs = await writeListing(mergeRuns(runs), listingPath);
    o.onProgress?.({ files, bytes });
    return { files, dirs, bytes, unsized };
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

/**
 * A file whose HEAD said nothing (refused, or content-encoded): its GET's Content-Length, with the
 * body left unread. -1 when the GET does not state one either: the pack takes the bytes as they come.
 */
async function sizeFromGet(source: Source, e: SourceEntry, signal?: AbortSignal): Promise<number> {
  const opened = await source.open(e, signal);
  opened.body.destroy();
  return opened.size ?? -1;
}

/** K-way merge of the sorted runs (few: one per RUN_ENTRIES paths), smallest tree key first. */
async function* mergeRuns(runs: string[]): AsyncGenerator<Row> {
  const heads = runs.map((file) => {
    const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
    return { it: rl[Symbol.asyncIterator](), rl, row: undefined as Row | undefined, key: Buffer.alloc(0) as Buffer };
  });
  const advance = async (h: (typeof heads)[number]) => {
    for (;;) {
      const n = await h.it.next();
      if (n.done) {
        h.row = undefined;
        return;
      }
      if (!n.value) continue;
      h.row = JSON.parse(n.value) as Row;
      h.key = treeKey(h.row[0]);
      return;
    }
  };
  try {
    for (const h of heads) await advance(h);
    for (;;) {
      let best: (typeof heads)[number] | undefined;
      for (const h of heads) if (h.row && (!best || Buffer.compare(h.key, best.key) < 0)) best = h;
      if (!best) return;
      yield best.row!;
      await advance(best);
    }
  } finally {
    for (const h of heads) h.rl.close();
  }
}

/** Depth-first D/F/E lines from paths in tree order; returns the directories entered (root included). */
async function writeListing(rows: AsyncIterable<Row>, listingPath: string): Promise<number> {
  const tmp = `${listingPath}.tmp`;
  const out = fs.createWriteStream(tmp);
  const write = async (line: ListingLine) => {
    if (!out.write(JSON.stringify(line) + '\n')) await once(out, 'drain');
  };
  const stack: string[] = [];
  let dirs = 1;
  try {
    await write(['D', '']);
    for await (const [rel, ref, size, mtimeMs, etag] of rows) {
      const segs = rel.split('/');
      const name = segs.pop()!;
      let common = 0;
      while (common < stack.length && common < segs.length && stack[common] === segs[common]) common++;
      while (stack.length > common) {
        stack.pop();
        await write(['E']);
      }
      for (const seg of segs.slice(common)) {
        stack.push(seg);
        dirs++;
        await write(['D', seg]);
      }
      await write(etag ? ['F', name, size, mtimeMs, ref, etag] : ['F', name, size, mtimeMs, ref]);
    }
    while (stack.length > 0) {
      stack.pop();
      await write(['E']);
    }
    await write(['E']);
    out.end();
    await once(out, 'close');
    await fsp.rename(tmp, listingPath);
    return dirs;
  } catch (err) {
    out.destroy();
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}
