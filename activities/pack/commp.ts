/**
 * Streaming Filecoin piece commitment (CommP) hasher.
 *
 * Produces the FRC-0069 v2 piece CID (CIDv1, raw codec 0x55, multihash code 0x1011
 * `fr32-sha2-256-trunc254-padded-binary-tree`, digest = uvarint(padding) || height || root),
 * bit-for-bit identical to `@web3-storage/data-segment` (v5.3) `Piece.fromPayload` /
 * its streaming `multihash.create()` hasher:
 *
 * - the payload is cut into 127-byte quads; the last partial quad is zero-filled; an empty
 *   payload counts as one all-zero quad (data-segment accepts every size, including 0);
 * - each quad is fr32-padded into 128 bytes = four 32-byte leaves;
 * - nodes are sha256(left || right) with the top two bits of the last byte cleared;
 * - the tree is padded to the next power of two with zero-subtree commitments, so
 *   height = 2 + ceil(log2(max(1, quads)));
 * - padding = 127 * 2^ceil(log2(max(1, quads))) - payloadBytes (data-segment's
 *   `Unpadded.toPadding`).
 *
 * Speed: payload bytes are staged into a fixed batch buffer of BATCH_QUADS quads (2 MiB). A full
 * batch is fr32-padded on 32-bit words (groups of 4 quads = 127 input words are word aligned) by
 * WebAssembly SIMD (fr32-wasm.ts; the JavaScript word loop is the fallback and the reference)
 * and then reduced level by level, one native `@chainsafe/hashtree` call per level, down to a
 * single subtree root which is pushed on an O(log n) stack of pending roots (binary counter).
 * Memory is bounded (~5 MiB of buffers per hasher) regardless of payload size. `batchRoot` and
 * `pushBatchRoot` let another thread compute whole batches of the same piece.
 */
import { createRequire } from 'node:module';
import * as nodeCrypto from 'node:crypto';
import { endianness } from 'node:os';
import { CID } from 'multiformats/cid';
import * as Digest from 'multiformats/hashes/digest';
import { createFr32Wasm, type Fr32Wasm } from './fr32-wasm.js';

export interface PieceInfo {
  /** FRC-0069 v2 piece CID (base32 `bafkzcib…`). */
  pieceCid: string;
  /** Number of payload bytes hashed. */
  payloadBytes: number;
  /** Padded piece size in bytes (2^height * 32), i.e. the size a storage deal is made for. */
  paddedPieceBytes: number;
  /** Height of the piece merkle tree (leaves are 32-byte nodes). */
  height: number;
  /** Zero bytes appended to the payload (before fr32) to fill the tree, as in the v2 CID. */
  padding: number;
  /** 32-byte merkle root (the v1 CommP). */
  root: Uint8Array;
}

/**
 * Kept for API compatibility. `@web3-storage/data-segment` v5.3 (the reference) accepts payloads
 * of every size (an empty payload hashes as one all-zero quad), so the hasher never throws this.
 */
export class PayloadTooSmallError extends Error {
  override name = 'PayloadTooSmallError';
}

/** Multihash code of fr32-sha2-256-trunc254-padded-binary-tree. */
export const FR32_SHA256_TRUNC254_PADDED_BINARY_TREE = 0x1011;
/** Raw multicodec. */
export const RAW_CODE = 0x55;

const IN_BYTES_PER_QUAD = 127;
const OUT_BYTES_PER_QUAD = 128;
const NODE_SIZE = 32;
const LEAFS_PER_QUAD = 4;
/** Quads per batch (power of two, multiple of 4): 2 MiB of payload, 2 MiB padded. */
const BATCH_QUADS = 1 << 14;
const BATCH_LEAFS = BATCH_QUADS * LEAFS_PER_QUAD;
/** Payload bytes per batch (see `CommPHasher.batchRoot`). */
export const BATCH_BYTES = BATCH_QUADS * IN_BYTES_PER_QUAD;
/** Level of the subtree root produced by one full batch. */
const BATCH_LEVEL = Math.log2(BATCH_LEAFS);
/** Levels available for the pending-root stack and zero commitments (2^64 leaves is plenty). */
const MAX_LEVEL = 64;
const LITTLE_ENDIAN = endianness() === 'LE';

// ---- hashing backends --------------------------------------------------------------------------

/** Hashes every 64-byte block of `input` into 32 bytes of `output` (output.length = input.length/2). */
type LevelHasher = (input: Uint8Array, output: Uint8Array) => void;

const oneShot = (nodeCrypto as { hash?: (alg: string, data: Uint8Array, enc: 'buffer') => Buffer }).hash;

