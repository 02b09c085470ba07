/**
 * Worker-thread entry of the shard hasher (see shard-hasher.ts): takes CAR bytes from the shared
 * ring in order, appends them to the shard file and feeds sha2-256 and CommP (or takes the CommP
 * batch roots the packing thread computed); at each end marker it digests the shard, fsyncs and
 * renames its file, and reports, in shard order.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { carCidFromSha256 } from './cids.js';
import { CommPHasher } from './commp.js';
import {
  BATCHES_PER_SLOT, EXITED, FD, FLAG_END, FLAG_ROOTS, FLAGS, HEAD, INDEX, LEN, REPORTS, shardFileName, SLOT_BYTES, SLOT_COUNT, slotWord,
  STOP, STOPPED, TAIL,
  type HashReport, type HashThreadData, type ShardDigest,
} from './shard-hasher.js';

const { ring, roots: rootsBuffer, ctrl: ctrlBuffer, dir, port } = workerData as HashThreadData;
const roots = new Uint8Array(rootsBuffer);
const ctrl = new Int32Array(ctrlBuffer);
const slots = Array.from({ length: SLOT_COUNT }, (_, i) => new Uint8Array(ring, i * SLOT_BYTES, SLOT_BYTES));

// Atomics.waitAsync does not keep a thread alive: this does, until the packer terminates us.
const keepAlive = setInterval(() => {}, 1 << 30);
process.on('exit', () => {
  Atomics.store(ctrl, EXITED, 1);
  Atomics.notify(ctrl, TAIL);
  Atomics.notify(ctrl, REPORTS);
});
/** Atomics.waitAsync (ES2024; Node ≥ 16). */
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, i: number, v: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

const post = (r: HashReport) => {
  port.postMessage(r);
  Atomics.add(ctrl, REPORTS, 1);
  Atomics.notify(ctrl, REPORTS);
};

/** Shards digested and waiting for their fsync; reports go out in shard order. */
const finishing: { digest: ShardDigest; synced: boolean }[] = [];
let failed = false;

const fail = (err: unknown) => {
  if (failed) return;
  failed = true;
  const e = err instanceof Error ? err : new Error(String(err));
  post({ type: 'error', error: { name: e.name, message: e.message, stack: e.stack, code: (e as NodeJS.ErrnoException).code } });
};

const flushReports = () => {
  while (finishing.length > 0 && finishing[0]!.synced && !failed) post({ type: 'shard', digest: finishing.shift()!.digest });
};

function finishShard(fd: number, digest: ShardDigest): void {
  const entry = { digest, synced: false };
  finishing.push(entry);
  const file = path.join(dir, shardFileName(digest.index));
  // The packing thread opened the file and closes it once it has the report.
  fs.fsync(fd, (err) => {
    if (Atomics.load(ctrl, STOP)) return;
    if (err) return fail(err);
    fs.rename(`${file}.partial`, file, (err2) => {
      if (err2) return fail(err2);
      entry.synced = true;
      flushReports();
    });
  });
}

async function run(): Promise<void> {
  let sha = crypto.createHash('sha256');
  const commp = new CommPHasher();
  let carBytes = 0;
  let tail = 0;
  for (;;) {
    if (Atomics.load(ctrl, STOP)) {
      clearInterval(keepAlive);
      Atomics.store(ctrl, STOPPED, 1);
      Atomics.notify(ctrl, STOPPED);
      return;
    }
    const head = Atomics.load(ctrl, HEAD);
    if (head === tail) {
      const w = waitAsync(ctrl, HEAD, head);
      if (w.async) await w.value;
      continue;
    }
    const s = tail % SLOT_COUNT;
    const len = Atomics.load(ctrl, slotWord(s, LEN));
    const flags = Atomics.load(ctrl, slotWord(s, FLAGS));
    if (len > 0) {
      const view = slots[s]!.subarray(0, len);
      const fd = Atomics.load(ctrl, slotWord(s, FD));
      for (let off = 0; off < len; ) off += fs.writeSync(fd, view, off, len - off);
      sha.update(view);
      if (flags & FLAG_ROOTS) {
        // A full slot is whole batches of this shard's CAR stream (see SLOT_BYTES).
        for (let b = s * BATCHES_PER_SLOT; b < (s + 1) * BATCHES_PER_SLOT; b++) commp.pushBatchRoot(roots.subarray(b * 32, b * 32 + 32));
      } else {
        commp.update(view);
      }
      carBytes += len;
    }
    if (flags & FLAG_END) {
      const piece = commp.digest();
      const digest: ShardDigest = {
        index: Atomics.load(ctrl, slotWord(s, INDEX)),
        carCid: carCidFromSha256(sha.digest()),
        pieceCid: piece.pieceCid,
        paddedPieceBytes: piece.paddedPieceBytes,
        carBytes,
      };
      finishShard(Atomics.load(ctrl, slotWord(s, FD)), digest);
      sha = crypto.createHash('sha256');
      commp.reset();
      carBytes = 0;
    }
    tail++;
    Atomics.store(ctrl, TAIL, tail);
    Atomics.notify(ctrl, TAIL);
    // Let fsync/rename callbacks run even while the ring never empties.
    if (finishing.length > 0) await new Promise((r) => setImmediate(r));
  }
}

run().catch(fail);
parentPort!.postMessage('ready');
