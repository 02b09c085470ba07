/**
 * Restore a dataset from its manifest CID: find the manifest on any provider, then stream the
 * shards the wanted files need (all of them, or only those holding the files under `paths`) and
 * write the files from the blocks as they arrive, and only once every file has matched move the
 * tree into the target. Paths that would escape the target are refused.
 *
 * Nothing is staged: the manifest's block index says where every block sits in its shard, so a
 * shard is read as ranged GETs of a few tens of MiB (several at once, a 1 GiB shard included),
 * and each block is checked as it passes: its bytes against its CID, its CAR framing (varint and
 * CID, the header) against what the index implies, so a replica that passes holds exactly the
 * piece. File bytes are the raw leaves in shard order, file after file (the manifest gives each
 * file's content range in each shard); each verified leaf is written at its offset in its file.
 * A file's sha256: a one-leaf file's is its leaf's digest, checked already; a larger file is
 * hashed on a hash thread (hash-pool.ts) from its written bytes, read back from the page cache in
 * order as the written prefix grows, so that this thread only checks blocks and writes (without
 * threads: hashed here as its leaves are written in order, the part written out of order read
 * back once at the end).
 * A read that fails (bad bytes or a broken stream) marks that replica bad for the shard and goes
 * on from the first unchecked block on the next replica: what was written was checked already.
 *
 * Bounded whatever the dataset's size: memory holds, per read in flight, its plan (the blocks of
 * a few tens of MiB), one block and the writes still out; plus one manifest page per list level.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { CID } from 'multiformats/cid';
import varint from 'varint';
import { RAW_CODE, SHA256_CODE } from '../pack/cids.js';
import { carHeader } from '../pack/shard-writer.js';
import {
  IntegrityError,
  ManifestInvalidError,
  ManifestNotFoundError,
  NoHealthyReplicaError,
  PathConflictError,
  PathEscapeError,
  PathNotInArchiveError,
  showPath,
  TargetNotEmptyError,
} from '../errors.js';
import {
  manifestFiles,
  parseCid,
  readManifestCar,
  shardBlocks,
  shardCount,
  ShardLookup,
  type Manifest,
  type ManifestShard,
} from '../manifest/manifest.js';
import type { RestoreSummary } from '../../shared/types.js';
import { verifiedStream } from '../providers/kit/verified-stream.js';
import type { EncryptionConfig } from '../../config/schema.js';
import { encryptedProviders } from '../encryption/keys.js';
import type { ChunkBuffers, PieceRef, StorageProvider } from '../providers/provider.js';
import type { FileRecord } from '../pack/packer.js';
import { HashPool, hashThreadsFor, type PoolFileHash } from './hash-pool.js';

export interface RestoreOptions {
  manifestCid: string;
  target: string;
  force: boolean;
  providers: StorageProvider[];
  signal?: AbortSignal;
  onProgress?: (p: { stage: string; shardsFetched: number; files: number; bytes: number }) => void;
  /**
   * Restore only these files and directories (archive paths, `/`-separated, relative to the
   * dataset root; a directory takes everything below it). Absent or empty: the whole dataset.
   */
  paths?: string[];
  /** Ranged reads in flight at once, over one shard or several (default RESTORE_PARALLEL_READS). */
  parallelReads?: number;
  /** Bytes of a shard one ranged read covers, at most (default RESTORE_READ_BYTES). */
  readBytes?: number;
  /** Threads that hash the larger files off the event loop (default: the cores but one, at least 1, up to 4; 0: none). */
  hashThreads?: number;
  /** The key-encryption key to read an encrypted dataset with (config `encryption`; none: only unencrypted datasets). */
  encryption?: EncryptionConfig;
}

export const RESTORE_PARALLEL_READS = 4;
export const RESTORE_READ_BYTES = 32 << 20;
/** Bytes one read may have written but not yet seen land, before it waits for its writes. */
const WRITE_AHEAD_BYTES = 8 << 20;
/** Bytes of a chunk buffer lent to a provider (ReadBuffers). */
const READ_CHUNK_BYTES = 1 << 20;
/** Chunk buffers one reader reuses: its writes ahead, the chunk it reads and a few in the stream. */
const READ_BUFFERS_PER_READER = WRITE_AHEAD_BYTES / READ_CHUNK_BYTES + 4;

export type { RestoreSummary };

