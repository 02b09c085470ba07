/**
 * The packer: listing → UnixFS blocks → CAR shards, with a checkpoint after every shard.
 *
 * Resume: a checkpoint records, at the moment a shard completed, which listing event was being
 * processed, how many of that event's blocks were already written, and the open directories'
 * entries. A resumed run replays that event without writing those blocks again (encoding is
 * deterministic), so finished shards are never rewritten and no shard is duplicated or torn.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { base32 } from 'multiformats/bases/base32';
import { CID } from 'multiformats/cid';
import {
  FileChangedError,
  IntegrityError,
  ProvenantError,
  showPath,
  SourceChangedError,
  SourceUnavailableError,
  UnreadableFileError,
  SourceNotFoundError,
  StagingMissingError,
} from '../errors.js';
import type { PackResult as WirePackResult } from '../../shared/types.js';
import { createSource } from '../ingest/mirror.js';
import type { ListingLine } from '../ingest/scan.js';
import type { RemoteSource } from '../../shared/source.js';
import { RAW_CODE } from './cids.js';
import { ShardWriter, type ShardInfo } from './shard-writer.js';
import { StagingWindow } from './staging-window.js';
import { writeStrategyFor, type WriteChoice } from './write-strategy.js';
import { CHUNK_BYTES, encodeDirectory, FileBuilder, rawLeafCid, type Block, type DirEntry } from './unixfs.js';

export interface PackOptions {
  /** The local tree's root (unused with `remote`). */
  sourceRoot: string;
  /** A remote source to stream each file from (the listing's src is the object's key or URL). */
  remote?: RemoteSource;
  listingPath: string;
  /** The dataset's staging directory (shards, checkpoint, files.ndjson). */
  dir: string;
  shardBytes: number;
  /** Extra copies of each shard to write while packing, for providers on this machine (see shard-hasher.ts). */
  twins?: number;
  /** Direct I/O for shard files (true / false); undefined = the faster way, measured (write-strategy.ts). */
  directIo?: boolean;
  /** The write strategy already chosen for `dir` (packInThread chooses it once per process). */
  io?: WriteChoice;
  /** UnixFS leaf size (default CHUNK_BYTES, 1 MiB, as ipfs-car). */
  chunkBytes?: number;
  /** Shards staged at most: shard k + W opens once shards ≤ k are replicated and gone (staging-window.ts). */
  stagingWindowShards?: number;
}

export interface FileRecord {
  path: string;
  size: number;
  mtimeMs: number;
  sha256: string;
  cid: string;
  /** First and last shard holding this file's blocks. */
  shards: [number, number];
  /** Content byte ranges per shard, only for files split across shards. */
  ranges?: { shard: number; offset: number; length: number }[];
}

/** The wire result (shared/types.ts), plus how this run wrote its shard files. */
export interface PackResult extends WirePackResult {
  /** How this run wrote its shard files, and the probe's figures (absent in results of older versions). */
  io?: WriteChoice;
}

interface OpenDir {
  name: string;
  entries: DirEntry[];
}

interface Checkpoint {
  version: 1;
  shards: ShardInfo[];
  event: number;
  skipBlocks: number;
  dirs: { name: string; entries: [string, string, number][] }[];
  filesBytes: number;
  files: number;
  bytes: number;
  eventFirstShard: number;
  eventRanges: { shard: number; offset: number; length: number }[];
  done?: PackResult;
}

export interface PackProgress {
  shardsDone: number;
  files: number;
  bytes: number;
  /** The shard that just closed (durable, in the checkpoint), on the report that announces it. */
  closed?: ShardInfo;
}

/**
 * `cid.toString()` for our (v1) CIDs, without the string cache multiformats keeps on each CID:
 * the entries of an open directory stay in memory, and that cache would more than double them.
 */
const cidString = (cid: CID): string => base32.encode(cid.bytes);

export const CHECKPOINT = 'pack-checkpoint.json';
export const FILES = 'files.ndjson';
const FILES_FLUSH_BYTES = 1 << 20;
/** Files up to this size are read in one call (and copied into the shard buffer). */
const SMALL_FILE_BYTES = 64 * 1024;

function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  fs.writeSync(fd, JSON.stringify(value));
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}

export function readCheckpoint(dir: string): Checkpoint | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, CHECKPOINT), 'utf8')) as Checkpoint;
  } catch {
    return undefined;
  }
}

