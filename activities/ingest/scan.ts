/**
 * Scan a local directory into a listing file (NDJSON, depth-first, entries in byte order), so
 * that a million-file tree never sits in memory or in a Temporal payload as one array.
 *
 * Listing lines:  ["D", name]                    enter a directory (the root's name is "")
 *                 ["F", name, size, mtimeMs, src] a regular file (src: path relative to the root
 *                                                 that holds the bytes; differs when reached by a symlink)
 *                 ["E"]                          leave the current directory
 * Symlinks are followed only inside the root; special files are reported, never read.
 *
 * The walk itself runs in a worker thread (scan-thread.ts) with synchronous file-system calls:
 * per file that costs a fraction of the promise-based calls, while this thread's event loop stays
 * free for the activity's heartbeats. This side checks the root, owns the listing file (opens it,
 * closes it once the thread has exited, renames it or removes it) and rebuilds the thread's
 * typed errors.
 */
import type fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  EmptyDatasetError,
  NotADirectoryError,
  reviveError,
  showPath,
  SourceNotFoundError,
  SymlinkLoopError,
  UnreadableFileError,
} from '../errors.js';
import { threadOptions } from '../pack/shard-hasher.js';
import type { ScanCounts, ScanProgress, ScanThreadInput, ScanThreadMessage } from './scan-thread.js';

export interface ScanResult extends ScanCounts {
  listingPath: string;
}

/**
 * A remote source's file line (remote-scan.ts) has the object's ref (key or URL) as its src, its
 * listed ETag after it, and size -1 when the source could not state it before the transfer.
 */
export type ListingLine = ['D', string] | ['F', string, number, number, string, string?] | ['E'];

export type { ScanProgress };

/**
 * Run the walk (scan-thread.ts) in a worker thread. Settles only once the thread has exited, so
 * that the caller may then close the descriptor the thread wrote to; an abort terminates it.
 */
function walkInThread(
  input: ScanThreadInput,
  onProgress: (p: ScanProgress) => void,
  signal?: AbortSignal,
): Promise<ScanCounts> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const worker = new Worker(new URL('./scan-thread.js', import.meta.url), {
      workerData: input,
      ...threadOptions(),
    });
    let counts: ScanCounts | undefined;
    let failure: unknown;
    let aborted = false;
    const stop = (err: unknown) => {
      failure ??= err;
      void worker.terminate();
    };
    const onAbort = () => {
      aborted = true;
      void worker.terminate();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: ScanThreadMessage) => {
      if (aborted || failure !== undefined) return;
      if (m.type === 'progress') {
        try {
          onProgress(m.progress);
        } catch (err) {
          stop(err);
        }
      } else if (m.type === 'done') {
        counts = m.counts;
      } else {
        // Typed errors come back as their own class; other errors (fs) keep their code.
        const { code, errno, syscall, path: p, ...e } = m.error;
        const err = reviveError(e);
        failure = code === undefined ? err : Object.assign(err, { code, errno, syscall, path: p });
      }
    });
    worker.on('error', (err) => (failure ??= err));
    worker.on('exit', (code) => {
      signal?.removeEventListener('abort', onAbort);
      if (aborted) reject(signal?.reason ?? new Error('scan cancelled'));
      else if (failure !== undefined) reject(failure);
      else if (counts) resolve(counts);
      else reject(new Error(`scan thread exited with code ${code}`));
    });
  });
}

/**
 * Scan `rootArg` into the listing at `listingPath` (written to `<listingPath>.tmp`, then renamed).
 * The walk runs in a worker thread, so the caller's event loop stays free (heartbeats) and
 * `onProgress` is called about every 1000 files or 200 ms. Aborting `signal` stops the walk;
 * on any failure nothing is left behind.
 */
export async function scanLocal(
  rootArg: string,
  listingPath: string,
  onProgress: (p: ScanProgress) => void = () => {},
  signal?: AbortSignal,
): Promise<ScanResult> {
  signal?.throwIfAborted();
  const root = path.resolve(rootArg);
  let st: fs.Stats;
  try {
    st = await fsp.stat(root);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR')
      throw new SourceNotFoundError(`source does not exist: ${showPath(root)}`, { cause: e });
    if (e.code === 'EACCES' || e.code === 'EPERM')
      throw new UnreadableFileError(`cannot read ${showPath(root)}: permission denied`, { cause: e });
    if (e.code === 'ELOOP') throw new SymlinkLoopError(`symlink loop at ${showPath(root)}`, { cause: e });
    throw e;
  }
  if (!st.isDirectory()) throw new NotADirectoryError(`source is not a directory: ${showPath(root)}`);
  const realRoot = await fsp.realpath(root);

  await fsp.mkdir(path.dirname(listingPath), { recursive: true });
  const tmp = `${listingPath}.tmp`;
  const out = await fsp.open(tmp, 'w');
  let counts: ScanCounts;
  try {
    const input: ScanThreadInput = {
      realRoot,
      fd: out.fd,
      uid: process.geteuid?.() ?? -1,
      gids: [process.getegid?.() ?? -1, ...(process.getgroups?.() ?? [])],
    };
    counts = await walkInThread(input, onProgress, signal);
    await out.close();
    signal?.throwIfAborted();
  } catch (err) {
    await out.close().catch(() => {});
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  if (counts.files === 0) {
    await fsp.rm(tmp, { force: true });
    throw new EmptyDatasetError(`source has no regular files to archive: ${showPath(root)}`);
  }
  await fsp.rename(tmp, listingPath);
  onProgress({ files: counts.files, bytes: counts.bytes });
  return { listingPath, ...counts };
}