/** Download a piece into `file`, checking its CAR CID; false when the bytes do not match. */
async function fetchVerified(
  p: StorageProvider,
  piece: PieceRef | { pieceCid: string; carCid: string; bytes: number },
  file: string,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const tmp = `${file}.partial`;
  try {
    // The temp file is renamed into place only once the stream has matched the piece's CAR CID.
    const checked = verifiedStream(p.readRange(piece, { signal }), piece, {
      provider: p.id,
      piece: piece.pieceCid,
    });
    await pipeline(checked, fs.createWriteStream(tmp, { highWaterMark: 4 << 20 }), { signal });
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    return IntegrityError.is(err) ? `corrupt: ${err.message}` : `read failed: ${(err as Error).message}`;
  }
  await fsp.rename(tmp, file);
  return undefined;
}

export function safeJoin(target: string, rel: string): string {
  const parts = rel.split('/');
  for (const part of parts) {
    if (part === '' || part === '.' || part === '..' || part.includes('\\') || part.includes('\0')) {
      throw new PathEscapeError(`refusing path ${showPath(rel)}: it would escape the restore target`);
    }
  }
  const out = path.resolve(target, ...parts);
  if (!out.startsWith(path.resolve(target) + path.sep))
    throw new PathEscapeError(`refusing path ${showPath(rel)}: outside ${showPath(target)}`);
  return out;
}

export async function locateManifest(
  manifestCid: string,
  providers: StorageProvider[],
  workDir: string,
  signal?: AbortSignal,
) {
  if (!parseCid(manifestCid)) throw new ManifestNotFoundError(`not a CID: ${JSON.stringify(manifestCid)}`);
  const file = path.join(workDir, 'manifest.car');
  const problems: string[] = [];
  for (const p of providers) {
    const ref = await p.locate(manifestCid, { signal }).catch((e: Error) => {
      problems.push(`${p.id}: ${e.message}`);
      return undefined;
    });
    if (!ref) continue;
    const bad = await fetchVerified(p, ref, file, signal);
    if (bad) {
      problems.push(`${p.id}: ${bad}`);
      continue;
    }
    return { ...(await readManifestCar(file, manifestCid)), piece: ref, providerId: p.id };
  }
  throw new ManifestNotFoundError(
    `manifest ${manifestCid} not found on any provider (${providers.map((p) => p.id).join(', ')})${problems.length ? `: ${problems.join('; ')}` : ''}`,
  );
}

/** An archive path as asked for: `./` prefixes and trailing slashes dropped; '' is the whole tree. */
export function normalizeArchivePath(p: string): string {
  let out = p.replace(/\\/g, '/');
  while (out.startsWith('./')) out = out.slice(2);
  out = out.replace(/\/+$/, '').replace(/^\/+/, '');
  return out === '.' ? '' : out;
}

function underAny(file: string, prefixes: string[]): number {
  return prefixes.findIndex((p) => p === '' || file === p || file.startsWith(`${p}/`));
}

/** Sorted, disjoint shard ranges [first, last] (files come in shard order, so this stays short). */
class ShardRanges {
  readonly ranges: [number, number][] = [];
  add(first: number, last: number): void {
    const top = this.ranges[this.ranges.length - 1];
    if (top && first <= top[1] + 1) top[1] = Math.max(top[1], last);
    else this.ranges.push([first, last]);
  }
  get last(): number {
    return this.ranges[this.ranges.length - 1]?.[1] ?? -1;
  }
  *[Symbol.iterator](): Generator<number> {
    for (const [a, b] of this.ranges) for (let s = a; s <= b; s++) yield s;
  }
}

/** What the reads share: the abort, the summary, the files in flight, the work still out. */
interface RestoreRun {
  signal: AbortSignal;
  summary: RestoreSummary;
  providers: StorageProvider[];
  /** Files with a handle open (closed on failure). */
  open: Set<RestoredFile>;
  /** Work not owned by a read (empty files, which no leaf writes). */
  pending: Set<Promise<void>>;
  /** Directories made in the work tree (cleared now and then: only a cache). */
  dirs: Set<string>;
  /** The threads that hash the larger files (absent: all hashed on this thread). */
  pool?: HashPool;
  fail(err: unknown): void;
  report(stage: string): void;
}

/** Files larger than this are hashed on a pool thread (when there is a pool), smaller ones here. */
const LOCAL_FILE_HASH_MAX = 1 << 20;
/** A pool thread is asked to hash a file on each time its written prefix grew by this much. */
const HASH_STEP_BYTES = 8 << 20;

/**
 * One file of the work tree as its verified leaves arrive: positional writes (leaves of one file
 * may come from reads running at once), and its sha256, computed in file order one of three ways:
 * - a file that is one leaf takes the leaf's digest, checked against its CID already;
 * - a larger file, when there are hash threads, is hashed on one of them from the bytes written,
 *   read back from the page cache as the written prefix grows (so this thread, which checks
 *   every block, never hashes it, and no leaf waits in memory for the ones before it);
 * - otherwise here: a leaf that continues the hashed prefix is hashed from memory as it is
 *   written; what was written out of order is read back once the last byte has landed.
 * Then the digest and size are checked.
 */
