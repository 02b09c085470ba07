/**
 * Worker-thread entry for the hashing limit: hashes for `ms` milliseconds and reports its rate.
 * 'sha': bulk sha2-256 (node:crypto) over a 16 MiB buffer, in bytes/s.
 * 'nodes': batched 64-byte → 32-byte sha2-256 (@chainsafe/hashtree, as CommP uses it), in nodes/s.
 */
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';

const { kind, ms } = workerData as { kind: 'sha' | 'nodes'; ms: number };

function run(): { units: number; secs: number } {
  if (kind === 'sha') {
    const buf = crypto.randomBytes(16 * 1024 * 1024);
    crypto.createHash('sha256').update(buf).digest();
    const t0 = performance.now();
    let units = 0;
    while (performance.now() - t0 < ms) {
      crypto.createHash('sha256').update(buf).digest();
      units += buf.length;
    }
    return { units, secs: (performance.now() - t0) / 1000 };
  }
  const { hashInto } = createRequire(import.meta.url)('@chainsafe/hashtree') as {
    hashInto(i: Uint8Array, o: Uint8Array): void;
  };
  const input = crypto.randomBytes(1024 * 1024);
  const output = new Uint8Array(input.length / 2);
  hashInto(input, output);
  const t0 = performance.now();
  let units = 0;
  while (performance.now() - t0 < ms) {
    hashInto(input, output);
    units += input.length / 64;
  }
  return { units, secs: (performance.now() - t0) / 1000 };
}

parentPort!.postMessage(run());