const sha256Pure = (data: Uint8Array): Uint8Array =>
  oneShot ? oneShot('sha256', data, 'buffer') : nodeCrypto.createHash('sha256').update(data).digest();

const pureLevel: LevelHasher = (input, output) => {
  const n = input.length >>> 6;
  for (let i = 0; i < n; i++) {
    output.set(sha256Pure(input.subarray(i << 6, (i << 6) + 64)), i << 5);
  }
};

function loadNative(): LevelHasher | undefined {
  try {
    const require = createRequire(import.meta.url);
    const mod = require('@chainsafe/hashtree') as {
      hashInto?: (input: Uint8Array, output: Uint8Array) => void;
    };
    const hashInto = mod.hashInto;
    if (typeof hashInto !== 'function') return undefined;
    // Self-test against node:crypto before trusting it.
    const probe = new Uint8Array(128);
    for (let i = 0; i < probe.length; i++) probe[i] = (i * 131 + 7) & 0xff;
    const got = new Uint8Array(64);
    hashInto(probe, got);
    const want = new Uint8Array(64);
    pureLevel(probe, want);
    for (let i = 0; i < 64; i++) if (got[i] !== want[i]) return undefined;
    return (input, output) => hashInto(input, output);
  } catch {
    return undefined;
  }
}

const nativeLevel = loadNative();

// WebAssembly padder memory: raw batch (+ slack for the one-word over-read), padded, scratch.
const WASM_PADDED = BATCH_BYTES + 64;
const WASM_SCRATCH = WASM_PADDED + BATCH_QUADS * OUT_BYTES_PER_QUAD;
const WASM_BYTES = WASM_SCRATCH + (BATCH_QUADS * OUT_BYTES_PER_QUAD) / 2;

/** Which sha256 backend `new CommPHasher()` uses by default. */
export const hashBackend: 'hashtree' | 'pure' = nativeLevel ? 'hashtree' : 'pure';

// ---- zero-subtree commitments ------------------------------------------------------------------

/** ZERO_COMMS[32*l .. 32*l+32) = root of an all-zero subtree of height l. */
const ZERO_COMMS = (() => {
  const z = new Uint8Array(MAX_LEVEL * NODE_SIZE);
  const pair = new Uint8Array(2 * NODE_SIZE);
  for (let l = 1; l < MAX_LEVEL; l++) {
    const prev = z.subarray((l - 1) * NODE_SIZE, l * NODE_SIZE);
    pair.set(prev, 0);
    pair.set(prev, NODE_SIZE);
    pureLevel(pair, z.subarray(l * NODE_SIZE, (l + 1) * NODE_SIZE));
    z[(l + 1) * NODE_SIZE - 1]! &= 0x3f;
  }
  return z;
})();

/** Self-test of the wasm padder against the JavaScript one before trusting it. */
const wasmPadOk = (() => {
  const w = createFr32Wasm(4096);
  if (!w) return false;
  const groups = 3;
  const input = new Uint8Array(w.memory.buffer, 0, groups * 508 + 4);
  for (let i = 0; i < input.length; i++) input[i] = (i * 151 + 29) & 0xff;
  w.pad(0, 2048, groups);
  const want = new Int32Array(groups * 128);
  padGroupsLE(new Int32Array(w.memory.buffer, 0, groups * 127), 0, want, groups);
  const got = new Int32Array(w.memory.buffer, 2048, groups * 128);
  return LITTLE_ENDIAN && want.every((v, i) => v === got[i]);
})();

const zeroComm = (level: number): Uint8Array => ZERO_COMMS.subarray(level * NODE_SIZE, (level + 1) * NODE_SIZE);

// ---- fr32 padding ------------------------------------------------------------------------------

/**
 * fr32-pads `groups` groups of 4 quads (508 bytes = 127 little-endian 32-bit words in, 512 bytes =
 * 128 words out), reading from word `base` of `src`. Within a group, Fr number f (0..15) starts
 * at input bit 254*f = 32*8f - 2f, so its output word m is (W[8f+m] << 2f) | (W[8f+m-1] >>> (32-2f)),
 * the last word masked to 30 bits. That last word's formula touches the next group's first word,
 * of which only masked-off bits are used: it is not read past the last group.
 */
