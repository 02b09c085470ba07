/**
 * The second core of packing: a worker thread that writes the CAR bytes to the shard file and
 * hashes them (sha2-256 for the CAR CID, CommP for the piece CID), while the packing thread
 * reads files, hashes leaves and frames blocks.
 *
 * The packing thread frames blocks into the slots of a shared ring (SharedArrayBuffer; file
 * reads land in it directly) and publishes each full slot; the hash thread takes slots in order,
 * appends them to the shard file, hashes them and releases them. Bytes are never copied between
 * threads and never read back from disk. The ring is the only buffer between the two: when the
 * hash thread falls behind, the packing thread waits for a free slot, so memory stays bounded.
 * While the queue is long, the packing thread computes the CommP batch roots of the slots it
 * publishes itself, which balances the work between the two cores whatever the dataset.
 *
 * A slot carries its shard's file descriptor and index; the last slot of a shard carries an end
 * marker. The hash thread then digests, fsyncs the file (asynchronously, off both hot loops),
 * renames it from `.partial` to its final name and reports, in shard order. The packing thread
 * collects reports without blocking (`poll`) or waits for them (`drain`), and closes the
 * descriptor.
 *
 * Writes are asynchronous (the thread pool does them while this thread hashes), and a slot is
 * released once it is hashed and written. Where the staging filesystem takes them, they are
 * direct (O_DIRECT, see ../direct-io.ts): the ring is allocated so that its slots start on an
 * aligned address, and a full slot is a whole number of blocks, so every write but a shard's last
 * few bytes goes straight from the ring to the device, without page cache.
 *
 * Twins: with `twins: k`, each shard is also written to k more files (`shard-<i>.car.twin<j>`)
 * from the same ring memory, as it is hashed. They are whole, independent copies of the staged
 * shard, made while the CPU-bound pack goes on, for copies to providers on this machine that can
 * take a file in by linking it (see `twinFileName` and the put activity). They are written the
 * way the shard is (direct or through the page cache), and fsynced with it before it is reported.
 *
 * Control words (Int32Array over a second SharedArrayBuffer):
 *   HEAD     slots published by the packer       TAIL     slots released by the hash thread
 *   REPORTS  reports posted by the hash thread   STOP     set by the packer: stop now
 *   EXITED   set by the hash thread as it exits  STOPPED  set by it once it left its loop
 *                                                        (stop or failure) and its writes are done
 *   per slot: length, flags (END, ROOTS), fd, shard index
 * plus, per slot, room for the CommP batch roots the packing thread may have computed.
 */
import path from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { ALIGN, probeDirect } from '../direct-io.js';
import { BATCH_BYTES, CommPHasher } from './commp.js';

export const SLOT_COUNT = 8;
/** Two CommP batches (~3.97 MiB): a shard's full slots start on batch boundaries. */
export const BATCHES_PER_SLOT = 2;
export const SLOT_BYTES = BATCHES_PER_SLOT * BATCH_BYTES;
/**
 * When at least this many slots wait for the hash thread, the packing thread computes the
 * CommP batch roots of the slot it publishes itself (the hash thread then only pushes them):
 * the two threads share the CommP work in whatever proportion keeps both busy.
 */
export const HELP_WHEN_QUEUED = 3;

export interface ShardHasherOptions {
  /** Queue length from which the packing thread hashes CommP batches itself (tests: 0 = always). */
  helpWhenQueued?: number;
  /**
   * Direct I/O for the shard files (true: required; false: through the page cache; undefined:
   * where the staging filesystem takes it). The pack decides by measuring (write-strategy.ts).
   */
  direct?: boolean;
  /** Extra copies of each shard written while it is hashed (see above). */
  twins?: number;
}

export const HEAD = 0;
export const TAIL = 1;
export const REPORTS = 2;
export const STOP = 3;
export const EXITED = 4;
export const STOPPED = 5;
const HEADER_WORDS = 6;
const SLOT_WORDS = 4;
export const slotWord = (slot: number, field: 0 | 1 | 2 | 3): number => HEADER_WORDS + slot * SLOT_WORDS + field;
export const LEN = 0;
export const FLAGS = 1;
export const FD = 2;
export const INDEX = 3;
export const FLAG_END = 1;
/** The slot's CommP batch roots are already in the roots area. */
export const FLAG_ROOTS = 2;

export interface HashThreadData {
  ring: SharedArrayBuffer;
  /** Where the first slot starts in `ring` (aligned for direct I/O). */
  ringOffset: number;
  direct: boolean;
  twins: number;
  roots: SharedArrayBuffer;
  ctrl: SharedArrayBuffer;
  dir: string;
  port: MessagePort;
}

/** What the hash thread reports once a shard is hashed, fsynced and renamed. */
export interface ShardDigest {
  index: number;
  carCid: string;
  pieceCid: string;
  paddedPieceBytes: number;
  carBytes: number;
}

