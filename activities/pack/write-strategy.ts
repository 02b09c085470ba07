/**
 * How the pack writes shard files to a staging directory: with direct I/O (O_DIRECT, from the
 * ring to the device, see ../direct-io.ts) or through the page cache. Chosen by measuring both in
 * that directory, not from one machine's behaviour: on one disk direct writes ran at the hashing
 * limit while page-cache writes were slow; on another, the same choice cost half the pack's speed.
 *
 * The probe writes a few tens of MiB each way, interleaved, in the pack's write size (one ring
 * slot) with as many writes in flight as the hash thread has, fsyncs as the pack does before a
 * shard is announced, and deletes its file; the faster way wins. A filesystem that refuses
 * O_DIRECT (tmpfs) gets buffered writes without a probe. The choice is cached per filesystem for
 * the life of the process (`packInThread` makes it on the main thread, so the pack threads it
 * starts share it). `PROVENANT_PACK_IO=direct|buffered|auto` overrides it (benchmarks; `direct`
 * where the filesystem refuses it is an error).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ALIGN, directWriteFlags, probeDirect } from '../direct-io.js';
import { SLOT_BYTES } from './shard-hasher.js';

export type WriteStrategy = 'direct' | 'buffered';

/** One measured way of writing: `bytes` written and made durable in `secs`. */
export interface WriteProbe {
  strategy: WriteStrategy;
  bytes: number;
  secs: number;
  mibps: number;
}

export interface WriteChoice {
  strategy: WriteStrategy;
  /** measured: the faster probe; no-direct: the filesystem refuses O_DIRECT; override: asked for. */
  why: 'measured' | 'no-direct' | 'override';
  /** The best run of each strategy probed (none when not measured). */
  probes: WriteProbe[];
}

/** Bytes each probe run writes, and runs per strategy (interleaved; the best of each counts). */
export const PROBE_BYTES = 16 * SLOT_BYTES;
export const PROBE_RUNS = 2;
/** Writes in flight, as the hash thread keeps them (its thread pool has four threads). */
const IN_FLIGHT = 4;
const MiB = 1024 * 1024;

/** The faster of the probes (best run of each strategy); buffered when there is no direct probe. */
export function pickStrategy(probes: readonly WriteProbe[]): WriteStrategy {
  const best = (s: WriteStrategy) => Math.max(0, ...probes.filter((p) => p.strategy === s).map((p) => p.mibps));
  const direct = best('direct');
  return direct > 0 && direct > best('buffered') ? 'direct' : 'buffered';
}

/** The best run of each strategy, fastest first. */
export function bestProbes(probes: readonly WriteProbe[]): WriteProbe[] {
  const out: WriteProbe[] = [];
  for (const s of ['direct', 'buffered'] as const) {
    const runs = probes.filter((p) => p.strategy === s);
    if (runs.length > 0) out.push(runs.reduce((a, b) => (b.mibps > a.mibps ? b : a)));
  }
  return out.sort((a, b) => b.mibps - a.mibps);
}

/** A buffer of `bytes` (a multiple of ALIGN) of random bytes, and where direct writes from it may start in `dir`. */
function probeBuffer(dir: string, bytes: number, direct: boolean): { buf: Uint8Array; offset: number | undefined } {
  const whole = new Uint8Array(new SharedArrayBuffer(bytes + ALIGN));
  crypto.randomFillSync(whole);
  return { buf: whole, offset: direct ? probeDirect(dir, whole) : 0 };
}

export interface MeasureOptions {
  /** Bytes per write (default: one ring slot, as the pack writes). */
  writeBytes?: number;
  /** fsync after this many bytes (the pack fsyncs each shard), and at the end. */
  fsyncEveryBytes?: number;
  /** A buffer to write from (its aligned offset for direct writes is found here). */
  buf?: Uint8Array;
}

/**
 * Writes `bytes` to a scratch file in `dir` the way the pack writes a shard with `strategy`
 * (writes of one ring slot, several in flight, fsync at the end), deletes it, and returns the
 * rate. Throws when `strategy` is direct and `dir` refuses O_DIRECT.
 */