function padGroupsLE(src: Int32Array, base: number, dst: Int32Array, groups: number): void {
  const end = base + groups * 127;
  for (let g = 0; g < groups; g++) {
    const ib = base + g * 127;
    const ob = g << 7;
    dst[ob] = src[ib]!;
    dst[ob + 1] = src[ib + 1]!;
    dst[ob + 2] = src[ib + 2]!;
    dst[ob + 3] = src[ib + 3]!;
    dst[ob + 4] = src[ib + 4]!;
    dst[ob + 5] = src[ib + 5]!;
    dst[ob + 6] = src[ib + 6]!;
    dst[ob + 7] = src[ib + 7]! & 0x3fffffff;
    for (let f = 1; f < 16; f++) {
      const s = f << 1;
      const r = 32 - s;
      const i = ib + (f << 3);
      const o = ob + (f << 3);
      const w0 = src[i - 1]!;
      const w1 = src[i]!;
      const w2 = src[i + 1]!;
      const w3 = src[i + 2]!;
      const w4 = src[i + 3]!;
      const w5 = src[i + 4]!;
      const w6 = src[i + 5]!;
      const w7 = src[i + 6]!;
      const w8 = i + 7 < end ? src[i + 7]! : 0;
      dst[o] = (w1 << s) | (w0 >>> r);
      dst[o + 1] = (w2 << s) | (w1 >>> r);
      dst[o + 2] = (w3 << s) | (w2 >>> r);
      dst[o + 3] = (w4 << s) | (w3 >>> r);
      dst[o + 4] = (w5 << s) | (w4 >>> r);
      dst[o + 5] = (w6 << s) | (w5 >>> r);
      dst[o + 6] = (w7 << s) | (w6 >>> r);
      dst[o + 7] = ((w8 << s) | (w7 >>> r)) & 0x3fffffff;
    }
  }
}

/** Portable byte-wise fr32 padding of `quads` quads (used on big-endian hosts). */
function padQuadsBytes(src: Uint8Array, dst: Uint8Array, quads: number): void {
  for (let n = 0; n < quads; n++) {
    const r = n * IN_BYTES_PER_QUAD;
    const w = n * OUT_BYTES_PER_QUAD;
    for (let i = 0; i < 32; i++) dst[w + i] = src[r + i]!;
    dst[w + 31]! &= 0x3f;
    for (let i = 32; i < 64; i++) dst[w + i] = ((src[r + i]! << 2) | (src[r + i - 1]! >> 6)) & 0xff;
    dst[w + 63]! &= 0x3f;
    for (let i = 64; i < 96; i++) dst[w + i] = ((src[r + i]! << 4) | (src[r + i - 1]! >> 4)) & 0xff;
    dst[w + 95]! &= 0x3f;
    for (let i = 96; i < 127; i++) dst[w + i] = ((src[r + i]! << 6) | (src[r + i - 1]! >> 2)) & 0xff;
    dst[w + 127] = src[r + 126]! >> 2;
  }
}

// ---- helpers -----------------------------------------------------------------------------------

function uvarint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

/** ceil(log2(n)) for integer n >= 1 (exact for n < 2^53). */
function log2Ceil(n: number): number {
  let l = 0;
  let p = 1;
  while (p < n) {
    p *= 2;
    l++;
  }
  return l;
}

// ---- the hasher --------------------------------------------------------------------------------

export class CommPHasher {
  private readonly hashLevel: LevelHasher;
  /** Staged payload bytes of the current batch (whole words). */
  private readonly raw: Uint8Array;
  private readonly raw32: Int32Array;
  /** fr32 output of a batch; also ping-pong buffer B of the level reduction. */
  private readonly padded: Uint8Array;
  private readonly padded32: Int32Array;
  /** Ping-pong buffer A of the level reduction (first level output). */
  private readonly scratch: Uint8Array;
  private readonly scratch32: Int32Array;
  /** WebAssembly SIMD fr32 padder; raw, padded and scratch then live in its memory. */
  private readonly wasm: Fr32Wasm | undefined;
  /** Pending subtree roots: stack[32*l..] is valid when has[l] === 1. */
  private readonly stack = new Uint8Array(MAX_LEVEL * NODE_SIZE);
  private readonly has = new Uint8Array(MAX_LEVEL);
  /** 64-byte pair buffer + 32-byte out for single-node combinations. */
  private readonly pair = new Uint8Array(2 * NODE_SIZE);
  private readonly one = new Uint8Array(NODE_SIZE);
  private rawLen = 0;
  private total = 0;

