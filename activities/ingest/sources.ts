/**
 * Remote sources (an S3 prefix, HTTP(S) URLs) behind one small interface, one class per file
 * (s3.ts, http.ts). `mirrorSource` (mirror.ts) copies a source into a local tree that the
 * ordinary scan and pack then read. This file also holds the rule for which paths a mirror may hold.
 */
import type { Readable } from 'node:stream';
import { InvalidFileNameError, PathConflictError, showPath, UnsupportedSourceError } from '../errors.js';

/** One file of a source, as listed (before any byte is read). */
export interface SourceEntry {
  /** Relative POSIX path in the mirror. Checked by `mirrorSource`, never trusted. */
  path: string;
  /** Where the bytes are (the object key or the URL), for messages and for `open`. */
  ref: string;
  /** Size and mtime as listed; unknown when the source cannot say before the download. */
  size?: number;
  mtimeMs?: number;
  /** Opaque version tag (S3 ETag): `open` reads exactly this version or fails with SourceChangedError. */
  etag?: string;
}

/** The response to `open`: its head is known before any byte of the body is read. */
export interface OpenedEntry {
  body: Readable;
  /** Length the source announces for this body (Content-Length). */
  size?: number;
  /** Modification time the response states, used when the listing had none. */
  mtimeMs?: number;
  /** Hex MD5 of the body when the source states one (an S3 single-part, unencrypted ETag). */
  md5?: string;
  /** With a range asked for: bytes at the body's start to drop (the server sent the whole file). */
  skip?: number;
}

/** Part of a file: `length` bytes from `offset`. */
export interface ByteRange {
  offset: number;
  length: number;
}

export interface Source {
  /** The source as recorded in the manifest: `s3://bucket/prefix` or the URLs. */
  readonly uri: string;
  /** Every file, in byte order of `path` (mirrorSource relies on it to find path conflicts). */
  list(signal?: AbortSignal): AsyncIterable<SourceEntry>;
  /** The entry's bytes (only `range` of them when given; `size` is then the whole file's, when known). */
  open(entry: SourceEntry, signal?: AbortSignal, range?: ByteRange): Promise<OpenedEntry>;
  close(): void;
}

/** Longest file name most file systems accept, in bytes. */
const NAME_MAX = 255;

/**
 * Refuse a path that would escape the mirror root or that a file system (or a later restore)
 * cannot hold: absolute, empty / '.' / '..' segments, NUL, backslash, over-long names.
 */
export function checkRelPath(rel: string, ref: string): string {
  const why = (reason: string) => new InvalidFileNameError(`${reason}: ${showPath(rel)} (from ${ref})`);
  if (rel.startsWith('/')) throw why('absolute path');
  for (const seg of rel.split('/')) {
    if (seg === '..') throw why("'..' would escape the archive root");
    if (seg === '' || seg === '.') throw why("empty or '.' path segment is not a file name");
    if (seg.includes('\0') || seg.includes('\\')) throw why('NUL or backslash in a file name');
    if (Buffer.byteLength(seg) > NAME_MAX) throw why(`file name longer than ${NAME_MAX} bytes`);
  }
  return rel;
}

/** Byte order of UTF-8, the order S3 lists keys in (JS string order differs above U+FFFF). */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Finds, in one pass over a listing sorted by path, a path listed twice or one that is both a
 * file and a directory prefix. It keeps only the chain of earlier paths that are prefixes of the
 * current one: every path starting with `f` sits in one run of the sorted listing, so once a path
 * does not start with `f`, no later one does.
 */
export class PathOrder {
  private prev: Pick<SourceEntry, 'path' | 'ref'> | undefined;
  private readonly chain: Pick<SourceEntry, 'path' | 'ref'>[] = [];

  add(e: Pick<SourceEntry, 'path' | 'ref'>): void {
    if (this.prev) {
      const c = compareUtf8(e.path, this.prev.path);
      if (c === 0)
        throw new PathConflictError(`two entries for one path ${showPath(e.path)}: ${this.prev.ref} and ${e.ref}`);
      if (c < 0) {
        throw new UnsupportedSourceError(
          `source lists ${showPath(e.path)} after ${showPath(this.prev.path)}, out of key order, so path conflicts cannot be checked (S3 directory buckets are not supported)`,
        );
      }
    }
    this.prev = e;
    while (this.chain.length > 0 && !e.path.startsWith(this.chain[this.chain.length - 1]!.path)) this.chain.pop();
    const file = this.chain[this.chain.length - 1];
    if (file && e.path.startsWith(`${file.path}/`)) {
      throw new PathConflictError(
        `${showPath(file.path)} is a file (${file.ref}) and also a directory holding ${showPath(e.path)} (${e.ref})`,
      );
    }
    this.chain.push(e);
  }
}