class RestoredFile {
  private fh?: Promise<fsp.FileHandle>;
  private readonly hash = crypto.createHash('sha256');
  private hashedTo = 0;
  private written = 0;
  /** The digest of the one leaf that is the whole file. */
  private whole?: Uint8Array;
  private pooled?: PoolFileHash;
  /** Bytes written from the start on, without a gap; writes that landed past a gap, by start. */
  private landedTo = 0;
  private readonly landed = new Map<number, number>();
  private postedTo = 0;
  private hashing: Promise<unknown> = Promise.resolve();
  private finished = false;

  constructor(
    readonly rec: FileRecord,
    readonly dest: string,
    private readonly run: RestoreRun,
  ) {
    if (run.pool && rec.size > LOCAL_FILE_HASH_MAX) this.pooled = run.pool.file(dest);
  }

  private open(): Promise<fsp.FileHandle> {
    return (this.fh ??= (async () => {
      const dir = path.dirname(this.dest);
      let fh: fsp.FileHandle;
      try {
        if (!this.run.dirs.has(dir)) {
          await fsp.mkdir(dir, { recursive: true });
          if (this.run.dirs.size > 10_000) this.run.dirs.clear();
          this.run.dirs.add(dir);
        }
        fh = await fsp.open(this.dest, 'wx+');
      } catch (err) {
        // The work tree holds only what this manifest wrote: a clash is two records for one path.
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') {
          throw new PathConflictError(
            `manifest lists ${showPath(this.rec.path)} twice, or as a file and as a directory`,
            { cause: err },
          );
        }
        throw err;
      }
      this.run.open.add(this);
      return fh;
    })());
  }

  /** Writes bytes checked against `digest` (their CID's sha2-256) at `at` (the parts are stream chunks, not reused). */
  async write(parts: Buffer[], length: number, at: number, digest: Uint8Array): Promise<void> {
    if (at === 0 && length === this.rec.size) this.whole = digest;
    else if (!this.pooled && at === this.hashedTo) {
      for (const p of parts) this.hash.update(p);
      this.hashedTo += length;
    }
    const fh = await this.open();
    let done = 0;
    while (done < length) {
      const rest = done === 0 ? parts : [Buffer.concat(parts).subarray(done)];
      const { bytesWritten } = await fh.writev(rest, at + done);
      done += bytesWritten;
    }
    this.written += length;
    if (this.written > this.rec.size)
      throw new IntegrityError(`more bytes written to ${showPath(this.rec.path)} than its ${this.rec.size}`);
    if (this.pooled) this.land(at, length);
    if (this.written === this.rec.size) await this.finish();
  }

  /** Records a write that landed; asks the hash thread for more once the prefix grew enough. */
  private land(at: number, length: number): void {
    let end = at + length;
    if (at !== this.landedTo) {
      this.landed.set(at, end);
      return;
    }
    for (let next = this.landed.get(end); next !== undefined; next = this.landed.get(end)) {
      this.landed.delete(end);
      end = next;
    }
    this.landedTo = end;
    if (end - this.postedTo >= HASH_STEP_BYTES && end < this.rec.size) {
      this.postedTo = end;
      this.hashing = this.pooled!.upTo(end);
      this.hashing.catch(() => {});
    }
  }

  /** Checks the file once every byte has landed (an empty file: at once), then closes it. */
  async finish(): Promise<void> {
    const fh = await this.open();
    const { size, sha256 } = this.rec;
    let sha: string;
    let hashed = size;
    if (this.whole) sha = Buffer.from(this.whole).toString('hex');
    else if (this.pooled) {
      await this.hashing;
      ({ sha256: sha, bytes: hashed } = await this.pooled.finish(size));
    } else {
      if (this.hashedTo < size) {
        const buf = Buffer.allocUnsafe(Math.min(4 << 20, size - this.hashedTo));
        for (let at = this.hashedTo; at < size;) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - at), at);
          if (bytesRead === 0) throw new IntegrityError(`${showPath(this.rec.path)} is short on disk`);
          this.hash.update(buf.subarray(0, bytesRead));
          at += bytesRead;
        }
      }
      sha = this.hash.digest('hex');
    }
    this.finished = true;
    if (sha !== sha256 || this.written !== size || hashed !== size) {
      throw new IntegrityError(
        `file ${showPath(this.rec.path)} restored with sha256 ${sha} (${this.written} bytes written, ${hashed} read back), manifest says ${sha256} (${size} bytes)`,
      );
    }
    // Seconds, rounded to the nearest ms: a Date can land 1 ms early after float conversion.
    const t = (this.rec.mtimeMs + 0.5) / 1000;
    await fh.utimes(t, t);
    await this.close();
    this.run.summary.files++;
    this.run.summary.bytes += size;
    this.run.report('write');
  }

  async close(): Promise<void> {
    if (!this.finished) this.pooled?.drop();
    if (!this.run.open.delete(this)) return;
    await (await this.fh!).close();
  }
}

