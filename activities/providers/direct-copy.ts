/**
 * Copy a large file without passing it through the page cache on the way out (O_DIRECT writes;
 * see ../direct-io.ts for why and how). Reads stay buffered (the source is usually a shard just
 * written, still in cache). Double-buffered: the next chunk is read while this one is written.
 * The last partial block goes through a second, buffered descriptor. Where direct I/O is
 * unavailable, the caller falls back to an ordinary copy.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { ALIGN, alignedOffset, DirectIoUnsupported } from '../direct-io.js';

export { DirectIoUnsupported };

const CHUNK = 8 << 20;

/** Copy the first `length` bytes (block-aligned) from `input` to `out`, reading the next chunk while writing this one. */
async function copyBlocks(
  input: fsp.FileHandle,
  out: fsp.FileHandle,
  length: number,
  src: string,
  signal?: AbortSignal,
): Promise<void> {
  if (length <= 0) return;
  const bufs = [Buffer.allocUnsafeSlow(CHUNK + ALIGN), Buffer.allocUnsafeSlow(CHUNK + ALIGN)];
  const starts = [alignedOffset(out.fd, bufs[0]!), alignedOffset(out.fd, bufs[1]!)];
  const readChunk = async (i: number, at: number) => {
    const n = Math.min(CHUNK, length - at);
    let got = 0;
    while (got < n) {
      const r = await input.read(bufs[i]!, starts[i]! + got, n - got, at + got);
      if (r.bytesRead === 0) throw new Error(`${src} got shorter while it was copied`);
      got += r.bytesRead;
    }
    return n;
  };
  let at = 0;
  let cur = 0;
  let pending: Promise<number> | undefined = readChunk(0, 0);
  while (pending) {
    const n: number = await pending;
    // Nothing is in flight here: a cancelled copy stops between chunks (and leaves no `dst`).
    signal?.throwIfAborted();
    const next: Promise<number> | undefined = at + n < length ? readChunk(cur ^ 1, at + n) : undefined;
    let put = 0;
    while (put < n) put += (await out.write(bufs[cur]!, starts[cur]! + put, n - put, at + put)).bytesWritten;
    at += n;
    cur ^= 1;
    pending = next;
  }
}

/**
 * Copy `src` to the new file `dst` (which must not exist), with direct writes, and fsync it.
 * Throws DirectIoUnsupported (leaving no `dst`) when direct I/O cannot be used there, and the
 * signal's reason (leaving no `dst`) when `signal` aborts before the copy is done.
 */
export async function copyFileDirect(src: string, dst: string, signal?: AbortSignal): Promise<void> {
  const O_DIRECT = fs.constants.O_DIRECT;
  if (!O_DIRECT) throw new DirectIoUnsupported('O_DIRECT is not available on this platform');
  const input = await fsp.open(src, 'r');
  let out: fsp.FileHandle;
  try {
    out = await fsp.open(dst, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | O_DIRECT, 0o644);
  } catch (err) {
    await input.close();
    if ((err as NodeJS.ErrnoException).code === 'EINVAL')
      throw new DirectIoUnsupported('the filesystem refuses O_DIRECT');
    throw err;
  }
  let ok = false;
  try {
    const size = (await input.stat()).size;
    const whole = size - (size % ALIGN);
    await copyBlocks(input, out, whole, src, signal);
    // The tail (less than one block) through a buffered descriptor.
    if (size > whole) {
      const tail = Buffer.allocUnsafe(size - whole);
      const r = await input.read(tail, 0, tail.length, whole);
      if (r.bytesRead !== tail.length) throw new Error(`${src} got shorter while it was copied`);
      const fh = await fsp.open(dst, 'r+');
      try {
        await fh.write(tail, 0, tail.length, whole);
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    await out.truncate(size);
    await out.sync();
    ok = true;
  } finally {
    await input.close();
    await out.close();
    if (!ok) await fsp.rm(dst, { force: true });
  }
}
