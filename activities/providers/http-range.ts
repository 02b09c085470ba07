/**
 * The bytes [offset, last] of an HTTP piece retrieval, whether the server honoured the Range
 * header (206) or sent the whole piece (200).
 */
export async function* rangeOfBody(body: AsyncIterable<Uint8Array>, status: number, offset: number, last: number): AsyncGenerator<Buffer> {
  let skip = status === 200 ? offset : 0; // a server that ignores Range sends everything
  let left = last - offset + 1;
  for await (const chunk of body) {
    let c = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (skip > 0) {
      const n = Math.min(skip, c.length);
      c = c.subarray(n);
      skip -= n;
    }
    if (c.length > left) c = c.subarray(0, left);
    left -= c.length;
    if (c.length > 0) yield c;
    if (left === 0) break;
  }
}
