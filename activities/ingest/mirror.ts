/**
 * Mirror a remote source into a local tree in staging, so the ordinary scan and pack can read it.
 *
 *   <mirrorPath>/…              the files, at their relative paths, with the source's sizes and mtimes
 *   <mirrorPath>.work/tmp/      downloads in progress (renamed into place once complete and checked)
 *   <mirrorPath>.work/paths     the paths this attempt listed (read back only to prune leftovers)
 *
 * Streaming: each object goes from the response body to its temp file, never whole into memory.
 * Idempotent and resumable: a file already in place with the listed size and mtime is not
 * downloaded again, so a retried attempt only fetches what is missing. Paths are checked in one
 * pass over the sorted listing (a path listed twice, or both a file and a directory prefix, is a
 * PathConflictError), so a million-object listing never sits in memory.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import type { RemoteSource } from '../../config/schema.js';
import {
  EmptyDatasetError,
  IntegrityError,
  InvalidFileNameError,
  ProvenantError,
  showPath,
  SourceChangedError,
  SourceUnavailableError,
} from '../errors.js';
import { HttpSource } from './http.js';
import { S3Source } from './s3.js';
import { checkRelPath, PathOrder, type Source, type SourceEntry } from './sources.js';

/** Downloads in flight at once (many datasets are many small objects). */
const PARALLEL_DOWNLOADS = 8;

/** Build the source a config describes: the one place that maps a source `kind` to its class. */
export function createSource(cfg: RemoteSource, env: NodeJS.ProcessEnv = process.env): Source {
  switch (cfg.kind) {
    case 's3':
      return new S3Source(cfg, env);
    case 'http':
      return new HttpSource(cfg, env);
  }
}

export interface MirrorProgress {
  /** Files in the mirror so far, and their bytes. */
  files: number;
  bytes: number;
  /** Of those, fetched by this attempt (the rest were already in place). */
  downloaded: number;
  downloadedBytes: number;
}

export interface MirrorOptions {
  signal?: AbortSignal;
  /** Called often (every chunk); throttle it. */
  onProgress?: (p: MirrorProgress) => void;
}

export async function mirrorSource(source: Source, mirrorPath: string, o: MirrorOptions = {}): Promise<MirrorProgress> {
  const root = path.resolve(mirrorPath);
  const work = `${root}.work`;
  const tmpDir = path.join(work, 'tmp');
  await fsp.rm(tmpDir, { recursive: true, force: true }); // partial downloads of earlier attempts
  await fsp.mkdir(tmpDir, { recursive: true });
  await fsp.mkdir(root, { recursive: true });

  const progress: MirrorProgress = { files: 0, bytes: 0, downloaded: 0, downloadedBytes: 0 };
  const report = () => o.onProgress?.(progress);
  const stop = new AbortController();
  const onAbort = () => stop.abort(o.signal?.reason);
  if (o.signal?.aborted) onAbort();
  o.signal?.addEventListener('abort', onAbort, { once: true });

  const pathsFile = path.join(work, 'paths');
  const paths = fs.createWriteStream(pathsFile);
  const order = new PathOrder();
  const running = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;
  const fail = (err: unknown) => {
    failure ??= { err };
    stop.abort();
  };
  try {
    for await (const entry of source.list(stop.signal)) {
      if (failure) break;
      checkRelPath(entry.path, entry.ref);
      order.add(entry);
      if (!paths.write(JSON.stringify(entry.path) + '\n')) await once(paths, 'drain');
      const onBytes = (n: number) => {
        progress.downloadedBytes += n;
        report();
      };
      const task: Promise<void> = place(source, entry, { root, tmpDir, signal: stop.signal, onBytes })
        .then((r) => {
          progress.files++;
          progress.bytes += r.bytes;
          if (r.downloaded) progress.downloaded++;
          report();
        }, fail)
        .finally(() => running.delete(task));
      running.add(task);
      if (running.size >= PARALLEL_DOWNLOADS) await Promise.race(running);
    }
  } catch (err) {
    fail(err);
  } finally {
    await Promise.all(running);
    paths.end();
    await once(paths, 'close').catch(() => {});
    o.signal?.removeEventListener('abort', onAbort);
  }
  if (failure) throw failure.err;
  if (progress.files === 0) throw new EmptyDatasetError(`source has no files to archive: ${source.uri}`);
  await prune(root, pathsFile, progress.files);
  await fsp.rm(work, { recursive: true, force: true });
  report();
  return progress;
}