export type HashReport =
  | { type: 'shard'; digest: ShardDigest }
  | { type: 'error'; error: { name: string; message: string; stack?: string; code?: string } };

export function shardFileName(index: number): string {
  return `shard-${String(index).padStart(6, '0')}.car`;
}

/** The `twin`-th extra copy (1-based) of the shard file `shardFile` (a name or a path). */
export function twinOf(shardFile: string, twin: number): string {
  return `${shardFile}.twin${twin}`;
}

/** The `twin`-th extra copy of shard `index`. */
export function twinFileName(index: number, twin: number): string {
  return twinOf(shardFileName(index), twin);
}

export function partialPath(dir: string, index: number, twin = 0): string {
  return path.join(dir, `${twin ? twinFileName(index, twin) : shardFileName(index)}.partial`);
}

/** Thrown on the packing thread when the hash thread failed. */
export class ShardHashError extends Error {
  override name = 'ShardHashError';
}

/**
 * A worker inherits the process's options, except that one meant for the main script only
 * (`node --input-type=module -e …`) makes it fail: then it gets none.
 */
export function workerExecArgv(): string[] | undefined {
  return process.execArgv.some((a) => a.startsWith('--input-type')) ? [] : undefined;
}

/**
 * The young generation of our threads' heaps, in MiB. Their garbage is short-lived buffers and
 * records; V8 13 (Node 24) sizes this from the machine's memory, which took a 300,000-file pack to
 * 426 MiB of RSS (228 on Node 20): bounded here, the same pack takes ~300 and runs as fast.
 */
const THREAD_YOUNG_GENERATION_MB = 16;

/** Options every thread of ours is started with (see workerExecArgv and THREAD_YOUNG_GENERATION_MB). */
export function threadOptions(): { execArgv?: string[]; resourceLimits: { maxYoungGenerationSizeMb: number } } {
  const execArgv = workerExecArgv();
  return {
    ...(execArgv ? { execArgv } : {}),
    resourceLimits: { maxYoungGenerationSizeMb: THREAD_YOUNG_GENERATION_MB },
  };
}

/** Packing-thread side of the ring. */
export class ShardHasher {
  /** One block more than the slots: they start at the offset direct writes accept. */
  private readonly ring = new SharedArrayBuffer(SLOT_COUNT * SLOT_BYTES + ALIGN);
  private readonly roots = new Uint8Array(new SharedArrayBuffer(SLOT_COUNT * BATCHES_PER_SLOT * 32));
  /** Scratch for the batches this thread hashes itself; created on first use. */
  private commp: CommPHasher | undefined;
  private readonly ctrl = new Int32Array(new SharedArrayBuffer(4 * (HEADER_WORDS + SLOT_COUNT * SLOT_WORDS)));
  private readonly slots: Uint8Array[] = [];
  private readonly port: MessagePort;
  private readonly worker: Worker;
  private head = 0;
  private reportsSeen = 0;
  /** End markers published whose report has not arrived yet. */
  private ends = 0;
  private failed: Error | undefined;
  /** Reports received and not yet handed out. */
  private readonly arrived: ShardDigest[] = [];

  private readonly helpWhenQueued: number;
  /** Shard files are written with direct I/O (the packing thread opens them with `O_DIRECT`). */
  readonly direct: boolean;
  /** Extra copies written of each shard. */
  readonly twins: number;

  constructor(dir: string, opts: ShardHasherOptions = {}) {
    this.helpWhenQueued = opts.helpWhenQueued ?? HELP_WHEN_QUEUED;
    const whole = new Uint8Array(this.ring);
    const offset = opts.direct === false ? undefined : probeDirect(dir, whole);
    if (opts.direct && offset === undefined) throw new ShardHashError(`direct I/O is not available in ${dir}`);
    this.direct = offset !== undefined;
    this.twins = Math.max(0, Math.floor(opts.twins ?? 0));
    const ringOffset = offset ?? 0;
    for (let i = 0; i < SLOT_COUNT; i++)
      this.slots.push(new Uint8Array(this.ring, ringOffset + i * SLOT_BYTES, SLOT_BYTES));
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    const data: HashThreadData = {
      ring: this.ring,
      ringOffset,
      direct: this.direct,
      twins: this.twins,
      roots: this.roots.buffer as SharedArrayBuffer,
      ctrl: this.ctrl.buffer as SharedArrayBuffer,
      dir,
      port: port2,
    };
    this.worker = new Worker(new URL('./shard-hash-thread.js', import.meta.url), {
      workerData: data,
      transferList: [port2],
      ...threadOptions(),
    });
    // Once running, the thread reports its errors through the port; this only keeps an
    // unexpected crash from being an unhandled 'error' event.
    this.worker.on('error', (err) => (this.failed ??= err));
  }

