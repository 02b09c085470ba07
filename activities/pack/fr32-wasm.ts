/**
 * fr32 padding in WebAssembly SIMD: ~5× faster than the JavaScript word loop in commp.ts, which
 * stays as the fallback (and the reference: commp.ts checks this against it before use).
 *
 * The module is assembled here, byte by byte, from this text (no toolchain needed):
 *
 *   (module
 *     (import "e" "m" (memory 1))
 *     (func (export "pad") (param $src i32) (param $dst i32) (param $groups i32)
 *       (local $end i32) (local $f i32) (local $s i32) (local $r i32) (local $p i32) (local $q i32)
 *       (local $mask v128)
 *       mask = [~0, ~0, ~0, 0x3fffffff]; end = src + groups * 508
 *       for each group of 4 quads (127 words in at $src, 128 words out at $dst):
 *         Fr 0:     out[0..3] = in[0..3]; out[4..7] = in[4..7] & mask
 *         Fr f>0:   s = 2f, r = 32 - s, p = src + 32f, q = dst + 32f
 *                   out[8f..8f+3] = (load(p) << s) | (load(p - 4) >>> r)
 *                   out[8f+4..8f+7] = ((load(p + 16) << s) | (load(p + 12) >>> r)) & mask
 *         src += 508; dst += 512))
 *
 * Fr 0 is separate because a wasm shift by 32 is a shift by 0. Like the JavaScript version,
 * the last Fr of a group reads one word past the group (only masked-off bits of it are used):
 * the memory must have 4 readable bytes after the input.
 */

const leb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const section = (id: number, bytes: number[]) => [id, ...leb(bytes.length), ...bytes];
const name = (s: string) => [...leb(s.length), ...s.split('').map((c) => c.charCodeAt(0))];

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const I32 = 0x7f;
  const V128 = 0x7b;
  const [SRC, DST, GROUPS, END, , S, R, P, Q, MASK] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const get = (i: number) => [0x20, i];
  const set = (i: number) => [0x21, i];
  const tee = (i: number) => [0x22, i];
  const i32 = (n: number) => [0x41, ...leb(n)]; // only small non-negative constants here (< 64)
  const [ADD, SUB, MUL, LT_U, GE_U] = [[0x6a], [0x6b], [0x6c], [0x49], [0x4f]];
  const load = (offset: number) => [0xfd, 0x00, 0x00, ...leb(offset)];
  const store = (offset: number) => [0xfd, 0x0b, 0x00, ...leb(offset)];
  const [AND, OR, SHL, SHR_U] = [
    [0xfd, 0x4e],
    [0xfd, 0x50],
    [0xfd, 0xab, 0x01],
    [0xfd, 0xad, 0x01],
  ];
  const maskConst = [
    0xfd,
    0x0c,
    ...[0xffffffff, 0xffffffff, 0xffffffff, 0x3fffffff].flatMap((w) => [
      w & 0xff,
      (w >>> 8) & 0xff,
      (w >>> 16) & 0xff,
      w >>> 24,
    ]),
  ];
  const body = [
    0x02,
    0x06,
    I32,
    0x01,
    V128, // locals: 6 × i32, 1 × v128
    ...maskConst,
    ...set(MASK),
    ...get(SRC),
    ...get(GROUPS),
    0x41,
    ...leb(508),
    ...MUL,
    ...ADD,
    ...set(END),
    0x02,
    0x40, // block
    0x03,
    0x40, //   loop: groups
    ...get(SRC),
    ...get(END),
    ...GE_U,
    0x0d,
    0x01, // br_if exit
    ...get(DST),
    ...get(SRC),
    ...load(0),
    ...store(0),
    ...get(DST),
    ...get(SRC),
    ...load(16),
    ...get(MASK),
    ...AND,
    ...store(16),
    ...get(SRC),
    ...i32(32),
    ...ADD,
    ...set(P),
    ...get(DST),
    ...i32(32),
    ...ADD,
    ...set(Q),
    ...i32(2),
    ...set(S),
    0x03,
    0x40, //     loop: Fr 1..15
    ...i32(32),
    ...get(S),
    ...SUB,
    ...set(R),
    ...get(Q),
    ...get(P),
    ...load(0),
    ...get(S),
    ...SHL,
    ...get(P),
    ...i32(4),
    ...SUB,
    ...load(0),
    ...get(R),
    ...SHR_U,
    ...OR,
    ...store(0),
    ...get(Q),
    ...get(P),
    ...load(16),
    ...get(S),
    ...SHL,
    ...get(P),
    ...load(12),
    ...get(R),
    ...SHR_U,
    ...OR,
    ...get(MASK),
    ...AND,
    ...store(16),
    ...get(P),
    ...i32(32),
    ...ADD,
    ...set(P),
    ...get(Q),
    ...i32(32),
    ...ADD,
    ...set(Q),
    ...get(S),
    ...i32(2),
    ...ADD,
    ...tee(S),
    ...i32(32),
    ...LT_U,
    0x0d,
    0x00, // br_if next Fr
    0x0b, //     end
    ...get(SRC),
    0x41,
    ...leb(508),
    ...ADD,
    ...set(SRC),
    ...get(DST),
    0x41,
    ...leb(512),
    ...ADD,
    ...set(DST),
    0x0c,
    0x00, //   br loop
    0x0b, //   end
    0x0b, // end block
    0x0b, // end func
  ];
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, [0x01, 0x60, 0x03, I32, I32, I32, 0x00]),
    ...section(2, [0x01, ...name('e'), ...name('m'), 0x02, 0x00, ...leb(1)]),
    ...section(3, [0x01, 0x00]),
    ...section(7, [0x01, ...name('pad'), 0x00, 0x00]),
    ...section(10, [0x01, ...leb(body.length), ...body]),
  ]);
}

export interface Fr32Wasm {
  /** Memory holding the padder's input and output (grow it never: views into it would detach). */
  memory: WebAssembly.Memory;
  /** fr32-pads `groups` groups of 4 quads from byte offset `src` to byte offset `dst`. */
  pad(src: number, dst: number, groups: number): void;
}

let compiled: WebAssembly.Module | null | undefined;

/** A padder with a fresh memory of at least `bytes`; undefined where WebAssembly SIMD is unavailable. */
export function createFr32Wasm(bytes: number): Fr32Wasm | undefined {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(moduleBytes());
    } catch {
      compiled = null;
    }
  }
  if (!compiled) return undefined;
  const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) });
  const instance = new WebAssembly.Instance(compiled, { e: { m: memory } });
  return { memory, pad: instance.exports.pad as Fr32Wasm['pad'] };
}
