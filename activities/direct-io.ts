/**
 * Direct I/O (O_DIRECT) helpers shared by the packer's shard writes and the local provider's
 * copies: writes that go from our memory to the device without passing through the page cache.
 *
 * Staged shards and archived pieces are cold data. A buffered write makes the kernel find (and,
 * on a virtual machine whose memory is backed lazily, fault in) a fresh page-cache page for
 * every byte, which on such a machine costs several times the write itself, and then evicts
 * useful cache to hold bytes nobody reads soon. On other disks direct writes are the slower way
 * (no write-back merging, one request at a time): the pack measures both in its staging
 * directory and takes the faster (pack/write-strategy.ts).
 *
 * O_DIRECT wants the buffer address, the file offset and the length aligned to the device's
 * logical block size. Node gives no buffer addresses, so the aligned start inside a buffer is
 * found by trying a one-block write at each 16-byte step. Where any of this is unavailable (no
 * O_DIRECT on the platform, a filesystem that refuses it), callers fall back to buffered I/O.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Largest logical block size we align to: offsets, lengths and buffer addresses are multiples of it. */
export const ALIGN = 4096;

export class DirectIoUnsupported extends Error {
  override name = 'DirectIoUnsupported';
}

/** Flags to create (or truncate) `file` for direct writes; undefined where the platform has no O_DIRECT. */
export function directWriteFlags(): number | undefined {
  const O_DIRECT = fs.constants.O_DIRECT;
  return O_DIRECT ? fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | O_DIRECT : undefined;
}

/**
 * The offset in `buf` (which must have at least 2 × ALIGN bytes) from which direct writes through
 * `fd` are accepted. Writes one trial block at the start of the file, to be overwritten or
 * truncated by the caller. Throws DirectIoUnsupported when no offset is accepted.
 */
export function alignedOffset(fd: number, buf: Uint8Array): number {
  for (let shift = 0; shift < ALIGN && shift + ALIGN <= buf.length; shift += 16) {
    try {
      fs.writeSync(fd, buf, shift, ALIGN, 0);
      return shift;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    }
  }
  throw new DirectIoUnsupported('no aligned buffer offset accepted for direct I/O');
}

/**
 * Where in `buf` direct writes to files in `dir` may start, or undefined when direct I/O cannot
 * be used there (probed with a scratch file, removed again).
 */
export function probeDirect(dir: string, buf: Uint8Array): number | undefined {
  const flags = directWriteFlags();
  if (flags === undefined) return undefined;
  const probe = path.join(dir, `.direct-probe-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  let fd: number;
  try {
    fd = fs.openSync(probe, flags | fs.constants.O_EXCL, 0o600);
  } catch (err) {
    // A filesystem may create the file before it refuses the flag (ramfs does).
    fs.rmSync(probe, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
    throw err;
  }
  try {
    return alignedOffset(fd, buf);
  } catch (err) {
    if (err instanceof DirectIoUnsupported) return undefined;
    throw err;
  } finally {
    fs.closeSync(fd);
    fs.rmSync(probe, { force: true });
  }
}