  /**
   * Resolves once the thread runs, rejects if it cannot start. Call it before any blocking
   * call: those wait on shared memory, where a thread that never started would go unnoticed.
   */
  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        this.worker.off('message', onMessage).off('error', done).off('exit', onExit);
        // From here on the packer waits on shared memory: the thread must not hold the process up.
        this.worker.unref();
        if (err) reject(err);
        else resolve();
      };
      const onMessage = (m: unknown) => m === 'ready' && done();
      const onExit = (code: number) =>
        done(new ShardHashError(`the shard hash thread exited with code ${code} before starting`));
      this.worker.on('message', onMessage).on('error', done).on('exit', onExit);
    });
  }

  /** The next slot to fill; waits while every slot is still being hashed. */
  acquire(): Uint8Array {
    while (this.head - Atomics.load(this.ctrl, TAIL) >= SLOT_COUNT) {
      this.check();
      Atomics.wait(this.ctrl, TAIL, this.head - SLOT_COUNT, 200);
    }
    return this.slots[this.head % SLOT_COUNT]!;
  }

  /**
   * Hand the acquired slot's first `length` bytes of shard `index` to the hash thread, which
   * appends them to the shard file `fd` (and its twins) and hashes them. With `end`, they end the
   * shard: the thread then fsyncs and renames its files; the caller closes `fd` after the report.
   * Every slot of a shard but its last must be full.
   */
  publish(length: number, fd: number, index: number, end: boolean): void {
    const s = this.head % SLOT_COUNT;
    let flags = end ? FLAG_END : 0;
    if (length === SLOT_BYTES && this.head - Atomics.load(this.ctrl, TAIL) >= this.helpWhenQueued) {
      this.commp ??= new CommPHasher();
      const slot = this.slots[s]!;
      for (let b = 0; b < BATCHES_PER_SLOT; b++) {
        const at = (s * BATCHES_PER_SLOT + b) * 32;
        this.commp.batchRoot(slot.subarray(b * BATCH_BYTES, (b + 1) * BATCH_BYTES), this.roots.subarray(at, at + 32));
      }
      flags |= FLAG_ROOTS;
    }
    Atomics.store(this.ctrl, slotWord(s, LEN), length);
    Atomics.store(this.ctrl, slotWord(s, FLAGS), flags);
    Atomics.store(this.ctrl, slotWord(s, FD), fd);
    Atomics.store(this.ctrl, slotWord(s, INDEX), index);
    this.head++;
    if (end) this.ends++;
    Atomics.store(this.ctrl, HEAD, this.head);
    Atomics.notify(this.ctrl, HEAD);
  }

  /** Reports that have arrived, without waiting. */
  poll(): ShardDigest[] {
    this.receive();
    return this.arrived.splice(0);
  }

  /** Waits until at most `pending` ended shards are still unreported (default: none). */
  drain(pending = 0): ShardDigest[] {
    for (;;) {
      this.check();
      if (this.ends <= pending) return this.arrived.splice(0);
      const seen = Atomics.load(this.ctrl, REPORTS);
      if (seen === this.reportsSeen) Atomics.wait(this.ctrl, REPORTS, seen, 200);
    }
  }

  /** Moves posted reports into `arrived`; throws the thread's error if it reported one. */
  private receive(): void {
    if (Atomics.load(this.ctrl, REPORTS) === this.reportsSeen) return;
    for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) {
      this.reportsSeen++;
      const r = m.message as HashReport;
      if (r.type === 'error') {
        const e = Object.assign(new ShardHashError(r.error.message), r.error.code ? { code: r.error.code } : {});
        e.stack = r.error.stack;
        this.failed ??= e;
        throw e;
      }
      this.ends--;
      this.arrived.push(r.digest);
    }
  }

  /**
   * Stops the thread (after `drain`, or to abandon whatever is in flight). Returns once the
   * thread has left its loop, so that none of its writes or renames can land after this on a
   * descriptor the caller closes (or that gets reused) or on a file a retry writes again.
   */
  stop(opts: { wait?: boolean } = {}): void {
    Atomics.store(this.ctrl, STOP, 1);
    Atomics.notify(this.ctrl, HEAD);
    const deadline = opts.wait === false ? 0 : Date.now() + 10_000;
    while (!Atomics.load(this.ctrl, STOPPED) && !Atomics.load(this.ctrl, EXITED) && Date.now() < deadline) {
      Atomics.wait(this.ctrl, STOPPED, 0, 50);
    }
    void this.worker.terminate();
    this.port.close();
  }

  private check(): void {
    this.receive();
    if (this.failed) throw this.failed;
    if (Atomics.load(this.ctrl, EXITED)) {
      this.receive();
      throw (this.failed ??= new ShardHashError('the shard hash thread exited unexpectedly'));
    }
  }
}
