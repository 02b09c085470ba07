/**
 * Worker-thread side of the scan (see scan.ts): walks the tree with synchronous calls, which cost
 * a fraction of their promise-based forms per file, without blocking the activity's event loop.
 *
 * The main thread opens the listing file and hands over its descriptor; this thread appends the
 * listing to it in batches of about 1 MiB and never closes it (the main thread closes it once this
 * thread has exited, so an abort cannot leave a stray write behind). It posts `progress`
 * messages, then `done` with the counts, or `error` with a thrown error's name and message,
 * which the main thread turns back into the same typed error (reviveError).
 *
 * Memory stays small whatever the tree: one array of names per directory on the current path,
 * names kept as Latin-1 strings (one byte per byte of the raw name, compact in V8, and ordered
 * by plain string comparison exactly as the raw bytes are), nothing per file once it is listed.
 * The walk keeps its own stack instead of recursing, so a deep tree cannot overflow the call stack.
 */
import { isUtf8 } from 'node:buffer';
import fs from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import {
  BrokenSymlinkError,
  InvalidFileNameError,
  showPath,
  SymlinkEscapesRootError,
  SymlinkLoopError,
  UnreadableFileError,
} from '../errors.js';
import type { ScanSummary } from '../../shared/types.js';

/** How far the walk has got (reported to the main thread, then as heartbeats). */
export interface ScanProgress {
  files: number;
  bytes: number;
}

export interface ScanThreadInput {
  /** The source root, as realpath gave it. */
  realRoot: string;
  /** Descriptor of the temporary listing, open for writing at offset 0. */
  fd: number;
  /** Effective uid and all group ids of the process, for the readability check. */
  uid: number;
  gids: number[];
}

/** What the walk found; the main thread adds the listing path to make a ScanResult. */
/** What the walk found (the wire type the scan activity returns). */
export type ScanCounts = ScanSummary;

export type ScanThreadMessage =
  | { type: 'progress'; progress: ScanProgress }
  | { type: 'done'; counts: ScanCounts }
  | {
      type: 'error';
      error: {
        name: string;
        message: string;
        stack?: string;
        code?: string;
        errno?: number;
        syscall?: string;
        path?: string;
      };
    };

/** Size of the listing writes. */
const FLUSH_BYTES = 1 << 20;
/** Progress is posted after this many files, or this long, whichever comes first. */
const PROGRESS_FILES = 1000;
const PROGRESS_MS = 200;

// eslint-disable-next-line no-control-regex -- the range starts at NUL on purpose: any byte above 0x7f
const NON_ASCII = /[^\x00-\x7f]/;

/** The UTF-8 name of a directory entry read as Latin-1 (`raw`: one char per byte). */
function decodeName(raw: string, parentRel: string): string {
  if (!NON_ASCII.test(raw)) return raw; // ASCII: the same string in both encodings
  const bytes = Buffer.from(raw, 'latin1');
  if (!isUtf8(bytes)) {
    throw new InvalidFileNameError(
      `file name is not valid UTF-8 and cannot be stored in UnixFS: ${showPath(Buffer.concat([Buffer.from(parentRel ? parentRel + '/' : ''), bytes]))}`,
    );
  }
  return bytes.toString('utf8');
}

function mapFsError(err: NodeJS.ErrnoException, rel: string): Error {
  if (err.code === 'EACCES' || err.code === 'EPERM') {
    return new UnreadableFileError(`cannot read ${showPath(rel)}: permission denied`, { cause: err });
  }
  if (err.code === 'ELOOP') return new SymlinkLoopError(`symlink loop at ${showPath(rel)}`, { cause: err });
  return err;
}

/** A directory on the current path of the walk. */
interface Frame {
  /** Real path (symlinks resolved); `prefix` is it with a trailing slash. */
  real: string;
  prefix: string;
  /** Path shown in messages: relative to the root, through the links the walk followed. */
  rel: string;
  /** Real path relative to the root, '/'-separated: the `src` of the files listed in it. */
  src: string;
  /** Entry names (Latin-1, sorted) and the index of the next one to list. */
  names: string[];
  next: number;
}

/**
 * Walk the tree below `realRoot` into the listing on `fd` (the format is described in scan.ts).
 * Throws the typed error of the first problem met, in listing order.
 */