/** One block of a planned read: where its section sits in the CAR and what it must be. */
interface PlannedBlock {
  /** CAR offset of the block's section (its varint). */
  section: number;
  length: number;
  cid: CID;
  /** The section's framing the block index implies: varint(CID + data length) ‖ CID. */
  prefix: Buffer;
  /** The file this raw leaf belongs to (absent: not a leaf, or a file not restored) and where in it. */
  file?: RestoredFile;
  fileAt: number;
}

/** One ranged read of a shard: contiguous sections, and the header when it starts the shard. */
interface PlannedRead {
  source: ShardSource;
  start: number;
  end: number;
  header?: Uint8Array;
  blocks: PlannedBlock[];
  /** First block not yet checked: a read resumed on another replica starts there. */
  next: number;
}

/** A shard's replicas as its reads use them: the first present and not found bad serves. */
class ShardSource {
  private readonly present = new Map<string, Promise<boolean>>();
  private readonly bad = new Map<string, string>();
  private readonly served = new Set<string>();

  constructor(
    readonly shard: ManifestShard,
    private readonly run: RestoreRun,
  ) {}

  async provider(): Promise<StorageProvider> {
    for (const p of this.run.providers) {
      if (this.bad.has(p.id)) continue;
      let ok = this.present.get(p.id);
      if (!ok) {
        ok = p.status(this.shard, { signal: this.run.signal }).then(
          (s) => s.present,
          () => false,
        );
        this.present.set(p.id, ok);
      }
      if (await ok) return p;
      this.run.signal.throwIfAborted();
    }
    const bad = [...this.bad].map(([id, why]) => `${id} ${why}`);
    throw new NoHealthyReplicaError(
      `no healthy replica of shard ${this.shard.index} [piece=${this.shard.pieceCid}]${bad.length ? `; bad: ${bad.join('; ')}` : ''}`,
    );
  }

  markBad(p: StorageProvider, err: unknown): void {
    if (this.bad.has(p.id)) return;
    const reason = IntegrityError.is(err) ? `corrupt: ${err.message}` : `read failed: ${(err as Error).message}`;
    this.bad.set(p.id, reason);
    this.run.summary.badReplicas.push({ providerId: p.id, pieceCid: this.shard.pieceCid, reason });
  }

  markServed(p: StorageProvider): void {
    if (this.served.size === 0) this.run.summary.shards++;
    if (this.served.has(p.id)) return;
    this.served.add(p.id);
    this.run.summary.sources[p.id] = (this.run.summary.sources[p.id] ?? 0) + 1;
  }
}

/**
 * The file records walked in step with the raw leaves of the shards read, both in pack order:
 * the leaves of a shard are its files' contents, file after file (a file's range in a shard is
 * in its record when it spans shards). Leaves that the records do not account for exactly are a
 * manifest that does not describe its shards.
 */
class FileCursor {
  private head?: { rec: FileRecord; file?: RestoredFile; at: number; shard: number; left: number };
  private done = false;

  constructor(
    private readonly records: Iterator<FileRecord>,
    private readonly restore: (rec: FileRecord) => RestoredFile | undefined,
    private readonly run: RestoreRun,
  ) {}

  private peek() {
    if (!this.head && !this.done) {
      const r = this.records.next();
      if (r.done) this.done = true;
      else this.head = { rec: r.value, file: this.restore(r.value), at: 0, shard: -1, left: 0 };
    }
    return this.head;
  }

  /** Done with the head record: an empty file is written now; any other must have had all its bytes. */
  private pass(): void {
    const e = this.head!;
    this.head = undefined;
    if (!e.file) return;
    if (e.at !== e.rec.size)
      throw new ManifestInvalidError(`manifest leaves ${showPath(e.rec.path)} short of its size in its shards`);
    if (e.rec.size === 0) {
      const p = e.file.finish().catch((err: unknown) => this.run.fail(err));
      this.run.pending.add(p);
      void p.finally(() => this.run.pending.delete(p));
    }
  }

  /** Passes the records of files whose last shard is before `s`. */
  skipBefore(s: number): void {
    for (let e = this.peek(); e && e.rec.shards[1] < s; e = this.peek()) this.pass();
  }

