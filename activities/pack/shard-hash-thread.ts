/**
 * Worker-thread entry of the shard hasher (see shard-hasher.ts): takes CAR bytes from the shared
 * ring in order, writes them (asynchronously, through the thread pool) to the shard file and its
 * twins, feeds sha2-256 and CommP (or takes the CommP batch roots the packing thread computed)
 * meanwhile, and releases each slot once it is both hashed and written. At a shard's end marker
 * it digests the shard; once the shard's writes are done it fsyncs and renames its files, and
 * reports, in shard order.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { ALIGN, directWriteFlags } from '../direct-io.js';
import { carCidFromSha256 } from './cids.js';
import { CommPHasher } from './commp.js';
import {
  BATCHES_PER_SLOT,
  EXITED,
  FD,
  FLAG_END,
  FLAG_ROOTS,
  FLAGS,
  HEAD,
  INDEX,
  LEN,
  partialPath,
  REPORTS,
  shardFileName,
  SLOT_BYTES,
  SLOT_COUNT,
  slotWord,
  STOP,
  STOPPED,
  TAIL,
  twinFileName,
  type HashReport,
  type HashThreadData,
  type ShardDigest,
} from './shard-hasher.js';

const {
  ring,
  ringOffset,
  direct,
  twins,
  roots: rootsBuffer,
  ctrl: ctrlBuffer,
  dir,
  port,
} = workerData as HashThreadData;
const roots = new Uint8Array(rootsBuffer);
const ctrl = new Int32Array(ctrlBuffer);
const slots = Array.from(
  { length: SLOT_COUNT },
  (_, i) => new Uint8Array(ring, ringOffset + i * SLOT_BYTES, SLOT_BYTES),
);

// Atomics.waitAsync does not keep a thread alive: this does, until the packer terminates us.
const keepAlive = setInterval(() => {}, 1 << 30);
process.on('exit', () => {
  Atomics.store(ctrl, EXITED, 1);
  Atomics.notify(ctrl, TAIL);
  Atomics.notify(ctrl, REPORTS);
});
/** Atomics.waitAsync (ES2024; Node ≥ 16). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      a: Int32Array,
      i: number,
      v: number,
    ): { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync;

const post = (r: HashReport) => {
  port.postMessage(r);
  Atomics.add(ctrl, REPORTS, 1);
  Atomics.notify(ctrl, REPORTS);
};

/** A shard being written: its descriptors (the packer's, then the twins' this thread opened). */
interface Shard {
  index: number;
  fds: number[];
  /** Bytes of it handed to writes so far. */
  offset: number;
  /** Writes issued and not completed. */
  writing: number;
  digest?: ShardDigest;
  /** fsync and rename started. */
  finishing: boolean;
  synced: boolean;
}

/** Shards ended and waiting for their writes and fsync; reports go out in shard order. */
const finishing: Shard[] = [];
/** Writes in flight, per ring slot and in all. */
const slotWrites = new Int32Array(SLOT_COUNT);
let writes = 0;
/** Slots hashed (`next`) and released to the packer (`tail`; a slot is released once it is written too). */
let next = 0;
let tail = 0;
let failed = false;
/** Resolves the loop's wait when the last write in flight completes (during a stop). */
let onIdle: (() => void) | undefined;

const fail = (err: unknown) => {
  if (failed) return;
  failed = true;
  const e = err instanceof Error ? err : new Error(String(err));
  post({
    type: 'error',
    error: { name: e.name, message: e.message, stack: e.stack, code: (e as NodeJS.ErrnoException).code },
  });
};

const flushReports = () => {
  while (finishing.length > 0 && finishing[0]!.synced && !failed)
    post({ type: 'shard', digest: finishing.shift()!.digest! });
};

/** Hands back to the packer every slot, in order, that is hashed and has no write in flight. */
function release(): void {
  const was = tail;
  while (tail < next && slotWrites[tail % SLOT_COUNT] === 0) tail++;
  if (tail !== was) {
    Atomics.store(ctrl, TAIL, tail);
    Atomics.notify(ctrl, TAIL);
  }
}

/** Writes `length` bytes of `view` at `position`, however many calls it takes; `done` once. */
function writeAll(
  fd: number,
  view: Uint8Array,
  offset: number,
  length: number,
  position: number,
  done: (err: Error | null) => void,
): void {
  fs.write(fd, view, offset, length, position, (err, n) => {
    if (err) return done(err);
    if (n === length) return done(null);
    if (n === 0) return done(new Error(`write of ${length} bytes at ${position} wrote nothing`));
    writeAll(fd, view, offset + n, length - n, position + n, done);
  });
}