export function walkTree(input: ScanThreadInput, onProgress: (p: ScanProgress) => void): ScanCounts {
  const { realRoot, fd, uid } = input;
  const gids = new Set(input.gids);
  const counts: ScanCounts = { files: 0, dirs: 0, bytes: 0, specials: [], specialCount: 0, symlinksFollowed: 0 };

  // ---- listing output: lines encoded into one reused buffer, written out when it is full ------
  // (one big string built by concatenation would cost far more memory than it holds)
  const out = Buffer.allocUnsafe(FLUSH_BYTES);
  let used = 0;
  const writeAll = (bytes: Buffer) => {
    for (let off = 0; off < bytes.length;) off += fs.writeSync(fd, bytes, off, bytes.length - off);
  };
  const flush = () => {
    writeAll(out.subarray(0, used));
    used = 0;
  };
  const emit = (line: string) => {
    // A UTF-16 code unit takes at most 3 bytes in UTF-8: with that much room the line fits.
    if (used + line.length * 3 > out.length) {
      flush();
      if (line.length * 3 > out.length) return writeAll(Buffer.from(line, 'utf8'));
    }
    used += out.write(line, used);
  };

  // ---- progress ------------------------------------------------------------------------------
  let reportedFiles = 0;
  let reportedAt = Date.now();
  const maybeReport = () => {
    const now = Date.now();
    if (counts.files - reportedFiles >= PROGRESS_FILES || now - reportedAt >= PROGRESS_MS) {
      reportedFiles = counts.files;
      reportedAt = now;
      onProgress({ files: counts.files, bytes: counts.bytes });
    }
  };

  /**
   * Whether the mode bits let this process read the file, as the kernel decides without ACLs
   * (root reads everything). A "no" is confirmed with access(), which also honours ACLs, so a
   * readable file is never rejected; the rare "yes" an ACL overrules still fails typed, when
   * the packer opens the file.
   */
  const modeAllowsRead = (st: fs.Stats) =>
    uid === 0 || (st.mode & (st.uid === uid ? 0o400 : gids.has(st.gid) ? 0o040 : 0o004)) !== 0;

  /** Relative path from the root to `real` (which is inside it), '/'-separated. */
  const srcOf = (real: string) => path.relative(realRoot, real).split(path.sep).join('/');

  // Real paths of the directories on the current path: a followed link to one of them loops.
  const ancestors = new Set<string>();
  const stack: Frame[] = [];
  const enter = (name: string, real: string, rel: string) => {
    counts.dirs++;
    emit(`["D",${JSON.stringify(name)}]\n`);
    let names: string[];
    try {
      names = fs.readdirSync(real, { encoding: 'latin1' });
    } catch (err) {
      throw mapFsError(err as NodeJS.ErrnoException, rel || '.');
    }
    names.sort(); // code-unit order of Latin-1 strings = byte order of the raw names
    ancestors.add(real);
    stack.push({
      real,
      prefix: real.endsWith(path.sep) ? real : real + path.sep,
      rel,
      src: srcOf(real),
      names,
      next: 0,
    });
  };

  enter('', realRoot, '');
  while (stack.length > 0) {
    const dir = stack[stack.length - 1]!;
    if (dir.next === dir.names.length) {
      emit('["E"]\n');
      ancestors.delete(dir.real);
      stack.pop();
      continue;
    }
    const name = decodeName(dir.names[dir.next++]!, dir.rel);
    const rel = dir.rel ? `${dir.rel}/${name}` : name;
    let real = dir.prefix + name;
    let linked = false;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(real);
    } catch (err) {
      throw mapFsError(err as NodeJS.ErrnoException, rel);
    }
    if (st.isSymbolicLink()) {
      let target: string;
      try {
        target = fs.realpathSync(real);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'ELOOP') throw new SymlinkLoopError(`symlink loop at ${showPath(rel)}`, { cause: e });
        if (e.code === 'ENOENT') throw new BrokenSymlinkError(`symlink points nowhere: ${showPath(rel)}`, { cause: e });
        throw mapFsError(e, rel);
      }
      if (target !== realRoot && !target.startsWith(realRoot + path.sep)) {
        throw new SymlinkEscapesRootError(
          `symlink ${showPath(rel)} points outside the source root (to ${showPath(target)}); only links inside the root are followed`,
        );
      }
      st = fs.statSync(target);
      if (st.isDirectory() && ancestors.has(target)) {
        throw new SymlinkLoopError(`symlink loop: ${showPath(rel)} points back to an enclosing directory`);
      }
      counts.symlinksFollowed++;
      real = target;
      linked = true;
    }
    if (st.isDirectory()) {
      enter(name, real, rel);
      maybeReport();
      continue;
    }
    if (!st.isFile()) {
      counts.specialCount++;
      if (counts.specials.length < 100) counts.specials.push(rel);
      continue;
    }
    if (!modeAllowsRead(st)) {
      try {
        fs.accessSync(real, fs.constants.R_OK);
      } catch (err) {
        throw mapFsError(err as NodeJS.ErrnoException, rel);
      }
    }
    const src = linked ? srcOf(real) : dir.src ? `${dir.src}/${name}` : name;
    counts.files++;
    counts.bytes += st.size;
    // Same text as JSON.stringify(['F', name, size, mtime, src]).
    emit(`["F",${JSON.stringify(name)},${st.size},${Math.trunc(st.mtimeMs)},${JSON.stringify(src)}]\n`);
    maybeReport();
  }
  flush();
  return counts;
}

// ---- thread entry ------------------------------------------------------------------------------
const port = parentPort;
if (port) {
  try {
    const counts = walkTree(workerData as ScanThreadInput, (progress) =>
      port.postMessage({ type: 'progress', progress } satisfies ScanThreadMessage),
    );
    port.postMessage({ type: 'done', counts } satisfies ScanThreadMessage);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    port.postMessage({
      type: 'error',
      error: {
        name: e.name,
        message: e.message,
        stack: e.stack,
        code: e.code,
        errno: e.errno,
        syscall: e.syscall,
        path: e.path,
      },
    } satisfies ScanThreadMessage);
  }
}