/** Put one entry in place unless it already is; returns its size and whether it was fetched. */
async function place(
  source: Source,
  entry: SourceEntry,
  o: { root: string; tmpDir: string; signal: AbortSignal; onBytes: (n: number) => void },
) {
  const { root, tmpDir, signal, onBytes } = o;
  const target = path.join(root, ...entry.path.split('/'));
  const have = await fsp.lstat(target).catch(() => undefined);
  if (
    have?.isFile() &&
    entry.size !== undefined &&
    have.size === entry.size &&
    Math.trunc(have.mtimeMs) === (entry.mtimeMs ?? 0)
  ) {
    return { bytes: have.size, downloaded: false };
  }

  const opened = await source.open(entry, signal);
  const tmp = path.join(tmpDir, crypto.randomBytes(12).toString('hex'));
  const where = `[${entry.ref}]`;
  try {
    if (entry.size !== undefined && opened.size !== undefined && opened.size !== entry.size) {
      throw new SourceChangedError(`listed with ${entry.size} bytes, now ${opened.size} ${where}`);
    }
    const md5 = opened.md5 ? crypto.createHash('md5') : undefined;
    let received = 0;
    const counted = async function* () {
      try {
        for await (const chunk of opened.body as AsyncIterable<Buffer>) {
          received += chunk.length;
          md5?.update(chunk);
          onBytes(chunk.length);
          yield chunk;
        }
      } catch (err) {
        if (signal.aborted || ProvenantError.is(err)) throw err;
        throw new SourceUnavailableError(
          `transfer interrupted after ${received} bytes ${where}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    };
    await pipeline(counted(), fs.createWriteStream(tmp), { signal });

    const expected = opened.size ?? entry.size;
    if (expected !== undefined && received !== expected) {
      throw new SourceUnavailableError(`received ${received} of ${expected} bytes ${where}`);
    }
    const digest = md5?.digest('hex');
    if (digest !== undefined && digest !== opened.md5) {
      throw new IntegrityError(
        `bytes received do not match the source's MD5 ${where}: expected ${opened.md5}, got ${digest}`,
      );
    }
    const fh = await fsp.open(tmp, 'r+');
    try {
      await fh.sync(); // a resumed attempt trusts size + mtime: the bytes must be on disk first
    } finally {
      await fh.close();
    }
    // Half a millisecond in, so the float seconds → nanoseconds conversion cannot round down a millisecond.
    const mtimeMs = entry.mtimeMs ?? opened.mtimeMs ?? 0;
    await fsp.utimes(tmp, (mtimeMs + 0.5) / 1000, (mtimeMs + 0.5) / 1000);
    await moveIntoPlace(root, target, tmp, entry);
    return { bytes: received, downloaded: true };
  } catch (err) {
    opened.body.destroy();
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Rename the finished temp file onto its path. The listing has no conflicts (PathOrder), so
 * anything in the way — a file where a directory goes or a directory where the file goes — is
 * what an earlier attempt left for an object since deleted: remove it.
 */
async function moveIntoPlace(root: string, target: string, tmp: string, entry: SourceEntry): Promise<void> {
  const dir = path.dirname(target);
  try {
    await fsp.mkdir(dir, { recursive: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code !== 'EEXIST' && e.code !== 'ENOTDIR') throw fsError(e, entry);
    let at = root;
    for (const seg of path.relative(root, dir).split(path.sep)) {
      at = path.join(at, seg);
      const st = await fsp.lstat(at).catch(() => undefined);
      if (st && !st.isDirectory()) {
        await fsp.rm(at, { force: true });
        break;
      }
    }
    await fsp.mkdir(dir, { recursive: true });
  }
  try {
    await fsp.rename(tmp, target);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code !== 'EISDIR' && e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw fsError(e, entry);
    await fsp.rm(target, { recursive: true, force: true });
    await fsp.rename(tmp, target);
  }
}

function fsError(e: NodeJS.ErrnoException, entry: SourceEntry): Error {
  if (e.code === 'ENAMETOOLONG' || e.code === 'EINVAL') {
    return new InvalidFileNameError(
      `this file system cannot hold the path ${showPath(entry.path)} (from ${entry.ref})`,
      { cause: e },
    );
  }
  return e;
}

/**
 * Remove files and empty directories that earlier attempts left but this listing no longer has
 * (objects deleted in between). Counting is cheap; the listed paths are read back into memory
 * only when the count says something is left over.
 */
async function prune(root: string, pathsFile: string, listed: number): Promise<void> {
  const census = async (dir: string): Promise<{ files: number; emptyDirs: number }> => {
    const entries = await fsp.readdir(dir, { withFileTypes: true });
    const out = { files: 0, emptyDirs: entries.length === 0 && dir !== root ? 1 : 0 };
    for (const d of entries) {
      if (!d.isDirectory()) out.files++;
      else {
        const sub = await census(path.join(dir, d.name));
        out.files += sub.files;
        out.emptyDirs += sub.emptyDirs;
      }
    }
    return out;
  };
  const c = await census(root);
  if (c.files === listed && c.emptyDirs === 0) return;

  const keep = new Set(
    (await fsp.readFile(pathsFile, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as string),
  );
  const sweep = async (dir: string, rel: string): Promise<boolean> => {
    let empty = true;
    for (const d of await fsp.readdir(dir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      const p = path.join(dir, d.name);
      if (d.isDirectory() ? await sweep(p, r) : !keep.has(r)) await fsp.rm(p, { recursive: true, force: true });
      else empty = false;
    }
    return empty;
  };
  await sweep(root, '');
}