/** Appends slot `s`'s first `len` bytes to every file of `shard`. */
function writeSlot(shard: Shard, s: number, len: number): void {
  const view = slots[s]!;
  // Direct writes need whole blocks: a shard's last bytes past its last whole block go through
  // the page cache (a second descriptor; fsync covers the file whichever descriptor wrote).
  const whole = direct ? len - (len % ALIGN) : len;
  const position = shard.offset;
  shard.offset += len;
  if (whole < len) {
    const rest = Buffer.from(view.subarray(whole, len));
    for (let t = 0; t < shard.fds.length; t++) {
      const fd = fs.openSync(partialPath(dir, shard.index, t), 'r+');
      try {
        for (let off = 0; off < rest.length;)
          off += fs.writeSync(fd, rest, off, rest.length - off, position + whole + off);
      } finally {
        fs.closeSync(fd);
      }
    }
  }
  if (whole === 0) return;
  for (const fd of shard.fds) {
    slotWrites[s]!++;
    shard.writing++;
    writes++;
    writeAll(fd, view, 0, whole, position, (err) => {
      slotWrites[s]!--;
      shard.writing--;
      writes--;
      if (err) fail(err);
      if (writes === 0) onIdle?.();
      if (Atomics.load(ctrl, STOP)) return;
      release();
      finishShard(shard);
    });
  }
}

/** Once an ended shard's writes are done: fsync its files, rename them into place, report. */
function finishShard(shard: Shard): void {
  if (!shard.digest || shard.writing > 0 || shard.finishing) return;
  shard.finishing = true;
  const synced = (fd: number) =>
    new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
  const renamed = (t: number) =>
    new Promise<void>((resolve, reject) => {
      const to = path.join(dir, t ? twinFileName(shard.index, t) : shardFileName(shard.index));
      fs.rename(partialPath(dir, shard.index, t), to, (err) => (err ? reject(err) : resolve()));
    });
  // The packing thread opened the shard file and closes it once it has the report; the twins are ours.
  Promise.all(shard.fds.map(synced))
    .then(() => {
      // After a stop the loop closed them (see closeTwins).
      if (Atomics.load(ctrl, STOP)) return;
      closeTwins(shard);
      return Promise.all(Array.from({ length: twins + 1 }, (_, t) => renamed(t))).then(() => {
        shard.synced = true;
        flushReports();
      });
    })
    .catch((err: unknown) => {
      if (!Atomics.load(ctrl, STOP)) fail(err);
    });
}

function closeTwins(shard: Shard): void {
  for (const fd of shard.fds.slice(1)) fs.closeSync(fd);
  shard.fds.length = 1;
}

function openShard(index: number, fd: number): Shard {
  const fds = [fd];
  const flags = direct ? directWriteFlags()! : fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC;
  for (let t = 1; t <= twins; t++) fds.push(fs.openSync(partialPath(dir, index, t), flags, 0o644));
  return { index, fds, offset: 0, writing: 0, finishing: false, synced: false };
}

/** The shard whose slots are being taken. */
let shard: Shard | undefined;

/**
 * Leaves the loop (stopped, or failed): once the writes in flight are done, since nothing of ours
 * may write after the packer gets control back, closes our descriptors and says so.
 */
async function leave(): Promise<void> {
  if (writes > 0) await new Promise<void>((r) => (onIdle = r));
  for (const sh of [...finishing, ...(shard ? [shard] : [])]) closeTwins(sh);
  clearInterval(keepAlive);
  Atomics.store(ctrl, STOPPED, 1);
  Atomics.notify(ctrl, STOPPED);
}

async function run(): Promise<void> {
  let sha = crypto.createHash('sha256');
  const commp = new CommPHasher();
  let carBytes = 0;
  for (;;) {
    if (Atomics.load(ctrl, STOP)) return;
    const head = Atomics.load(ctrl, HEAD);
    if (head === next) {
      const w = waitAsync(ctrl, HEAD, head);
      if (w.async) await w.value;
      continue;
    }
    const s = next % SLOT_COUNT;
    const len = Atomics.load(ctrl, slotWord(s, LEN));
    const flags = Atomics.load(ctrl, slotWord(s, FLAGS));
    const index = Atomics.load(ctrl, slotWord(s, INDEX));
    if (!shard || shard.index !== index) shard = openShard(index, Atomics.load(ctrl, slotWord(s, FD)));
    if (len > 0) {
      if (len !== SLOT_BYTES && !(flags & FLAG_END))
        throw new Error(`slot of ${len} bytes in the middle of shard ${index}`);
      writeSlot(shard, s, len);
      const view = slots[s]!.subarray(0, len);
      sha.update(view);
      if (flags & FLAG_ROOTS) {
        // A full slot is whole batches of this shard's CAR stream (see SLOT_BYTES).
        for (let b = s * BATCHES_PER_SLOT; b < (s + 1) * BATCHES_PER_SLOT; b++)
          commp.pushBatchRoot(roots.subarray(b * 32, b * 32 + 32));
      } else {
        commp.update(view);
      }
      carBytes += len;
    }
    if (flags & FLAG_END) {
      const piece = commp.digest();
      shard.digest = {
        index,
        carCid: carCidFromSha256(sha.digest()),
        pieceCid: piece.pieceCid,
        paddedPieceBytes: piece.paddedPieceBytes,
        carBytes,
      };
      finishing.push(shard);
      finishShard(shard);
      shard = undefined;
      sha = crypto.createHash('sha256');
      commp.reset();
      carBytes = 0;
    }
    next++;
    release();
    // Let write completions (and fsync/rename callbacks) run even while the ring never empties.
    if (writes > 0 || finishing.length > 0) await new Promise((r) => setImmediate(r));
  }
}

run()
  .catch(fail)
  .then(leave)
  .catch(() => undefined);
parentPort!.postMessage('ready');