  /** `forcePure`: node:crypto hashing and JavaScript padding only (no native or wasm code). */
  constructor(opts?: { forcePure?: boolean }) {
    this.hashLevel = !opts?.forcePure && nativeLevel ? nativeLevel : pureLevel;
    this.wasm = opts?.forcePure || !wasmPadOk ? undefined : createFr32Wasm(WASM_BYTES);
    const [raw, padded, scratch] = this.wasm
      ? [
          new Uint8Array(this.wasm.memory.buffer, 0, BATCH_BYTES),
          new Uint8Array(this.wasm.memory.buffer, WASM_PADDED, BATCH_QUADS * OUT_BYTES_PER_QUAD),
          new Uint8Array(this.wasm.memory.buffer, WASM_SCRATCH, (BATCH_QUADS * OUT_BYTES_PER_QUAD) / 2),
        ]
      : [
          new Uint8Array(BATCH_BYTES),
          new Uint8Array(BATCH_QUADS * OUT_BYTES_PER_QUAD),
          new Uint8Array((BATCH_QUADS * OUT_BYTES_PER_QUAD) / 2),
        ];
    this.raw = raw;
    this.raw32 = new Int32Array(raw.buffer, raw.byteOffset, raw.length >>> 2);
    this.padded = padded;
    this.padded32 = new Int32Array(padded.buffer, padded.byteOffset, padded.length >>> 2);
    this.scratch = scratch;
    this.scratch32 = new Int32Array(scratch.buffer, scratch.byteOffset, scratch.length >>> 2);
  }

  /** Number of payload bytes written so far. */
  get payloadBytes(): number {
    return this.total;
  }

  update(bytes: Uint8Array): void {
    const len = bytes.length;
    if (len === 0) return;
    const cap = BATCH_QUADS * IN_BYTES_PER_QUAD;
    const raw = this.raw;
    let off = 0;
    while (off < len) {
      if (this.rawLen === 0 && len - off >= cap) {
        // A whole batch at once: no staging loop (and no copy at all where it can be padded in place).
        this.pushRoot(this.hashBatch(bytes.subarray(off, off + cap)));
        off += cap;
        continue;
      }
      const take = Math.min(cap - this.rawLen, len - off);
      if (take <= 16) {
        let p = this.rawLen;
        for (let i = 0; i < take; i++) raw[p++] = bytes[off + i]!;
      } else {
        raw.set(bytes.subarray(off, off + take), this.rawLen);
      }
      this.rawLen += take;
      off += take;
      if (this.rawLen === cap) {
        this.flushBatch();
        this.rawLen = 0;
      }
    }
    this.total += len;
  }

  /**
   * Computes the piece commitment of everything written so far. Does not change the hasher's
   * state: more bytes may be written afterwards and digest() called again.
   */
  digest(): PieceInfo {
    const total = this.total;
    const quads = Math.max(1, Math.ceil(total / IN_BYTES_PER_QUAD));
    const expectedHeight = 2 + log2Ceil(quads);
    const has = this.has.slice();
    const cur = this.one;
    let level: number;

    // Quads of the unfinished batch (an empty payload is one all-zero quad).
    const partialQuads = total === 0 ? 1 : Math.ceil(this.rawLen / IN_BYTES_PER_QUAD);
    if (partialQuads > 0) {
      const groups = Math.ceil(partialQuads / 4);
      this.raw.fill(0, this.rawLen, groups * 4 * IN_BYTES_PER_QUAD);
      this.pad(groups);
      const r = this.reduce(partialQuads * LEAFS_PER_QUAD);
      cur.set(r.buf.subarray(0, NODE_SIZE));
      level = r.level;
    } else {
      level = has.indexOf(1);
      cur.set(this.stack.subarray(level * NODE_SIZE, (level + 1) * NODE_SIZE));
      has[level] = 0;
    }

    // Fold the pending roots in: at each level `cur` is a right child iff a pending root sits
    // there, otherwise a left child padded with the zero commitment while roots remain above.
    const highest = has.lastIndexOf(1);
    while (level <= highest) {
      if (has[level]) {
        this.pair.set(this.stack.subarray(level * NODE_SIZE, (level + 1) * NODE_SIZE), 0);
        this.pair.set(cur, NODE_SIZE);
      } else {
        this.pair.set(cur, 0);
        this.pair.set(zeroComm(level), NODE_SIZE);
      }
      this.hashLevel(this.pair, cur);
      cur[NODE_SIZE - 1]! &= 0x3f;
      level++;
    }
    if (level !== expectedHeight) {
      throw new Error(`CommP internal error: tree height ${level}, expected ${expectedHeight}`);
    }

    const height = level;
    const padding = IN_BYTES_PER_QUAD * 2 ** (height - 2) - total;
    const root = cur.slice();
    const digestBytes = new Uint8Array([...uvarint(padding), height, ...root]);
    const cid = CID.create(1, RAW_CODE, Digest.create(FR32_SHA256_TRUNC254_PADDED_BINARY_TREE, digestBytes));
    return {
      pieceCid: cid.toString(),
      payloadBytes: total,
      paddedPieceBytes: NODE_SIZE * 2 ** height,
      height,
      padding,
      root,
    };
  }

