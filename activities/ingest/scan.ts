/**
 * Scan a local directory into a listing file (NDJSON, depth-first, entries in byte order), so
 * that a million-file tree never sits in memory or in a Temporal payload as one array.
 *
 * Listing lines:  ["D", name]                    enter a directory (the root's name is "")
 *                 ["F", name, size, mtimeMs, src] a regular file (src: path relative to the root
 *                                                 that holds the bytes; differs when reached by a symlink)
 *                 ["E"]                          leave the current directory
 * Symlinks are followed only inside the root; special files are reported, never read.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import {
  BrokenSymlinkError, EmptyDatasetError, InvalidFileNameError, NotADirectoryError, showPath,
  SourceNotFoundError, SymlinkEscapesRootError, SymlinkLoopError, UnreadableFileError,
} from '../errors.js';

export interface ScanResult {
  listingPath: string;
  files: number;
  dirs: number;
  bytes: number;
  /** Special files (FIFOs, sockets, devices) that were skipped, first 100. */
  specials: string[];
  specialCount: number;
  symlinksFollowed: number;
}

export type ListingLine = ['D', string] | ['F', string, number, number, string] | ['E'];

export interface ScanProgress {
  files: number;
  bytes: number;
}

function decodeName(raw: Buffer, parentRel: string): string {
  const s = raw.toString('utf8');
  if (!Buffer.from(s, 'utf8').equals(raw)) {
    throw new InvalidFileNameError(
      `file name is not valid UTF-8 and cannot be stored in UnixFS: ${showPath(Buffer.concat([Buffer.from(parentRel ? parentRel + '/' : ''), raw]))}`,
    );
  }
  return s;
}

function mapFsError(err: NodeJS.ErrnoException, rel: string): Error {
  if (err.code === 'EACCES' || err.code === 'EPERM') {
    return new UnreadableFileError(`cannot read ${showPath(rel)}: permission denied`, { cause: err });
  }
  if (err.code === 'ELOOP') return new SymlinkLoopError(`symlink loop at ${showPath(rel)}`, { cause: err });
  return err;
}

export async function scanLocal(
  rootArg: string,
  listingPath: string,
  onProgress: (p: ScanProgress) => void = () => {},
): Promise<ScanResult> {
  const root = path.resolve(rootArg);
  let st: fs.Stats;
  try {
    st = await fsp.stat(root);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') throw new SourceNotFoundError(`source does not exist: ${showPath(root)}`, { cause: e });
    throw mapFsError(e, root);
  }
  if (!st.isDirectory()) throw new NotADirectoryError(`source is not a directory: ${showPath(root)}`);
  const realRoot = await fsp.realpath(root);

  await fsp.mkdir(path.dirname(listingPath), { recursive: true });
  const tmp = `${listingPath}.tmp`;
  const out = fs.createWriteStream(tmp);
  const write = (line: ListingLine) =>
    out.write(JSON.stringify(line) + '\n') ? undefined : new Promise<void>((r) => out.once('drain', () => r()));

  const result: ScanResult = { listingPath, files: 0, dirs: 0, bytes: 0, specials: [], specialCount: 0, symlinksFollowed: 0 };
  let lastReport = 0;

  /** Walk the directory whose real path is `real`, shown as `rel`; `ancestors` = real paths on the path. */
  const walk = async (real: string, rel: string, name: string, ancestors: Set<string>): Promise<void> => {
    result.dirs++;
    await write(['D', name]);
    let dirents: fs.Dirent<Buffer>[];
    try {
      dirents = await fsp.readdir(real, { withFileTypes: true, encoding: 'buffer' });
    } catch (err) {
      throw mapFsError(err as NodeJS.ErrnoException, rel || '.');
    }
    dirents.sort((a, b) => Buffer.compare(a.name, b.name));
    for (const d of dirents) {
      const childName = decodeName(d.name, rel);
      const childRel = rel ? `${rel}/${childName}` : childName;
      let childReal = path.join(real, childName);
      let kind: 'file' | 'dir' | 'special';
      if (d.isSymbolicLink()) {
        let target: string;
        try {
          target = await fsp.realpath(childReal);
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          if (e.code === 'ELOOP') throw new SymlinkLoopError(`symlink loop at ${showPath(childRel)}`, { cause: e });
          if (e.code === 'ENOENT') throw new BrokenSymlinkError(`symlink points nowhere: ${showPath(childRel)}`, { cause: e });
          throw mapFsError(e, childRel);
        }
        if (target !== realRoot && !target.startsWith(realRoot + path.sep)) {
          throw new SymlinkEscapesRootError(
            `symlink ${showPath(childRel)} points outside the source root (to ${showPath(target)}); only links inside the root are followed`,
          );
        }
        const tst = await fsp.stat(target);
        if (tst.isDirectory() && (ancestors.has(target) || target === real)) {
          throw new SymlinkLoopError(`symlink loop: ${showPath(childRel)} points back to an enclosing directory`);
        }
        result.symlinksFollowed++;
        childReal = target;
        kind = tst.isDirectory() ? 'dir' : tst.isFile() ? 'file' : 'special';
      } else {
        kind = d.isDirectory() ? 'dir' : d.isFile() ? 'file' : 'special';
      }
      if (kind === 'special') {
        result.specialCount++;
        if (result.specials.length < 100) result.specials.push(childRel);
        continue;
      }
      if (kind === 'dir') {
        const next = new Set(ancestors);
        next.add(childReal);
        await walk(childReal, childRel, childName, next);
        continue;
      }
      let fst: fs.Stats;
      try {
        fst = await fsp.stat(childReal);
        await fsp.access(childReal, fs.constants.R_OK);
      } catch (err) {
        throw mapFsError(err as NodeJS.ErrnoException, childRel);
      }
      const src = path.relative(realRoot, childReal).split(path.sep).join('/');
      result.files++;
      result.bytes += fst.size;
      await write(['F', childName, fst.size, Math.trunc(fst.mtimeMs), src]);
      if (result.files - lastReport >= 1000) {
        lastReport = result.files;
        onProgress({ files: result.files, bytes: result.bytes });
      }
    }
    await write(['E']);
  };

  try {
    await walk(realRoot, '', '', new Set([realRoot]));
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  } catch (err) {
    out.on('error', () => {});
    await new Promise<void>((resolve) => out.end(() => resolve()));
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  if (result.files === 0) {
    await fsp.rm(tmp, { force: true });
    throw new EmptyDatasetError(`source has no regular files to archive: ${showPath(root)}`);
  }
  await fsp.rename(tmp, listingPath);
  onProgress({ files: result.files, bytes: result.bytes });
  return result;
}