export async function measureWrite(
  dir: string,
  strategy: WriteStrategy,
  bytes: number,
  o: MeasureOptions = {},
): Promise<WriteProbe> {
  const writeBytes = o.writeBytes ?? SLOT_BYTES;
  const direct = strategy === 'direct';
  const flags = direct ? directWriteFlags() : fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC;
  if (flags === undefined) throw new Error('direct I/O is not available on this platform');
  const whole = o.buf ?? probeBuffer(dir, writeBytes, false).buf;
  const offset = direct ? probeDirect(dir, whole) : 0;
  if (offset === undefined) throw new Error(`direct I/O is not available in ${dir}`);
  const view = whole.subarray(offset, offset + writeBytes);
  if (view.length < writeBytes) throw new Error('measureWrite: buffer too small');
  const file = path.join(dir, `.write-probe-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  const fh = await fs.promises.open(file, flags | fs.constants.O_EXCL, 0o600);
  try {
    const t0 = performance.now();
    const fsyncEvery = o.fsyncEveryBytes ?? Infinity;
    let sinceSync = 0;
    const inFlight = new Set<Promise<void>>();
    for (let pos = 0; pos < bytes; pos += writeBytes) {
      // Direct writes take whole blocks: the last short one is rounded up (the file is deleted).
      const len = Math.min(writeBytes, direct ? Math.ceil((bytes - pos) / ALIGN) * ALIGN : bytes - pos);
      const w: Promise<void> = writeFully(fh, view, len, pos).finally(() => inFlight.delete(w));
      inFlight.add(w);
      if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
      sinceSync += len;
      if (sinceSync >= fsyncEvery) {
        await Promise.all(inFlight);
        await fh.sync();
        sinceSync = 0;
      }
    }
    await Promise.all(inFlight);
    await fh.sync();
    const secs = (performance.now() - t0) / 1000;
    return { strategy, bytes, secs, mibps: bytes / MiB / secs };
  } finally {
    await fh.close();
    await fs.promises.rm(file, { force: true });
  }
}

async function writeFully(
  fh: fs.promises.FileHandle,
  view: Uint8Array,
  length: number,
  position: number,
): Promise<void> {
  for (let off = 0; off < length;) {
    const { bytesWritten } = await fh.write(view, off, length - off, position + off);
    if (bytesWritten === 0) throw new Error(`write of ${length} bytes at ${position} wrote nothing`);
    off += bytesWritten;
  }
}

export interface ChooseOptions {
  /** true / false: that strategy without measuring (true where O_DIRECT is refused throws). */
  direct?: boolean;
  /** Bytes per probe run (default PROBE_BYTES). */
  probeBytes?: number;
  /** Probe runs per strategy (default PROBE_RUNS). */
  runs?: number;
}

/** Measures both ways of writing in `dir` (interleaved) and picks the faster. */
export async function chooseWriteStrategy(dir: string, o: ChooseOptions = {}): Promise<WriteChoice> {
  const env = process.env.PROVENANT_PACK_IO;
  const forced = o.direct ?? (env === 'direct' ? true : env === 'buffered' ? false : undefined);
  if (forced === false) return { strategy: 'buffered', why: 'override', probes: [] };
  const { buf, offset } = probeBuffer(dir, SLOT_BYTES, true);
  if (forced === true && offset === undefined) throw new Error(`direct I/O is not available in ${dir}`);
  if (forced === true) return { strategy: 'direct', why: 'override', probes: [] };
  if (offset === undefined) return { strategy: 'buffered', why: 'no-direct', probes: [] };
  // A staging bounded to a few shards (pack.stagingWindowShards) may be small: the probe takes a
  // quarter of its free space at most, so that it never fills it.
  const st = fs.statfsSync(dir);
  const room = Math.floor((st.bavail * st.bsize) / 4 / ALIGN) * ALIGN;
  const bytes = Math.max(ALIGN, Math.min(o.probeBytes ?? PROBE_BYTES, room));
  const runs: WriteProbe[] = [];
  for (let i = 0; i < (o.runs ?? PROBE_RUNS); i++) {
    // Alternate which goes first, so that neither always follows the other's writeback.
    for (const s of i % 2 === 0 ? (['direct', 'buffered'] as const) : (['buffered', 'direct'] as const)) {
      runs.push(await measureWrite(dir, s, bytes, { buf }));
    }
  }
  return { strategy: pickStrategy(runs), why: 'measured', probes: bestProbes(runs) };
}

const cache = new Map<string, Promise<WriteChoice>>();

/**
 * The write strategy for staging directory `dir`, measured once per filesystem per process
 * (an explicit `direct`, or the environment's override, is not cached).
 */
export function writeStrategyFor(dir: string, o: ChooseOptions = {}): Promise<WriteChoice> {
  const env = process.env.PROVENANT_PACK_IO;
  if (o.direct !== undefined || env === 'direct' || env === 'buffered') return chooseWriteStrategy(dir, o);
  fs.mkdirSync(dir, { recursive: true });
  const key = String(fs.statSync(dir).dev);
  let choice = cache.get(key);
  if (!choice) {
    choice = chooseWriteStrategy(dir, o);
    cache.set(key, choice);
    // A failed probe (a full disk, say) is not remembered: the next pack measures again.
    choice.catch(() => cache.delete(key));
  }
  return choice;
}

/** One line for logs: the choice and the probe's figures. */
export function describeChoice(c: WriteChoice): string {
  const figures = c.probes.map((p) => `${p.strategy} ${p.mibps.toFixed(0)} MiB/s`).join(', ');
  return `${c.strategy} (${c.why}${figures ? `: ${figures}` : ''})`;
}
