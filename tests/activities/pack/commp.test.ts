import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Piece } from '@web3-storage/data-segment';
import {
  BATCH_BYTES,
  CommPHasher,
  commpOf,
  hashBackend,
  PayloadTooSmallError,
  type PieceInfo,
} from '../../../activities/pack/commp.js';

const MiB = 1024 * 1024;
/** Payload bytes per internal batch of the hasher (16384 quads of 127 bytes). */
const BATCH = 16384 * 127;

/** Deterministic pseudo-random bytes (xorshift32, seeded). */
function prng(size: number, seed = 0x9e3779b9): Uint8Array {
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

interface Expected {
  pieceCid: string;
  height: number;
  padding: number;
  paddedPieceBytes: number;
  root: Uint8Array;
}

function reference(bytes: Uint8Array): Expected {
  const piece = Piece.fromPayload(bytes);
  return {
    pieceCid: piece.toString(),
    height: piece.height,
    padding: Number(piece.padding),
    paddedPieceBytes: Number(piece.size),
    root: new Uint8Array(piece.root),
  };
}

function assertMatches(actual: PieceInfo, expected: Expected, payloadBytes: number, label: string): void {
  assert.equal(actual.pieceCid, expected.pieceCid, `${label}: pieceCid`);
  assert.equal(actual.height, expected.height, `${label}: height`);
  assert.equal(actual.padding, expected.padding, `${label}: padding`);
  assert.equal(actual.paddedPieceBytes, expected.paddedPieceBytes, `${label}: paddedPieceBytes`);
  assert.equal(actual.payloadBytes, payloadBytes, `${label}: payloadBytes`);
  assert.deepEqual(actual.root, expected.root, `${label}: root`);
}

function oneShot(bytes: Uint8Array, forcePure: boolean): PieceInfo {
  const h = new CommPHasher({ forcePure });
  h.update(bytes);
  return h.digest();
}

/** Feeds `bytes` in chunks whose sizes cycle through `sizes`. */
function chunked(bytes: Uint8Array, sizes: number[], forcePure: boolean): PieceInfo {
  const h = new CommPHasher({ forcePure });
  let off = 0;
  let i = 0;
  while (off < bytes.length) {
    const n = Math.min(sizes[i++ % sizes.length]!, bytes.length - off);
    h.update(bytes.subarray(off, off + n));
    off += n;
  }
  return h.digest();
}

test('native hashtree backend is in use on linux x64', (t) => {
  t.diagnostic(`hashBackend = ${hashBackend}`);
  if (process.platform === 'linux' && process.arch === 'x64') assert.equal(hashBackend, 'hashtree');
});

test('PayloadTooSmallError is a typed Error (data-segment accepts every size, so it is never thrown)', () => {
  const e = new PayloadTooSmallError('x');
  assert.ok(e instanceof Error);
  assert.equal(e.name, 'PayloadTooSmallError');
  assert.doesNotThrow(() => commpOf(new Uint8Array(0)));
});

const small = [0, 1, 31, 32, 64, 65, 126, 127, 128, 254, 255, 1000, 4097, 254 * 1000 + 3];
const threeQuadMultiples = [0, 1, 5, 10, 12].map((k) => 3 * 127 * 2 ** k);
const batchEdges = [BATCH - 1, BATCH, BATCH + 1, 2 * BATCH, 3 * BATCH, 3 * BATCH + 127 * 3, 5 * BATCH];
const sizes = [...small, ...threeQuadMultiples, MiB, MiB + 1, ...batchEdges];

for (const size of sizes) {
  test(`matches data-segment for ${size} bytes (native and pure)`, () => {
    const bytes = prng(size, size + 1);
    const expected = reference(bytes);
    assertMatches(oneShot(bytes, false), expected, size, 'native');
    assertMatches(oneShot(bytes, true), expected, size, 'pure');
    assertMatches(commpOf(bytes), expected, size, 'commpOf');
  });
}

test('matches data-segment for all-zero and all-0xff payloads', () => {
  for (const fill of [0x00, 0xff]) {
    for (const size of [127, 4096, 3 * BATCH - 5]) {
      const bytes = new Uint8Array(size).fill(fill);
      const expected = reference(bytes);
      assertMatches(oneShot(bytes, false), expected, size, `native fill=${fill}`);
      assertMatches(oneShot(bytes, true), expected, size, `pure fill=${fill}`);
    }
  }
});

test('~64 MiB payload in irregular chunks matches data-segment (native and pure)', () => {
  const size = 64 * MiB - 12345;
  const bytes = prng(size, 42);
  const expected = reference(bytes);
  const chunks = [1, 4 * MiB + 3, 127, 65536, 7, 9 * MiB + 1, 128, 333333, 2 * BATCH - 1];
  assertMatches(chunked(bytes, chunks, false), expected, size, 'native chunked');
  assertMatches(chunked(bytes, chunks, true), expected, size, 'pure chunked');
  assertMatches(oneShot(bytes, false), expected, size, 'native one-shot');
});

test('streaming in 1-byte and odd chunks equals one-shot', () => {
  for (const size of [0, 1, 127, 128, 5000, BATCH + 300]) {
    const bytes = prng(size, 7 + size);
    const whole = oneShot(bytes, false);
    const byByte = chunked(bytes, [1], false);
    assert.deepEqual(byByte, whole, `1-byte chunks, size ${size}`);
    const odd = chunked(bytes, [1, 3, 126, 127, 128, 129, 17, 4095, 65537], false);
    assert.deepEqual(odd, whole, `odd chunks, size ${size}`);
    const oddPure = chunked(bytes, [5, 127, 1, 1000], true);
    assert.deepEqual(oddPure, whole, `odd chunks pure, size ${size}`);
  }
});

test('digest() does not disturb the hasher: can keep writing after it', () => {
  const bytes = prng(2 * BATCH + 777, 99);
  const h = new CommPHasher();
  const cut = [0, 100, BATCH, BATCH + 500, 2 * BATCH + 777];
  let prev = 0;
  for (const c of cut) {
    h.update(bytes.subarray(prev, c));
    prev = c;
    assert.deepEqual(h.digest(), commpOf(bytes.subarray(0, c)), `digest at ${c}`);
    assert.deepEqual(h.digest(), commpOf(bytes.subarray(0, c)), `repeated digest at ${c}`);
  }
});

test('whole batches from another hasher (batchRoot + pushBatchRoot) give the same piece as streaming', () => {
  const size = 3 * BATCH + 5000;
  const bytes = prng(size, 1234);
  const helper = new CommPHasher();
  const h = new CommPHasher();
  const root = new Uint8Array(32);
  for (let b = 0; b < 3; b++) {
    helper.batchRoot(bytes.subarray(b * BATCH, (b + 1) * BATCH), root);
    h.pushBatchRoot(root);
  }
  h.update(bytes.subarray(3 * BATCH));
  assertMatches(h.digest(), reference(bytes), size, 'batch roots + tail');
  assert.equal(BATCH_BYTES, BATCH);
  assert.throws(() => h.pushBatchRoot(root), /batch boundary/);
});

test('batches hashed in place (aligned, shared memory) and staged (unaligned) agree', () => {
  const size = 2 * BATCH + 77;
  const data = prng(size, 555);
  const shared = new Uint8Array(new SharedArrayBuffer(size + 8));
  shared.set(data, 4); // 4-byte aligned: hashed in place
  const odd = new Uint8Array(size + 8);
  odd.set(data, 3); // unaligned: staged
  const expected = reference(data);
  assertMatches(commpOf(shared.subarray(4, 4 + size)), expected, size, 'aligned shared');
  assertMatches(commpOf(odd.subarray(3, 3 + size)), expected, size, 'unaligned');
});

test('reset() starts a new piece with the same hasher', () => {
  const h = new CommPHasher();
  h.update(prng(BATCH + 10, 1));
  h.reset();
  const bytes = prng(5000, 2);
  h.update(bytes);
  assertMatches(h.digest(), reference(bytes), 5000, 'after reset');
});
