/**
 * A local directory as a storage provider. Several of them stand in for independent providers
 * on one machine. Writes are atomic (temp file + fsync + rename); streamed bytes are verified against
 * the CAR CID, and a file already checked on this host is linked or copied instead (see takeLocal).
 *
 * Layout: <root>/pieces/<pieceCid>.car, <root>/pieces/<pieceCid>.json, <root>/roots/<rootCid>, and
 * <root>/tmp/ for writes in flight (a killed writer's partial file is removed by the next write).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { copyFileDirect, DirectIoUnsupported } from './direct-copy.js';
import { verifiedStream } from './kit/verified-stream.js';
import { IntegrityError, PieceNotFoundError, ProviderUnavailableError, StoreError } from '../errors.js';
import type {
  CallOptions,
  PieceRef,
  Placement,
  PutOptions,
  ReplicaStatus,
  StorageProvider,
  ChunkBuffers,
  RangeOptions,
} from './provider.js';

const SAFE_CID = /^[a-z0-9]+$/;

export class LocalProvider implements StorageProvider {
  readonly kind = 'local';
  constructor(
    readonly id: string,
    private readonly root: string,
    /** Pieces expire this long after being stored or renewed (undefined: kept forever). */
    private readonly retentionMs?: number,
  ) {}

  /** This instance has seen its root: from then on a missing root is an outage, not a first use. */
  private seenRoot = false;

  /** Writes in flight (temp files, renamed into pieces/ and roots/ once complete). */
  private get tmpDir(): string {
    return path.join(this.root, 'tmp');
  }

  private metaFile(pieceCid: string): string {
    return this.key(pieceCid).replace(/\.car$/, '.json');
  }

  private async readMeta(pieceCid: string): Promise<(PieceRef & { expiresAt?: string }) | undefined> {
    const text = await fsp.readFile(this.metaFile(pieceCid), 'utf8').catch(() => undefined);
    return text ? (JSON.parse(text) as PieceRef & { expiresAt?: string }) : undefined;
  }

  private expiry(): string | undefined {
    return this.retentionMs === undefined ? undefined : new Date(Date.now() + this.retentionMs).toISOString();
  }

  async renew(piece: Pick<PieceRef, 'pieceCid'>, o: CallOptions = {}): Promise<{ expiresAt?: string }> {
    o.signal?.throwIfAborted();
    const meta = await this.readMeta(piece.pieceCid);
    if (!meta)
      throw new PieceNotFoundError(
        `cannot renew a piece that is not stored [provider=${this.id}, piece=${piece.pieceCid}]`,
      );
    const expiresAt = this.expiry();
    await writeAtomic(this.metaFile(piece.pieceCid), JSON.stringify({ ...meta, expiresAt }), this.tmpDir);
    return { expiresAt };
  }

  private key(pieceCid: string): string {
    if (!SAFE_CID.test(pieceCid))
      throw new PieceNotFoundError(`not a piece CID [provider=${this.id}, piece=${pieceCid}]`);
    return path.join(this.root, 'pieces', `${pieceCid}.car`);
  }

  async put(piece: PieceRef, open: () => Readable, o: PutOptions = {}): Promise<Placement> {
    const file = this.key(piece.pieceCid);
    // Writes go through <root>/tmp (few files: only writes in flight), where those of a killed writer are cleared.
    await removeDeadTemps(this.tmpDir);
    const existing = await fsp.stat(file).catch(() => undefined);
    if (existing && existing.size === piece.bytes) {
      let meta = await this.readMeta(piece.pieceCid);
      // A writer killed between moving the piece in and recording it: its retry completes the record.
      if (!meta) {
        meta = { ...piece, expiresAt: this.expiry() };
        await writeAtomic(this.metaFile(piece.pieceCid), JSON.stringify(meta), this.tmpDir);
      }
      const pointer = path.join(this.root, 'roots', piece.rootCid);
      if ((await fsp.readFile(pointer, 'utf8').catch(() => undefined)) !== piece.pieceCid) {
        await fsp.mkdir(path.dirname(pointer), { recursive: true });
        await writeAtomic(pointer, piece.pieceCid, this.tmpDir);
      }
      if (o.consumeLocalFile && o.localFile) await fsp.rm(o.localFile, { force: true });
      return {
        providerId: this.id,
        pieceCid: piece.pieceCid,
        existed: true,
        storedAt: existing.mtime.toISOString(),
        expiresAt: meta?.expiresAt,
      };
    }
    await this.ensureRoot();
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await fsp.mkdir(path.join(this.root, 'roots'), { recursive: true });
    await fsp.mkdir(this.tmpDir, { recursive: true });
    const tmp = tempName(this.tmpDir, file);
    let evidence: string | undefined;
    try {
      if (o.localFile)
        evidence = await this.takeLocal(piece, {
          src: o.localFile,
          tmp,
          consume: !!o.consumeLocalFile,
          signal: o.signal,
        });
      else await this.receive(piece, open(), { tmp, signal: o.signal });
      const fh = await fsp.open(tmp, 'r+');
      await fh.sync();
      await fh.close();
      await fsp.rename(tmp, file);
      await writeAtomic(
        this.metaFile(piece.pieceCid),
        JSON.stringify({ ...piece, expiresAt: this.expiry() }),
        this.tmpDir,
      );
      await writeAtomic(path.join(this.root, 'roots', piece.rootCid), piece.pieceCid, this.tmpDir);
      await syncDir(path.dirname(file));
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      if (err instanceof IntegrityError || o.signal?.aborted) throw err;
      throw new StoreError(`write failed [provider=${this.id}, piece=${piece.pieceCid}]: ${(err as Error).message}`, {
        cause: err,
      });
    }
    // Only once the piece is durably in place does the caller's file go.
    if (o.consumeLocalFile && o.localFile) await fsp.rm(o.localFile, { force: true });
    const meta = await this.readMeta(piece.pieceCid);
    return {
      providerId: this.id,
      pieceCid: piece.pieceCid,
      existed: false,
      storedAt: new Date().toISOString(),
      expiresAt: meta?.expiresAt,
      ...(evidence ? { evidence } : {}),
    };
  }

  /** Stream the bytes in, hashing them on the way: they must be the shard's CAR CID. */
  private async receive(piece: PieceRef, src: Readable, o: { tmp: string; signal?: AbortSignal }): Promise<void> {
    // Opened before streaming, so that the file exists by the time a failed stream is cleaned up.
    const out = (await fsp.open(o.tmp, 'wx')).createWriteStream();
    const checked = verifiedStream(src, piece, { provider: this.id, piece: piece.pieceCid, what: 'bytes sent' });
    await pipeline(Readable.from(checked), out, { signal: o.signal });
  }

  /**
   * A file on this machine whose bytes the caller already checked against the CAR CID: taken as
   * it is when the caller is done with it (a hard link: the very bytes that were hashed), else
   * copied (see copyCold). Not hashed again: the size and the source's identity (inode, size,
   * mtime) are checked, and the steward's spot checks prove the content from then on.
   */
  private async takeLocal(
    piece: PieceRef,
    o: { src: string; tmp: string; consume: boolean; signal?: AbortSignal },
  ): Promise<string> {
    const { src, tmp, signal } = o;
    const before = await fsp.stat(src);
    if (before.size !== piece.bytes) {
      throw new IntegrityError(
        `local file does not match the shard [provider=${this.id}, piece=${piece.pieceCid}, expected ${piece.bytes} bytes, file has ${before.size}]`,
      );
    }
    if (o.consume) {
      try {
        await fsp.link(src, tmp);
        return 'the bytes hashed to its CAR CID when packed, moved in (size checked)';
      } catch {
        // Another filesystem, or no hard links there: copy instead.
      }
    }
    await copyCold(src, tmp, signal);
    const [after, got] = await Promise.all([fsp.stat(src), fsp.stat(tmp)]);
    if (
      after.ino !== before.ino ||
      after.size !== before.size ||
      after.mtimeMs !== before.mtimeMs ||
      got.size !== piece.bytes
    ) {
      throw new IntegrityError(`local file changed while it was copied [provider=${this.id}, piece=${piece.pieceCid}]`);
    }
    return 'a copy of bytes hashed to its CAR CID when packed (size and source checked)';
  }

  /** Same filesystem as `dir`: a file there is moved in with a hard link (see takeLocal). */
  async adoptsFrom(dir: string): Promise<boolean> {
    const here = await statNearest(this.root);
    const there = await fsp.stat(dir).catch(() => undefined);
    return !!here && !!there && here.dev === there.dev;
  }

  /** A provider whose root is gone (an unmounted volume) is unreachable, not empty. */
  private async reachable(): Promise<void> {
    const st = await fsp.stat(this.root).catch(() => undefined);
    if (!st?.isDirectory())
      throw new ProviderUnavailableError(`provider root is not available [provider=${this.id}, root=${this.root}]`);
    this.seenRoot = true;
  }

  /**
   * Before a write: the root is created on first use, but once seen, a root that is gone is an
   * unreachable provider (say, an unmounted volume): a write never silently makes it again.
   */
  private async ensureRoot(): Promise<void> {
    if (!this.seenRoot && !(await fsp.stat(this.root).catch(() => undefined)))
      await fsp.mkdir(this.root, { recursive: true });
    await this.reachable();
  }

  async status(piece: Pick<PieceRef, 'pieceCid'>, o: CallOptions = {}): Promise<ReplicaStatus> {
    o.signal?.throwIfAborted();
    await this.reachable();
    const st = await fsp.stat(this.key(piece.pieceCid)).catch(() => undefined);
    const meta = st ? await this.readMeta(piece.pieceCid) : undefined;
    const expired = !!meta?.expiresAt && Date.parse(meta.expiresAt) <= Date.now();
    return {
      providerId: this.id,
      pieceCid: piece.pieceCid,
      present: !!st && !expired,
      bytes: st?.size,
      expiresAt: meta?.expiresAt,
      ...(expired ? { detail: `expired at ${meta!.expiresAt}` } : {}),
    };
  }

  readRange(piece: Pick<PieceRef, 'pieceCid'>, o: RangeOptions = {}): Readable {
    const { offset = 0, length } = o;
    const file = this.key(piece.pieceCid);
    const id = this.id;
    const end = length === undefined ? undefined : offset + length - 1;
    if (length === 0) return Readable.from([]);
    return Readable.from(
      (async function* () {
        let fh: fsp.FileHandle;
        try {
          fh = await fsp.open(file, 'r');
        } catch (cause) {
          throw new PieceNotFoundError(`piece not stored [provider=${id}, piece=${piece.pieceCid}]`, { cause });
        }
        try {
          if (o.buffers) yield* readInto(fh, offset, end, o.buffers, o.signal);
          else yield* fh.createReadStream({ start: offset, end, highWaterMark: 1 << 20, signal: o.signal } as never);
        } finally {
          await fh.close().catch(() => {});
        }
      })(),
      { objectMode: false },
    );
  }

  async locate(rootCid: string, o: CallOptions = {}): Promise<PieceRef | undefined> {
    o.signal?.throwIfAborted();
    if (!SAFE_CID.test(rootCid)) return undefined;
    const pieceCid = await fsp.readFile(path.join(this.root, 'roots', rootCid), 'utf8').catch(() => undefined);
    if (!pieceCid) return undefined;
    const meta = await this.readMeta(pieceCid);
    if (!meta) return undefined;
    return { pieceCid: meta.pieceCid, carCid: meta.carCid, rootCid: meta.rootCid, bytes: meta.bytes };
  }

  async delete(piece: Pick<PieceRef, 'pieceCid'>, o: CallOptions = {}): Promise<void> {
    o.signal?.throwIfAborted();
    const file = this.key(piece.pieceCid);
    const meta = await this.readMeta(piece.pieceCid);
    await fsp.rm(file, { force: true });
    await fsp.rm(this.metaFile(piece.pieceCid), { force: true });
    // The root's pointer goes with its piece (left behind, it named a piece no longer stored).
    if (meta && SAFE_CID.test(meta.rootCid)) {
      const pointer = path.join(this.root, 'roots', meta.rootCid);
      if ((await fsp.readFile(pointer, 'utf8').catch(() => undefined)) === piece.pieceCid)
        await fsp.rm(pointer, { force: true });
    }
  }
}