  /** The file and offset of the next raw leaf of shard `s`, `length` bytes long. */
  take(s: number, length: number): { file?: RestoredFile; fileAt: number } {
    for (;;) {
      const e = this.peek();
      if (!e || e.rec.shards[0] > s) throw new ManifestInvalidError(`a leaf of shard ${s} belongs to no file record`);
      if (e.shard !== s) {
        // The file's content in this shard: its range there, or all of it for a one-shard file.
        const r = e.rec.ranges?.find((x) => x.shard === s);
        const [offset, left] = r ? [r.offset, r.length] : e.rec.ranges ? [e.at, 0] : [0, e.rec.size];
        // A file not restored may be met in the middle (its earlier shards were not read).
        if (offset !== e.at && e.file)
          throw new ManifestInvalidError(`manifest range of ${showPath(e.rec.path)} in shard ${s} does not follow on`);
        e.at = offset;
        e.shard = s;
        e.left = left;
      }
      if (e.left > 0) {
        if (length > e.left) throw new ManifestInvalidError(`a leaf of shard ${s} overruns ${showPath(e.rec.path)}`);
        const at = e.at;
        e.at += length;
        e.left -= length;
        return { ...(e.file ? { file: e.file } : {}), fileAt: at };
      }
      // Nothing left here: no later leaf of this shard can belong to a file that goes on after it.
      if (e.rec.shards[1] > s) throw new ManifestInvalidError(`a leaf of shard ${s} belongs to no file record`);
      this.pass();
    }
  }

  /** After the last shard read: passes the records of the files that ended in it (trailing empty files). */
  finish(last: number): void {
    for (let e = this.peek(); e && e.rec.shards[0] <= last; e = this.peek()) this.pass();
  }
}

/**
 * The file records, each checked against the shard list before it is used: its shards inside the
 * list (an empty file may come before the first shard), its ranges inside its shards, in order,
 * following on from 0 and adding up to its size.
 */
function* checkedFiles(records: Iterable<FileRecord>, total: number): Generator<FileRecord> {
  for (const rec of records) {
    const [first, last] = rec.shards;
    const bad = (why: string) => new ManifestInvalidError(`manifest record of ${showPath(rec.path)} ${why}`);
    if (!(first <= last && last < total && first >= (rec.size === 0 ? -1 : 0)))
      throw bad(`names shards ${first}..${last}, outside the archive's ${total}`);
    if (rec.ranges) {
      let at = 0;
      let prev = first - 1;
      for (const r of rec.ranges) {
        if (r.shard <= prev || r.shard > last || r.offset !== at || r.length < 0)
          throw bad(
            `has a range in shard ${r.shard} at ${r.offset} that does not follow on inside shards ${first}..${last}`,
          );
        prev = r.shard;
        at += r.length;
      }
      if (at !== rec.size) throw bad(`has ranges of ${at} bytes for its ${rec.size}`);
    }
    yield rec;
  }
}

function framing(cid: CID, length: number): Buffer {
  return Buffer.concat([Buffer.from(varint.encode(cid.bytes.length + length)), cid.bytes]);
}

/**
 * The ranged reads of the wanted shards in order, each at most `readBytes` of whole sections,
 * planned lazily (a worker asks for the next one when it is free) from the block index and the
 * file records, which are checked against each other and the shard record on the way.
 */
function* planReads(o: {
  manifest: Manifest;
  pages: Parameters<typeof shardBlocks>[1];
  wanted: ShardRanges;
  files: FileCursor;
  readBytes: number;
  run: RestoreRun;
}): Generator<PlannedRead> {
  const lookup = new ShardLookup(o.manifest, o.pages);
  for (const s of o.wanted) {
    const shard = lookup.get(s);
    const source = new ShardSource(shard, o.run);
    o.files.skipBefore(s);
    const root = parseCid(shard.rootCid);
    if (!root) throw new ManifestInvalidError(`shard ${s} has root ${JSON.stringify(shard.rootCid)}, not a CID`);
    const header = carHeader(root);
    let read: PlannedRead | undefined;
    let at = header.length;
    let count = 0;
    for (const [data, length, text] of shardBlocks(o.manifest, o.pages, shard)) {
      const cid = parseCid(text);
      if (!cid) throw new ManifestInvalidError(`shard ${s} block index holds ${JSON.stringify(text)}, not a CID`);
      const prefix = framing(cid, length);
      const section = data - prefix.length;
      if (section !== at)
        throw new ManifestInvalidError(
          `shard ${s} block index: block ${count} at ${data}, expected ${at + prefix.length}`,
        );
      const { file, fileAt } =
        cid.code === RAW_CODE && length > 0 ? o.files.take(s, length) : { file: undefined, fileAt: 0 };
      if (read && data + length - read.start > o.readBytes) {
        yield read;
        read = undefined;
      }
      read ??= { source, start: count === 0 ? 0 : section, end: section, blocks: [], next: 0 };
      if (count === 0) read.header = header;
      read.blocks.push({ section, length, cid, prefix, ...(file ? { file } : {}), fileAt });
      at = read.end = data + length;
      count++;
    }
    if (count !== shard.blocks || at !== shard.carBytes) {
      throw new ManifestInvalidError(
        `shard ${s} block index lists ${count} blocks ending at ${at}; the shard has ${shard.blocks} in ${shard.carBytes} bytes`,
      );
    }
    if (read) yield read;
  }
  o.files.finish(o.wanted.last);
}

