/**
 * A local directory as a storage provider. Several of them stand in for independent providers
 * on one machine. Writes are atomic (temp file + fsync + rename); streamed bytes are verified against
 * the CAR CID, and a file already checked on this host is linked or copied instead (see takeLocal).
 *
 * Layout: <root>/pieces/<pieceCid>.car, <root>/pieces/<pieceCid>.json, <root>/roots/<rootCid>
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { carCidFromSha256 } from '../pack/cids.js';
import { copyFileDirect, DirectIoUnsupported } from './direct-copy.js';
import { IntegrityError, PieceNotFoundError, ProviderUnavailableError, StoreError } from '../errors.js';
import type { CallOptions, PieceRef, Placement, PutOptions, ReplicaStatus, StorageProvider } from './provider.js';

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

  async renew(piece: Pick<PieceRef, 'pieceCid'>): Promise<{ expiresAt?: string }> {
    const meta = await this.readMeta(piece.pieceCid);
    if (!meta) throw new PieceNotFoundError(`cannot renew a piece that is not stored [provider=${this.id}, piece=${piece.pieceCid}]`);
    const expiresAt = this.expiry();
    await writeAtomic(this.metaFile(piece.pieceCid), JSON.stringify({ ...meta, expiresAt }));
    return { expiresAt };
  }

  private key(pieceCid: string): string {
    if (!SAFE_CID.test(pieceCid)) throw new PieceNotFoundError(`not a piece CID [provider=${this.id}, piece=${pieceCid}]`);
    return path.join(this.root, 'pieces', `${pieceCid}.car`);
  }

  async put(piece: PieceRef, open: () => Readable, o: PutOptions = {}): Promise<Placement> {
    const file = this.key(piece.pieceCid);
    const existing = await fsp.stat(file).catch(() => undefined);
    if (existing && existing.size === piece.bytes) {
      const meta = await this.readMeta(piece.pieceCid);
      if (o.consumeLocalFile && o.localFile) await fsp.rm(o.localFile, { force: true });
      return { providerId: this.id, pieceCid: piece.pieceCid, existed: true, storedAt: existing.mtime.toISOString(), expiresAt: meta?.expiresAt };
    }
    await this.ensureRoot();
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await fsp.mkdir(path.join(this.root, 'roots'), { recursive: true });
    const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    let evidence: string | undefined;
    try {
      if (o.localFile) evidence = await this.takeLocal(piece, o.localFile, tmp, !!o.consumeLocalFile, o.signal);
      else await this.receive(piece, open, tmp, o.signal);
      const fh = await fsp.open(tmp, 'r+');
      await fh.sync();
      await fh.close();
      await fsp.rename(tmp, file);
      await writeAtomic(this.metaFile(piece.pieceCid), JSON.stringify({ ...piece, expiresAt: this.expiry() }));
      await writeAtomic(path.join(this.root, 'roots', piece.rootCid), piece.pieceCid);
      await syncDir(path.dirname(file));
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      if (err instanceof IntegrityError || o.signal?.aborted) throw err;
      throw new StoreError(`write failed [provider=${this.id}, piece=${piece.pieceCid}]: ${(err as Error).message}`, { cause: err });
    }
    // Only once the piece is durably in place does the caller's file go.
    if (o.consumeLocalFile && o.localFile) await fsp.rm(o.localFile, { force: true });
    const meta = await this.readMeta(piece.pieceCid);
    return {
      providerId: this.id, pieceCid: piece.pieceCid, existed: false, storedAt: new Date().toISOString(), expiresAt: meta?.expiresAt,
      ...(evidence ? { evidence } : {}),
    };
  }

  /** Stream the bytes in, hashing them on the way: they must be the shard's CAR CID. */
  private async receive(piece: PieceRef, open: () => Readable, tmp: string, signal?: AbortSignal): Promise<void> {
    const hash = crypto.createHash('sha256');
    let bytes = 0;
    // Opened before streaming, so that the file exists by the time a failed stream is cleaned up.
    const out = (await fsp.open(tmp, 'wx')).createWriteStream();
    await pipeline(
      open(),
      async function* (src: AsyncIterable<Buffer>) {
        for await (const chunk of src) {
          hash.update(chunk);
          bytes += chunk.length;
          yield chunk;
        }
      },
      out,
      { signal },
    );
    const got = carCidFromSha256(hash.digest());
    if (got !== piece.carCid || bytes !== piece.bytes) {
      throw new IntegrityError(
        `bytes sent do not match the shard [provider=${this.id}, piece=${piece.pieceCid}, expected=${piece.carCid}/${piece.bytes}, got=${got}/${bytes}]`,
      );
    }
  }

  /**
   * A file on this machine whose bytes the caller already checked against the CAR CID: taken as
   * it is when the caller is done with it (a hard link: the very bytes that were hashed), else
   * copied (see copyCold). Not hashed again: the size and the source's identity (inode, size,
   * mtime) are checked, and the steward's spot checks prove the content from then on.
   */
  private async takeLocal(piece: PieceRef, src: string, tmp: string, consume: boolean, signal?: AbortSignal): Promise<string> {
    const before = await fsp.stat(src);
    if (before.size !== piece.bytes) {
      throw new IntegrityError(`local file does not match the shard [provider=${this.id}, piece=${piece.pieceCid}, expected ${piece.bytes} bytes, file has ${before.size}]`);
    }
    if (consume) {
      try {
        await fsp.link(src, tmp);
        return 'the bytes hashed to its CAR CID when packed, moved in (size checked)';
      } catch {
        // Another filesystem, or no hard links there: copy instead.
      }
    }
    await copyCold(src, tmp, signal);
    const [after, got] = await Promise.all([fsp.stat(src), fsp.stat(tmp)]);
    if (after.ino !== before.ino || after.size !== before.size || after.mtimeMs !== before.mtimeMs || got.size !== piece.bytes) {
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
    if (!st?.isDirectory()) throw new ProviderUnavailableError(`provider root is not available [provider=${this.id}, root=${this.root}]`);
    this.seenRoot = true;
  }

  /**
   * Before a write: the root is created on first use, but once seen, a root that is gone is an
   * unreachable provider (say, an unmounted volume): a write never silently makes it again.
   */
  private async ensureRoot(): Promise<void> {
    if (!this.seenRoot && !(await fsp.stat(this.root).catch(() => undefined))) await fsp.mkdir(this.root, { recursive: true });
    await this.reachable();
  }

  async status(piece: Pick<PieceRef, 'pieceCid'>): Promise<ReplicaStatus> {
    await this.reachable();
    const st = await fsp.stat(this.key(piece.pieceCid)).catch(() => undefined);
    const meta = st ? await this.readMeta(piece.pieceCid) : undefined;
    const expired = !!meta?.expiresAt && Date.parse(meta.expiresAt) <= Date.now();
    return {
      providerId: this.id, pieceCid: piece.pieceCid, present: !!st && !expired, bytes: st?.size, expiresAt: meta?.expiresAt,
      ...(expired ? { detail: `expired at ${meta!.expiresAt}` } : {}),
    };
  }

  readRange(piece: Pick<PieceRef, 'pieceCid'>, offset: number, length: number | undefined, o: CallOptions = {}): Readable {
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
          yield* fh.createReadStream({ start: offset, end, highWaterMark: 1 << 20, signal: o.signal } as never);
        } finally {
          await fh.close().catch(() => {});
        }
      })(),
      { objectMode: false },
    );
  }

  async locate(rootCid: string): Promise<PieceRef | undefined> {
    if (!SAFE_CID.test(rootCid)) return undefined;
    const pieceCid = await fsp.readFile(path.join(this.root, 'roots', rootCid), 'utf8').catch(() => undefined);
    if (!pieceCid) return undefined;
    const meta = await this.readMeta(pieceCid);
    if (!meta) return undefined;
    return { pieceCid: meta.pieceCid, carCid: meta.carCid, rootCid: meta.rootCid, bytes: meta.bytes };
  }

  async delete(piece: Pick<PieceRef, 'pieceCid'>): Promise<void> {
    const file = this.key(piece.pieceCid);
    await fsp.rm(file, { force: true });
    await fsp.rm(this.metaFile(piece.pieceCid), { force: true });
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

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
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
