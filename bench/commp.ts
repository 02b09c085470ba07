/**
 * Quick CommP throughput benchmark: `node dist/bench/commp.js [oursMiB] [pureMiB] [dataSegmentMiB]`
 * (defaults 256 / 32 / 16). Prints MiB/s for our hasher (native hashtree and pure node:crypto)
 * and for @web3-storage/data-segment, and checks that all three agree on a common prefix.
 */
import { Piece } from '@web3-storage/data-segment';
import { CommPHasher, hashBackend, type PieceInfo } from '../activities/pack/commp.js';

const MiB = 1024 * 1024;
const CHUNK = 4 * MiB;

const [oursMiB, pureMiB, dsMiB] = [
  Number(process.argv[2] ?? 256),
  Number(process.argv[3] ?? 32),
  Number(process.argv[4] ?? 16),
];

function prng(size: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, size);
}

/** Streams `totalMiB` MiB (a 64 MiB source buffer reused cyclically) through the hasher. */
function runOurs(totalMiB: number, forcePure: boolean, source: Uint8Array): { mibps: number; info: PieceInfo } {
  const total = totalMiB * MiB;
  const h = new CommPHasher({ forcePure });
  const t0 = process.hrtime.bigint();
  let done = 0;
  while (done < total) {
    const off = done % source.length;
    const n = Math.min(CHUNK, total - done, source.length - off);
    h.update(source.subarray(off, off + n));
    done += n;
  }
  const info = h.digest();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return { mibps: totalMiB / secs, info };
}

function runDataSegment(totalMiB: number, source: Uint8Array): { mibps: number; cid: string } {
  const bytes = source.subarray(0, totalMiB * MiB);
  const t0 = process.hrtime.bigint();
  const cid = Piece.fromPayload(bytes).toString();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return { mibps: totalMiB / secs, cid };
}

const source = prng(64 * MiB, 12345);
console.log(`default backend: ${hashBackend}`);

// Warm up the JIT on both paths.
runOurs(8, false, source);
runOurs(1, true, source);

const native = runOurs(oursMiB, false, source);
console.log(`ours (${hashBackend})  ${oursMiB} MiB: ${native.mibps.toFixed(1)} MiB/s  ${native.info.pieceCid}`);
const pure = runOurs(pureMiB, true, source);
console.log(`ours (pure)      ${pureMiB} MiB: ${pure.mibps.toFixed(1)} MiB/s  ${pure.info.pieceCid}`);
const ds = runDataSegment(Math.min(dsMiB, 64), source);
console.log(`data-segment     ${Math.min(dsMiB, 64)} MiB: ${ds.mibps.toFixed(1)} MiB/s  ${ds.cid}`);

const check = runOurs(Math.min(dsMiB, 64), false, source).info.pieceCid;
const ok = check === ds.cid;
console.log(`agreement on ${Math.min(dsMiB, 64)} MiB: ${ok ? 'ok' : `MISMATCH ours=${check}`}`);
console.log(
  `speedup vs data-segment: ${(native.mibps / ds.mibps).toFixed(1)}x (native), ${(pure.mibps / ds.mibps).toFixed(1)}x (pure)`,
);
if (!ok) process.exitCode = 1;