export function readShards(dir: string): ShardInfo[] {
  const cp = readCheckpoint(dir);
  if (!cp?.done) throw new StagingMissingError(`no finished pack in ${showPath(dir)}`);
  return cp.shards;
}

export async function runPack(
  opts: PackOptions,
  onProgress: (p: PackProgress) => void = () => {},
): Promise<PackResult> {
  if (!fs.existsSync(opts.listingPath)) throw new StagingMissingError(`listing missing: ${showPath(opts.listingPath)}`);
  fs.mkdirSync(opts.dir, { recursive: true });
  const cp = readCheckpoint(opts.dir);
  if (cp?.done) return cp.done;
  const io = opts.io ?? (await writeStrategyFor(opts.dir, { direct: opts.directIo }));

  // Drop anything a killed run left behind past the checkpoint.
  const kept = cp?.shards.length ?? 0;
  for (const f of fs.readdirSync(opts.dir)) {
    const m = /^shard-(\d+)\.car(\.idx|\.twin\d+)?(\.partial)?$/.exec(f);
    if (m && (m[3] || Number(m[1]) >= kept)) fs.rmSync(path.join(opts.dir, f), { force: true });
  }
  const filesPath = path.join(opts.dir, FILES);
  if (cp) fs.truncateSync(filesPath, cp.filesBytes);
  else fs.writeFileSync(filesPath, '');
  const filesFd = fs.openSync(filesPath, 'a');
  // files.ndjson lines are batched into large writes; flushed before every checkpoint.
  let filesPending: string[] = [];
  let filesPendingBytes = 0;
  const flushFiles = () => {
    if (filesPending.length === 0) return;
    const buf = Buffer.from(filesPending.join(''));
    filesPending = [];
    filesPendingBytes = 0;
    let off = 0;
    while (off < buf.length) off += fs.writeSync(filesFd, buf, off, buf.length - off);
  };

  const shards: ShardInfo[] = cp ? [...cp.shards] : [];
  const stack: OpenDir[] = cp
    ? cp.dirs.map((d) => ({
        name: d.name,
        entries: d.entries.map(([name, cid, dag]) => ({ name, cid: CID.parse(cid), dagByteLength: dag })),
      }))
    : [];
  let files = cp?.files ?? 0;
  let bytes = cp?.bytes ?? 0;
  let filesBytes = cp?.filesBytes ?? 0;
  const resumeEvent = cp?.event ?? -1;
  let skip = cp?.skipBlocks ?? 0;

  // Per-event state, captured into the checkpoint when a shard completes mid-event.
  let eventIndex = -1;
  let eventWritten = 0;
  let eventFirstShard = -1;
  let eventRanges: { shard: number; offset: number; length: number }[] = [];
  let carBytes = shards.reduce((n, s) => n + s.carBytes, 0);

  /** The resume point at the moment a shard closes; written out once that shard is durable. */
  const snapshot = (): Omit<Checkpoint, 'shards'> => {
    flushFiles();
    return {
      version: 1,
      event: eventIndex,
      skipBlocks: eventWritten,
      dirs: stack.map((d) => ({
        name: d.name,
        entries: d.entries.map((e) => [e.name, cidString(e.cid), e.dagByteLength]),
      })),
      filesBytes,
      files,
      bytes,
      eventFirstShard,
      eventRanges: eventRanges.map((r) => ({ ...r })),
    };
  };
  const onShard = (info: ShardInfo, at: Omit<Checkpoint, 'shards'>) => {
    shards.push(info);
    carBytes += info.carBytes;
    fs.fsyncSync(filesFd);
    const checkpoint: Checkpoint = { ...at, shards };
    writeJsonAtomic(path.join(opts.dir, CHECKPOINT), checkpoint);
    onProgress({ shardsDone: shards.length, files, bytes, closed: info });
  };
  const writer = new ShardWriter(opts.dir, opts.shardBytes, shards.length, onShard, snapshot, {
    twins: opts.twins,
    direct: io.strategy === 'direct',
  });
  if (opts.stagingWindowShards) {
    const window = new StagingWindow(
      opts.dir,
      opts.stagingWindowShards,
      opts.twins ?? 0,
      (i) => shards[i]!,
      (closed) => onProgress({ shardsDone: shards.length, files, bytes, closed }),
    );
    writer.beforeOpen = (next) => {
      // The shards waited on must be durable and announced before their copies can be made.
      writer.reportThrough(next - window.shards);
      window.waitBefore(next);
    };
  }

  /** Returns the shard the block went to, or -1 when it was already written before a resume. */
  const emit = (block: Block): number => {
    if (skip > 0) {
      skip--;
      return -1;
    }
    if (writer.wouldOverflow(block.cid, block.bytes)) writer.close();
    const shard = writer.write(block.cid, block.bytes);
    eventWritten++;
    if (eventFirstShard < 0) eventFirstShard = shard;
    return shard;
  };

  /** Leaf size: ipfs-car's 1 MiB unless the config asks for smaller leaves (scale tests). */
  const chunkBytes = opts.chunkBytes ?? CHUNK_BYTES;
  const chunk = Buffer.allocUnsafe(Math.max(chunkBytes, SMALL_FILE_BYTES) + 1);
  /** Path of the open directory below the root (reset whenever the stack changes). */
  let openDirPath: string | undefined;
  const dirPath = () =>
    (openDirPath ??= stack
      .slice(1)
      .map((d) => d.name)
      .join('/'));

  /** Close a file's DAG, link it into its directory and record it (files.ndjson); counts it. */
  const recordFile = async (
    name: string,
    rel: string,
    size: number,
    mtimeMs: number,
    sha: crypto.Hash | undefined,
    builder: FileBuilder,
  ): Promise<void> => {
    const link = await builder.close();
    stack[stack.length - 1]!.entries.push({ name, cid: link.cid, dagByteLength: link.dagByteLength });
    const lastShard = writer.open ? writer.nextIndex : writer.nextIndex - 1;
    const rec: FileRecord = {
      path: rel,
      size,
      mtimeMs,
      sha256: sha ? sha.digest('hex') : Buffer.from(link.cid.multihash.digest).toString('hex'),
      cid: cidString(link.cid),
      shards: [eventFirstShard < 0 ? lastShard : eventFirstShard, lastShard],
    };
    if (rec.shards[0] !== rec.shards[1]) rec.ranges = eventRanges;
    const line = JSON.stringify(rec) + '\n';
    filesPending.push(line);
    const lineBytes = Buffer.byteLength(line);
    filesBytes += lineBytes;
    filesPendingBytes += lineBytes;
    if (filesPendingBytes >= FILES_FLUSH_BYTES) flushFiles();
    files++;
    bytes += size;
  };

  /** The leaf-range bookkeeping and the builder for one file's blocks (leaves come in file order). */
  const fileBuilder = () => {
    const ranges = eventRanges;
    let leafCursor = 0;
    const leafRange = (shard: number, length: number) => {
      // Leaves come in file order: each extends the content range of the shard it landed in.
      const leafOffset = leafCursor;
      leafCursor += length;
      if (shard < 0) return;
      const last = ranges[ranges.length - 1];
      if (last && last.shard === shard) last.length += length;
      else ranges.push({ shard, offset: leafOffset, length });
    };
    const builder = new FileBuilder((b) => {
      const shard = emit(b);
      if (b.cid.code === RAW_CODE && b.bytes.length > 0) leafRange(shard, b.bytes.length);
    });
    return { builder, leafRange };
  };

  const packFile = async (name: string, size: number, mtimeMs: number, src: string): Promise<void> => {
    const rel = stack.length > 1 ? `${dirPath()}/${name}` : name;
    const abs = path.join(opts.sourceRoot, src);
    let fd: number;
    try {
      fd = fs.openSync(abs, 'r');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EACCES' || e.code === 'EPERM')
        throw new UnreadableFileError(`cannot read ${showPath(rel)}: permission denied`, { cause: e });
      if (e.code === 'ENOENT')
        throw new FileChangedError(`file disappeared after the scan: ${showPath(rel)}`, { cause: e });
      throw e;
    }
    try {
      const changed = (why: string) =>
        new FileChangedError(`file changed while being archived (${why}): ${showPath(rel)}`);
      const before = fs.fstatSync(fd);
      if (before.size !== size || Math.trunc(before.mtimeMs) !== mtimeMs)
        throw changed('size or mtime differs from the scan');
      // A file of one chunk (or none) is its own raw leaf: the leaf's CID already holds its sha256.
      const sha = size > chunkBytes ? crypto.createHash('sha256') : undefined;
      let offset = 0;
      const { builder, leafRange } = fileBuilder();
      const readAt = (into: Uint8Array, at: number) => {
        let got = 0;
        while (got < into.length) {
          const n = fs.readSync(fd, into, got, into.length - got, at + got);
          if (n === 0) throw changed('it got shorter');
          got += n;
        }
      };
      // A small file is read with one call asking for a byte more than it should have: a short
      // read there is its end, so the end-of-file check below needs no second call.
      let atEof = false;
      if (size <= Math.min(SMALL_FILE_BYTES, chunkBytes)) {
        const n = fs.readSync(fd, chunk, 0, size + 1, 0);
        if (n > size) throw changed('it got longer');
        if (n === size) {
          atEof = true;
          const view = chunk.subarray(0, size);
          if (size > 0) await builder.addChunk(view);
          offset = size;
        }
      }
      while (offset < size) {
        const want = Math.min(chunkBytes, size - offset);
        // Read straight into the shard's buffer when the leaf goes there now: no copy.
        const direct = skip === 0 ? writer.beginLeaf(want) : undefined;
        if (direct) {
          const rest = chunk.subarray(0, want - direct.length);
          readAt(direct, offset);
          readAt(rest, offset + direct.length);
          sha?.update(direct);
          sha?.update(rest);
          const cid = rawLeafCid(direct, rest);
          const shard = writer.endLeaf(cid, rest);
          eventWritten++;
          if (eventFirstShard < 0) eventFirstShard = shard;
          leafRange(shard, want);
          await builder.addLeaf(cid, want);
        } else {
          const view = chunk.subarray(0, want);
          readAt(view, offset);
          sha?.update(view);
          await builder.addChunk(view);
        }
        offset += want;
        bytesSinceReport += want;
        if (bytesSinceReport >= 64 * CHUNK_BYTES) {
          bytesSinceReport = 0;
          onProgress({ shardsDone: shards.length, files, bytes: bytes + offset });
        }
      }
      if (!atEof && fs.readSync(fd, chunk, 0, 1, size) !== 0) throw changed('it got longer');
      const after = fs.fstatSync(fd);
      if (after.size !== size || after.mtimeMs !== before.mtimeMs) throw changed('modified during read');
      await recordFile(name, rel, size, mtimeMs, sha, builder);
    } finally {
      fs.closeSync(fd);
    }
  };
  let bytesSinceReport = 0;

  /**
   * A remote source's file, streamed from the source (never staged): the listed version only (S3
   * reads are pinned to the listed ETag), its length and, where the source states one, its MD5
   * checked as it passes. A file listed without a size (-1) is taken at the length that arrives.
   */
  const packRemoteFile = async (
    name: string,
    listedSize: number,
    mtimeMs: number,
    ref: string,
    etag: string | undefined,
  ): Promise<void> => {
    const rel = stack.length > 1 ? `${dirPath()}/${name}` : name;
    const entry = {
      path: rel,
      ref,
      ...(listedSize >= 0 ? { size: listedSize } : {}),
      mtimeMs,
      ...(etag ? { etag } : {}),
    };
    const opened = await remote!.open(entry);
    const where = `[${ref}]`;
    try {
      if (listedSize >= 0 && opened.size !== undefined && opened.size !== listedSize)
        throw new SourceChangedError(`listed with ${listedSize} bytes, now ${opened.size} ${where}`);
      if (!etag && mtimeMs > 0 && opened.mtimeMs !== undefined && Math.trunc(opened.mtimeMs) !== mtimeMs)
        throw new SourceChangedError(`modified since it was listed ${where}`);
      const expected = opened.size ?? (listedSize >= 0 ? listedSize : undefined);
      const sha = expected === undefined || expected > chunkBytes ? crypto.createHash('sha256') : undefined;
      const md5 = opened.md5 ? crypto.createHash('md5') : undefined;
      const { builder } = fileBuilder();
      let fill = 0;
      let received = 0;
      const leaf = async () => {
        const view = chunk.subarray(0, fill);
        sha?.update(view);
        await builder.addChunk(view);
        fill = 0;
      };
      try {
        for await (const part of opened.body as AsyncIterable<Buffer>) {
          received += part.length;
          if (expected !== undefined && received > expected)
            throw new SourceChangedError(`sent more than its ${expected} bytes ${where}`);
          md5?.update(part);
          let at = 0;
          while (at < part.length) {
            const n = Math.min(chunkBytes - fill, part.length - at);
            part.copy(chunk, fill, at, at + n);
            fill += n;
            at += n;
            if (fill === chunkBytes) await leaf();
          }
          bytesSinceReport += part.length;
          if (bytesSinceReport >= 64 * CHUNK_BYTES) {
            bytesSinceReport = 0;
            onProgress({ shardsDone: shards.length, files, bytes: bytes + received });
          }
        }
      } catch (err) {
        if (ProvenantError.is(err)) throw err;
        throw new SourceUnavailableError(
          `transfer interrupted after ${received} bytes ${where}: ${(err as Error).message}`,
          { cause: err },
        );
      }
      if (expected !== undefined && received !== expected)
        throw new SourceUnavailableError(`received ${received} of ${expected} bytes ${where}`);
      const digest = md5?.digest('hex');
      if (digest !== undefined && digest !== opened.md5)
        throw new IntegrityError(
          `bytes received do not match the source's MD5 ${where}: expected ${opened.md5}, got ${digest}`,
        );
      if (fill > 0) await leaf();
      await recordFile(name, rel, received, mtimeMs || Math.trunc(opened.mtimeMs ?? 0), sha, builder);
    } finally {
      opened.body.destroy();
    }
  };

  // A remote source is read from where it is, object by object (its listing came from remote-scan.ts).
  const remote = opts.remote ? createSource(opts.remote) : undefined;
  let rl: readline.Interface | undefined;
  let index = -1;
  let rootCid: CID | undefined;
  try {
    if (!remote && !fs.existsSync(opts.sourceRoot))
      throw new SourceNotFoundError(`source vanished: ${showPath(opts.sourceRoot)}`);
    // Before the listing is opened: readline drops the lines it reads before iteration starts.
    await writer.ready();
    rl = readline.createInterface({ input: fs.createReadStream(opts.listingPath), crlfDelay: Infinity });
    for await (const text of rl) {
      index++;
      if (index < resumeEvent) continue;
      const ev = JSON.parse(text) as ListingLine;
      eventIndex = index;
      eventWritten = index === resumeEvent ? (cp?.skipBlocks ?? 0) : 0;
      eventFirstShard = index === resumeEvent ? (cp?.eventFirstShard ?? -1) : -1;
      eventRanges = index === resumeEvent ? [...(cp?.eventRanges ?? [])] : [];
      switch (ev[0]) {
        case 'D':
          stack.push({ name: ev[1], entries: [] });
          openDirPath = undefined;
          break;
        case 'F':
          if (remote) await packRemoteFile(ev[1], ev[2], ev[3], ev[4], ev[5]);
          else await packFile(ev[1], ev[2], ev[3], ev[4]);
          break;
        case 'E': {
          const top = stack[stack.length - 1]!;
          const link = await encodeDirectory(top.entries, emit);
          stack.pop();
          openDirPath = undefined;
          if (stack.length > 0)
            stack[stack.length - 1]!.entries.push({ name: top.name, cid: link.cid, dagByteLength: link.dagByteLength });
          else rootCid = link.cid;
          break;
        }
      }
    }
    if (!rootCid)
      throw new StagingMissingError(`listing ended before the root directory closed: ${showPath(opts.listingPath)}`);
    eventIndex = index + 1;
    eventWritten = 0;
    const resumedFromShard = kept;
    writer.finish();
    flushFiles();
    fs.fsyncSync(filesFd);
    const result: PackResult = {
      rootCid: rootCid.toString(),
      shards: shards.length,
      files,
      bytes,
      carBytes,
      shardsWritten: shards.length - resumedFromShard,
      resumedFromShard,
      io,
    };
    const done = readCheckpoint(opts.dir)!;
    done.done = result;
    writeJsonAtomic(path.join(opts.dir, CHECKPOINT), done);
    return result;
  } catch (err) {
    // The source failed mid-file: the shards closed before are whole. Let them become durable and
    // checkpointed first, so that the retry resumes after them instead of reading them again.
    if (err instanceof Error && err.name === 'SourceUnavailableError') {
      try {
        writer.reportThrough(writer.nextIndex - 1);
      } catch {
        // The shards' own write failed too: the retry resumes from the last checkpoint.
      }
    }
    writer.abort();
    throw err;
  } finally {
    rl?.close();
    remote?.close();
    fs.closeSync(filesFd);
  }
}
