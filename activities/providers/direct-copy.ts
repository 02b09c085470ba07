/**
 * Copy a large file without passing it through the page cache on the way out (O_DIRECT writes).
 *
 * An archived piece is cold data: a buffered copy makes the kernel find (and, on a virtual machine
 * whose memory is backed lazily, fault in) fresh page-cache pages for every byte, which costs
 * several times the copy itself, and then evicts useful cache to hold bytes nobody reads soon.
 * Direct writes go from our buffers to the device. Reads stay buffered (the source is usually a
 * shard just written, still in cache). Double-buffered: the next chunk is read while this one is
 * written.
 *
 * O_DIRECT wants the buffer address, the file offset and the length aligned to the device's
 * logical block size. Node gives no buffer addresses, so the aligned start inside each buffer is
 * found once by trying a one-block write at each 16-byte step. The last partial block goes
 * through a second, buffered descriptor. Where any of this is unavailable (no O_DIRECT, a
 * filesystem that refuses it), the caller falls back to an ordinary copy.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';

const CHUNK = 8 << 20;
/** Largest logical block size we align to. */
const ALIGN = 4096;

export class DirectIoUnsupported extends Error {
  override name = 'DirectIoUnsupported';
}

/** Returns the offset in `buf` at which direct writes through `fh` are accepted. */
async function alignedStart(fh: fsp.FileHandle, buf: Buffer): Promise<number> {
  for (let shift = 0; shift < ALIGN; shift += 16) {
    try {
      // A trial block at the start of the file, overwritten by the copy right after.
      await fh.write(buf, shift, ALIGN, 0);
      return shift;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    }
  }
  throw new DirectIoUnsupported('no aligned buffer offset accepted for direct I/O');
}

/** Copy the first `length` bytes (block-aligned) from `input` to `out`, reading the next chunk while writing this one. */
async function copyBlocks(input: fsp.FileHandle, out: fsp.FileHandle, length: number, src: string): Promise<void> {
  if (length <= 0) return;
  const bufs = [Buffer.allocUnsafeSlow(CHUNK + ALIGN), Buffer.allocUnsafeSlow(CHUNK + ALIGN)];
  const starts = [await alignedStart(out, bufs[0]!), await alignedStart(out, bufs[1]!)];
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
 * Throws DirectIoUnsupported (leaving no `dst`) when direct I/O cannot be used there.
 */
export async function copyFileDirect(src: string, dst: string): Promise<void> {
  const O_DIRECT = fs.constants.O_DIRECT;
  if (!O_DIRECT) throw new DirectIoUnsupported('O_DIRECT is not available on this platform');
  const input = await fsp.open(src, 'r');
  let out: fsp.FileHandle;
  try {
    out = await fsp.open(dst, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | O_DIRECT, 0o644);
  } catch (err) {
    await input.close();
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') throw new DirectIoUnsupported('the filesystem refuses O_DIRECT');
    throw err;
  }
  let ok = false;
  try {
    const size = (await input.stat()).size;
    const whole = size - (size % ALIGN);
    await copyBlocks(input, out, whole, src);
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