/**
 * The chunk buffers one reader lends its provider (ChunkBuffers), reused: a chunk's buffer goes
 * back to the free list only when nothing holds any part of it (the reader's current chunk, a
 * part being compared or hashed, a part whose write has not landed). Up to `max` buffers are
 * tracked; past that, or for a chunk it never lent, it allocates and forgets, as a stream would.
 */
export class ReadBuffers implements ChunkBuffers {
  private readonly free: Buffer[] = [];
  private readonly lent = new Map<ArrayBufferLike, { buf: Buffer; holds: number }>();
  /** Buffers handed out again (the tests read it). */
  reused = 0;

  constructor(
    private readonly bytes = READ_CHUNK_BYTES,
    private readonly max = READ_BUFFERS_PER_READER,
  ) {}

  take(): Uint8Array {
    const again = this.free.pop();
    if (again) {
      this.reused++;
      this.lent.get(again.buffer)!.holds = 1;
      return again;
    }
    const buf = Buffer.allocUnsafeSlow(this.bytes);
    if (this.lent.size < this.max) this.lent.set(buf.buffer, { buf, holds: 1 });
    return buf;
  }

  give(buf: Uint8Array): void {
    this.release(buf);
  }

  /** One more holder of the buffer under `part`. */
  hold(part: Uint8Array): void {
    const e = this.lent.get(part.buffer);
    if (e) e.holds++;
  }

  /** One holder fewer; at none, the buffer is free for the next chunk. */
  release(part: Uint8Array): void {
    const e = this.lent.get(part.buffer);
    if (!e || e.holds <= 0) return;
    if (--e.holds === 0) this.free.push(e.buf);
  }
}

/**
 * Pulls exact byte counts off a stream as views of its chunks (no copy). Every part `take` returns
 * holds its chunk's buffer (when it is one of the lent ones) until `done` is called for it.
 */
class ChunkReader {
  private readonly it: AsyncIterator<Uint8Array>;
  private chunk: Buffer = Buffer.alloc(0);
  private at = 0;

  constructor(
    src: AsyncIterable<Uint8Array>,
    private readonly buffers: ReadBuffers,
  ) {
    this.it = src[Symbol.asyncIterator]();
  }

  async take(n: number): Promise<Buffer[]> {
    const out: Buffer[] = [];
    while (n > 0) {
      if (this.at === this.chunk.length) {
        this.buffers.release(this.chunk);
        this.chunk = Buffer.alloc(0);
        const r = await this.it.next();
        if (r.done) {
          this.done(out);
          throw new IntegrityError('the piece ends early');
        }
        const c = r.value;
        this.chunk = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
        this.at = 0;
        continue;
      }
      const k = Math.min(n, this.chunk.length - this.at);
      const part = this.chunk.subarray(this.at, this.at + k);
      this.buffers.hold(part);
      out.push(part);
      this.at += k;
      n -= k;
    }
    return out;
  }

  /** The caller is done with these parts (from `take`): their buffers may be reused. */
  done(parts: readonly Buffer[]): void {
    for (const p of parts) this.buffers.release(p);
  }

  /** Fails when the stream holds more than was taken. */
  async end(): Promise<void> {
    let extra = this.chunk.length - this.at;
    for (let r = await this.it.next(); !r.done && extra === 0; r = await this.it.next()) {
      extra += r.value.byteLength;
      this.buffers.release(r.value);
    }
    if (extra > 0) throw new IntegrityError('the piece goes on past its end');
  }

  async close(): Promise<void> {
    this.buffers.release(this.chunk);
    this.chunk = Buffer.alloc(0);
    await this.it.return?.();
  }
}

const equalParts = (parts: Buffer[], want: Uint8Array): boolean =>
  (parts.length === 1 ? parts[0]! : Buffer.concat(parts)).equals(want);