/** Positional reads of `fh` from `start` to `end` (inclusive; the file's end when undefined) into lent buffers. */
async function* readInto(
  fh: fsp.FileHandle,
  start: number,
  end: number | undefined,
  buffers: ChunkBuffers,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const stop = end === undefined ? (await fh.stat()).size : end + 1;
  for (let pos = start; pos < stop;) {
    signal?.throwIfAborted();
    const buf = buffers.take();
    let n: number;
    try {
      ({ bytesRead: n } = await fh.read(buf, 0, Math.min(buf.length, stop - pos), pos));
    } catch (err) {
      buffers.give(buf);
      throw err;
    }
    if (n === 0) {
      buffers.give(buf);
      return;
    }
    pos += n;
    yield buf.subarray(0, n);
  }
}

/**
 * A copy of a piece file: a reflink where the filesystem has them (no bytes move), else direct
 * writes that bypass the page cache (direct-copy.ts), else an ordinary kernel copy.
 */
async function copyCold(src: string, dst: string, signal?: AbortSignal): Promise<void> {
  try {
    await fsp.copyFile(src, dst, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE_FORCE);
    return;
  } catch {
    await fsp.rm(dst, { force: true });
  }
  if ((await fsp.stat(src)).size >= 1 << 20) {
    try {
      await copyFileDirect(src, dst, signal);
      return;
    } catch (err) {
      if (!(err instanceof DirectIoUnsupported)) throw err;
    }
  }
  await fsp.copyFile(src, dst, fs.constants.COPYFILE_EXCL);
}

/** The stat of `p`, or of its nearest existing ancestor (a provider root is created on first put). */
async function statNearest(p: string): Promise<fs.Stats | undefined> {
  for (let dir = path.resolve(p); ; dir = path.dirname(dir)) {
    const st = await fsp.stat(dir).catch(() => undefined);
    if (st || dir === path.dirname(dir)) return st;
  }
}

/** A temp file in `dir` for `file`, named after this process (`<name>.<pid>.<hex>.tmp`). */
function tempName(dir: string, file: string): string {
  return path.join(dir, `${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Remove the temp files that a process no longer running left in `dir`: a writer killed
 * mid-write leaves its partial file, and the next write (the retry of that piece) clears it.
 * Those of live processes (a write in flight) are left alone: a provider directory is written by
 * processes of this host.
 */
async function removeDeadTemps(dir: string): Promise<void> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    const m = /\.(\d+)\.[0-9a-f]+\.tmp$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || isAlive(pid)) continue;
    await fsp.rm(path.join(dir, name), { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function writeAtomic(file: string, text: string, tmpDir: string): Promise<void> {
  await fsp.mkdir(tmpDir, { recursive: true });
  const tmp = tempName(tmpDir, file);
  const fh = await fsp.open(tmp, 'wx');
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
