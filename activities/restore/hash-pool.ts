/**
 * The restore's file hashing off the event loop: a few worker threads (hash-thread.ts) that
 * compute each restored file's sha256 from the bytes written, in file order, while the event
 * loop goes on streaming, checking blocks and writing. A file is hashed on one thread, chosen
 * round robin when it is first hashed; its jobs run in the order sent (each thread takes its
 * messages in order), so the thread only ever reads the file forwards.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { threadOptions } from '../pack/shard-hasher.js';

export type HashJob =
  | { id: number; op: 'upto'; file: number; path: string; to: number }
  | { id: number; op: 'finish'; file: number; path: string; size: number }
  | { id: number; op: 'drop'; file: number }; // -1: every file
export type HashReply = { id: number; sha256?: string; bytes?: number; error?: string };

/** Hash threads for a restore: one per core but the event loop's (at least one), at most this many. */
export const RESTORE_HASH_THREADS = 4;

export const hashThreadsFor = (): number => Math.max(1, Math.min(RESTORE_HASH_THREADS, os.availableParallelism() - 1));

type Job = HashJob extends infer J ? (J extends HashJob ? Omit<J, 'id'> : never) : never;

interface Thread {
  worker: Worker;
  waiting: Map<number, { resolve: (r: HashReply) => void; reject: (e: Error) => void }>;
}

export class HashPool {
  private readonly threads: Thread[] = [];
  private nextId = 1;
  private nextFile = 0;
  private failed?: Error;

  constructor(readonly size = hashThreadsFor()) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL('./hash-thread.js', import.meta.url), threadOptions());
      const t: Thread = { worker, waiting: new Map() };
      worker.on('message', (r: HashReply) => {
        const w = t.waiting.get(r.id);
        if (!w) return;
        t.waiting.delete(r.id);
        if (r.error) w.reject(new Error(`hash thread: ${r.error}`));
        else w.resolve(r);
      });
      const die = (err: Error) => {
        this.failed ??= err;
        for (const w of t.waiting.values()) w.reject(err);
        t.waiting.clear();
      };
      worker.on('error', die);
      worker.on('exit', (code) => die(new Error(`hash thread exited (${code})`)));
      this.threads.push(t);
    }
  }

  /** @internal */
  send(t: Thread, job: Job): Promise<HashReply> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      t.waiting.set(id, { resolve, reject });
      t.worker.postMessage({ ...job, id });
    });
  }

  /** The sha256 of the file at `path`, on the next thread. */
  file(path: string): PoolFileHash {
    const id = this.nextFile++;
    return new PoolFileHash(this, this.threads[id % this.threads.length]!, id, path);
  }

  /** Closes the files the threads still hold open (a failed restore), then stops them. */
  async close(): Promise<void> {
    await Promise.allSettled(this.threads.map((t) => this.send(t, { op: 'drop', file: -1 })));
    this.failed ??= new Error('hash pool closed');
    await Promise.allSettled(this.threads.map((t) => t.worker.terminate()));
  }
}

/** One file's sha256 on a pool thread, fed from the file as its written prefix grows. */
export class PoolFileHash {
  constructor(
    private readonly pool: HashPool,
    private readonly thread: Thread,
    private readonly id: number,
    private readonly path: string,
  ) {}

  /** Hashes the file up to `to` (every byte before it written); jobs run in the order sent. */
  upTo(to: number): Promise<unknown> {
    return this.pool.send(this.thread, { op: 'upto', file: this.id, path: this.path, to });
  }

  /** The digest of the file's first `size` bytes (hex), once every one is written; closes it there. */
  async finish(size: number): Promise<{ sha256: string; bytes: number }> {
    const r = await this.pool.send(this.thread, { op: 'finish', file: this.id, path: this.path, size });
    return { sha256: r.sha256!, bytes: r.bytes! };
  }

  drop(): void {
    void this.pool.send(this.thread, { op: 'drop', file: this.id }).catch(() => {});
  }
}