/** Bytes written by one read whose writes have not landed yet, and a wait for fewer. */
class WriteQueue {
  bytes = 0;
  private wake?: () => void;

  add(p: Promise<void>, n: number, fail: (err: unknown) => void): void {
    this.bytes += n;
    void p.catch(fail).finally(() => {
      this.bytes -= n;
      this.wake?.();
    });
  }

  async below(limit: number): Promise<void> {
    while (this.bytes > limit) await new Promise<void>((r) => (this.wake = r));
  }
}

/** Streams one planned read, checking every byte and writing the leaves, from `read.next` on. */
async function consume(p: StorageProvider, read: PlannedRead, run: RestoreRun, buffers: ReadBuffers): Promise<void> {
  const from = read.next === 0 ? read.start : read.blocks[read.next]!.section;
  const r = new ChunkReader(
    p.readRange(read.source.shard, { offset: from, length: read.end - from, signal: run.signal, buffers }),
    buffers,
  );
  const writes = new WriteQueue();
  /** Whether `parts` (from r.take) equal `want`; either way they are done with. */
  const matches = (parts: Buffer[], want: Uint8Array): boolean => {
    const ok = equalParts(parts, want);
    r.done(parts);
    return ok;
  };
  try {
    if (read.next === 0 && read.header && !matches(await r.take(read.header.length), read.header))
      throw new IntegrityError('the CAR header is not the one the manifest implies');
    for (; read.next < read.blocks.length; read.next++) {
      const b = read.blocks[read.next]!;
      if (!matches(await r.take(b.prefix.length), b.prefix))
        throw new IntegrityError(`the framing of block ${b.cid} is not the one the block index implies`);
      const parts = await r.take(b.length);
      const h = crypto.createHash('sha256');
      for (const x of parts) h.update(x);
      if (b.cid.multihash.code !== SHA256_CODE || !h.digest().equals(b.cid.multihash.digest)) {
        r.done(parts);
        throw new IntegrityError(`block ${b.cid} does not match its hash`);
      }
      if (b.file) {
        // The parts are held until their write has landed (or failed), then their buffers go back.
        const landed = b.file.write(parts, b.length, b.fileAt, b.cid.multihash.digest).finally(() => r.done(parts));
        writes.add(landed, b.length, run.fail);
        if (writes.bytes > WRITE_AHEAD_BYTES) await writes.below(WRITE_AHEAD_BYTES);
      } else {
        r.done(parts);
      }
      run.signal.throwIfAborted();
    }
    await r.end();
  } finally {
    await r.close().catch(() => {});
    await writes.below(0);
  }
}

/** One planned read from the first replica that passes, going on from the first unchecked block. */
async function runRead(read: PlannedRead, run: RestoreRun, buffers: ReadBuffers): Promise<void> {
  for (;;) {
    run.signal.throwIfAborted();
    const p = await read.source.provider();
    try {
      await consume(p, read, run, buffers);
      read.source.markServed(p);
      run.report('fetch');
      return;
    } catch (err) {
      run.signal.throwIfAborted();
      read.source.markBad(p, err);
    }
  }
}