  /** fr32-pads `groups` groups of 4 quads from `raw` into `padded`. */
  private pad(groups: number): void {
    if (this.wasm) this.wasm.pad(0, WASM_PADDED, groups);
    else if (LITTLE_ENDIAN) padGroupsLE(this.raw32, 0, this.padded32, groups);
    else padQuadsBytes(this.raw, this.padded, groups * 4);
  }

  /**
   * Reduces `n` leaves in `padded` to one node, padding odd levels with zero commitments.
   * Returns the buffer holding the node (at offset 0) and its level.
   */
  private reduce(n: number): { buf: Uint8Array; level: number } {
    let src = this.padded;
    let dst = this.scratch;
    let dst32 = this.scratch32;
    let level = 0;
    while (n > 1) {
      if (n & 1) {
        src.set(zeroComm(level), n * NODE_SIZE);
        n++;
      }
      const half = n >>> 1;
      this.hashLevel(src.subarray(0, n * NODE_SIZE), dst.subarray(0, half * NODE_SIZE));
      for (let i = 7, end = half << 3; i < end; i += 8) dst32[i]! &= 0x3fffffff;
      n = half;
      level++;
      const t = src;
      src = dst;
      dst = t;
      dst32 = dst === this.padded ? this.padded32 : this.scratch32;
    }
    return { buf: src, level };
  }

  /** Hashes a full batch in `raw` and pushes its subtree root onto the pending stack. */
  private flushBatch(): void {
    this.pad(BATCH_QUADS / 4);
    this.pushRoot(this.reduce(BATCH_LEAFS).buf);
  }

  /** Subtree root (in the first 32 bytes of the returned buffer) of a full batch of payload. */
  private hashBatch(batch: Uint8Array): Uint8Array {
    if (!this.wasm && LITTLE_ENDIAN && batch.byteOffset % 4 === 0) {
      padGroupsLE(new Int32Array(batch.buffer, batch.byteOffset, BATCH_BYTES >>> 2), 0, this.padded32, BATCH_QUADS / 4);
    } else {
      this.raw.set(batch);
      this.pad(BATCH_QUADS / 4);
    }
    return this.reduce(BATCH_LEAFS).buf;
  }

  /** Pushes a batch's subtree root (first 32 bytes of `root`) onto the pending stack. */
  private pushRoot(root: Uint8Array): void {
    const cur = this.one;
    cur.set(root.subarray(0, NODE_SIZE));
    let level = BATCH_LEVEL;
    while (this.has[level]) {
      this.pair.set(this.stack.subarray(level * NODE_SIZE, (level + 1) * NODE_SIZE), 0);
      this.pair.set(cur, NODE_SIZE);
      this.hashLevel(this.pair, cur);
      cur[NODE_SIZE - 1]! &= 0x3f;
      this.has[level] = 0;
      level++;
    }
    this.stack.set(cur, level * NODE_SIZE);
    this.has[level] = 1;
  }

  /**
   * Batch API, to share one piece's work between threads: the subtree root of one full batch
   * (`BATCH_BYTES` payload bytes), written to `out` (32 bytes). Any hasher can compute it; the
   * piece's own hasher then takes it with `pushBatchRoot` in payload order.
   */
  batchRoot(batch: Uint8Array, out: Uint8Array): void {
    if (batch.length !== BATCH_BYTES) throw new RangeError(`a batch is ${BATCH_BYTES} bytes, got ${batch.length}`);
    if (this.rawLen !== 0) throw new Error('CommPHasher.batchRoot: this hasher holds a partial batch');
    out.set(this.hashBatch(batch).subarray(0, NODE_SIZE));
  }

  /** Appends a whole batch by its root (from `batchRoot`); only at a batch boundary of this payload. */
  pushBatchRoot(root: Uint8Array): void {
    if (this.rawLen !== 0) throw new Error('CommPHasher.pushBatchRoot: not at a batch boundary');
    this.pushRoot(root);
    this.total += BATCH_BYTES;
  }

  /** Forget everything written: ready for a new payload (buffers are reused). */
  reset(): void {
    this.has.fill(0);
    this.rawLen = 0;
    this.total = 0;
  }
}

/** One-shot convenience: the piece commitment of `bytes`. */
export function commpOf(bytes: Uint8Array): PieceInfo {
  const h = new CommPHasher();
  h.update(bytes);
  return h.digest();
}
