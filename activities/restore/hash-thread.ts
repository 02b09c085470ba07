/**
 * Worker-thread entry of the restore's hash pool (see hash-pool.ts): computes the sha256 of
 * restored files from the bytes written, in file order, as the written prefix grows. `upto`
 * hashes a file from where it stopped to a given offset (bytes the restoring thread wrote after
 * checking them against their CIDs, read back from the page cache); `finish` hashes the rest up
 * to the file's size, closes it and answers the digest; `drop` forgets a file (-1: all of them).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import type { HashJob, HashReply } from './hash-pool.js';

const port = parentPort!;
const files = new Map<number, { fd: number; hash: crypto.Hash; hashedTo: number }>();
const buf = Buffer.allocUnsafeSlow(4 << 20);

function hashTo(id: number, file: string, to: number) {
  let st = files.get(id);
  if (!st) files.set(id, (st = { fd: fs.openSync(file, 'r'), hash: crypto.createHash('sha256'), hashedTo: 0 }));
  while (st.hashedTo < to) {
    const n = fs.readSync(st.fd, buf, 0, Math.min(buf.length, to - st.hashedTo), st.hashedTo);
    if (n === 0) break;
    st.hash.update(buf.subarray(0, n));
    st.hashedTo += n;
  }
  return st;
}

function drop(id: number) {
  if (id === -1) {
    for (const k of [...files.keys()]) drop(k);
    return;
  }
  const st = files.get(id);
  files.delete(id);
  if (st) fs.closeSync(st.fd);
}

port.on('message', (j: HashJob) => {
  let reply: HashReply;
  try {
    if (j.op === 'upto') {
      hashTo(j.file, j.path, j.to);
      reply = { id: j.id };
    } else if (j.op === 'finish') {
      const st = hashTo(j.file, j.path, j.size);
      const sha256 = st.hash.digest('hex');
      reply = { id: j.id, sha256, bytes: st.hashedTo };
      drop(j.file);
    } else {
      drop(j.file);
      reply = { id: j.id };
    }
  } catch (err) {
    reply = { id: j.id, error: (err as Error).message };
  }
  port.postMessage(reply);
});