export async function restoreDataset(o: RestoreOptions): Promise<RestoreSummary> {
  const target = path.resolve(o.target);
  const prefixes = o.paths?.length ? [...new Set(o.paths.map(normalizeArchivePath))] : undefined;
  const existing = await fsp.readdir(target).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    if (e.code === 'ENOTDIR') throw new TargetNotEmptyError(`restore target is a file: ${showPath(target)}`);
    throw e;
  });
  const foreign = existing.filter((n) => !n.startsWith('.provenant-restore-'));
  if (foreign.length > 0 && !o.force) {
    throw new TargetNotEmptyError(`restore target is not empty: ${showPath(target)} (use --force to restore into it)`);
  }
  await fsp.mkdir(target, { recursive: true });
  const work = path.join(target, `.provenant-restore-${o.manifestCid.slice(-16)}`);
  await fsp.rm(work, { recursive: true, force: true });
  await fsp.mkdir(work, { recursive: true });
  const progress = o.onProgress ?? (() => {});
  // Our own signal, so that the first failure stops the other reads.
  const abort = new AbortController();
  const onAbort = () => abort.abort(o.signal?.reason);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  if (o.signal?.aborted) onAbort();
  let run: RestoreRun | undefined;
  try {
    const { manifest, pages, piece } = await locateManifest(o.manifestCid, o.providers, work, abort.signal);
    const total = shardCount(manifest);
    // 1. Which files, hence which shards (a partial restore reads the file pages once for this).
    const wanted = new ShardRanges();
    let expectedFiles = manifest.totals.files;
    if (prefixes) {
      const hit = new Set<number>();
      expectedFiles = 0;
      for (const f of checkedFiles(manifestFiles(manifest, pages), total)) {
        const k = underAny(f.path, prefixes);
        if (k < 0) continue;
        // Every prefix that matches counts as found, not only the first.
        prefixes.forEach((p, j) => (p === '' || f.path === p || f.path.startsWith(`${p}/`)) && hit.add(j));
        wanted.add(f.shards[0], f.shards[1]);
        expectedFiles++;
      }
      const missing = prefixes.filter((_, j) => !hit.has(j));
      if (missing.length > 0) {
        throw new PathNotInArchiveError(
          `not in the archive ${o.manifestCid}: ${missing.map((p) => showPath(p)).join(', ')}`,
        );
      }
    } else if (total > 0) {
      wanted.add(0, total - 1);
    }
    const summary: RestoreSummary = {
      manifestCid: o.manifestCid,
      datasetId: manifest.datasetId,
      rootCid: manifest.root,
      target,
      files: 0,
      bytes: 0,
      shards: 0,
      shardsTotal: total,
      ...(prefixes ? { paths: prefixes } : {}),
      sources: {},
      badReplicas: [],
    };
    const hashThreads = o.hashThreads ?? hashThreadsFor();
    const tree = path.join(work, 'tree');
    await fsp.mkdir(tree);
    let failure: unknown;
    // Encrypted shards are read through the dataset's data key, checked as ciphertext (each chunk
    // authenticated) and then as plaintext, like any shard: a missing or wrong key stops here.
    const providers = manifest.encryption
      ? encryptedProviders(o.providers, manifest.encryption, o.encryption ?? {}, { plain: new Set([piece.pieceCid]) })
      : o.providers;
    const r: RestoreRun = (run = {
      signal: abort.signal,
      summary,
      providers,
      open: new Set(),
      pending: new Set(),
      dirs: new Set(),
      ...(hashThreads > 0 && total > 0 ? { pool: new HashPool(hashThreads) } : {}),
      fail: (err) => {
        failure ??= err;
        abort.abort(err);
      },
      report: (stage) => progress({ stage, shardsFetched: summary.shards, files: summary.files, bytes: summary.bytes }),
    });
    // 2. Stream the wanted shards, a few ranged reads at once, writing the files as their leaves pass.
    const files = new FileCursor(
      checkedFiles(manifestFiles(manifest, pages), total),
      (rec) =>
        prefixes && underAny(rec.path, prefixes) < 0 ? undefined : new RestoredFile(rec, safeJoin(tree, rec.path), r),
      r,
    );
    const plan = planReads({ manifest, pages, wanted, files, readBytes: o.readBytes ?? RESTORE_READ_BYTES, run: r });
    const worker = async () => {
      // Each reader lends its provider the same few chunk buffers, read after read.
      const buffers = new ReadBuffers();
      while (!abort.signal.aborted) {
        let next: IteratorResult<PlannedRead>;
        try {
          next = plan.next();
        } catch (err) {
          return r.fail(err);
        }
        if (next.done) return;
        await runRead(next.value, r, buffers).catch(r.fail);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, o.parallelReads ?? RESTORE_PARALLEL_READS) }, worker));
    while (r.pending.size > 0) await Promise.allSettled([...r.pending]);
    if (abort.signal.aborted) throw failure ?? abort.signal.reason;
    if (summary.files !== expectedFiles) {
      throw new IntegrityError(`restored ${summary.files} files but the manifest lists ${expectedFiles}`);
    }
    // 3. Move into place.
    await moveInto(tree, target);
    return summary;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    if (run) await Promise.allSettled([...run.open].map((f) => f.close()));
    await run?.pool?.close();
    await fsp.rm(work, { recursive: true, force: true });
  }
}

/** Move the verified tree into the target: renames only, merging into existing directories. */
async function moveInto(from: string, to: string): Promise<void> {
  for (const d of await fsp.readdir(from, { withFileTypes: true })) {
    const src = path.join(from, d.name);
    const dst = path.join(to, d.name);
    if (d.isDirectory()) {
      const st = await fsp.lstat(dst).catch(() => undefined);
      if (st?.isDirectory()) {
        await moveInto(src, dst);
        continue;
      }
      if (st) await fsp.rm(dst, { recursive: true, force: true });
      await fsp.rename(src, dst);
    } else {
      const st = await fsp.lstat(dst).catch(() => undefined);
      if (st?.isDirectory()) await fsp.rm(dst, { recursive: true, force: true });
      await fsp.rename(src, dst);
    }
  }
}

export type { Manifest };
