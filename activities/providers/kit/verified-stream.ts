/**
 * The one check that a stream of piece bytes is the piece: every chunk is hashed (sha2-256) and
 * counted as it passes, and at the end the digest must be the piece's CAR CID and the count its
 * length. A mismatch is an IntegrityError carrying `[provider=…, piece=…]`, thrown before the
 * stream ends, so a consumer that only commits once its source is exhausted (a multipart upload,
 * a temp file renamed into place) never commits wrong bytes. A stream longer than the expected
 * length fails as soon as it passes it; the extra chunk is never handed on.
 */
import crypto from 'node:crypto';
import { IntegrityError } from '../../errors.js';
import { carCidFromSha256 } from '../../pack/cids.js';

export interface ExpectedBytes {
  /** CID (sha2-256, CAR codec) the bytes must hash to. */
  carCid: string;
  /** Exact length, when known. */
  bytes?: number;
}

export interface VerifyContext {
  /** Provider id (or source) the bytes come from or go to. */
  provider: string;
  /** Piece CID, for the message. */
  piece: string;
  /** What is being checked, for the message (default: 'bytes'). */
  what?: string;
}

/** An AsyncIterable of the source's bytes (as Buffers) that fails with IntegrityError on a mismatch. */
export class VerifiedStream implements AsyncIterable<Buffer> {
  /** Bytes passed on so far. */
  bytes = 0;
  /** The mismatch, once found: for callers whose consumer wraps the error it threw (SDK uploads). */
  failure?: IntegrityError;

  constructor(
    private readonly src: AsyncIterable<Uint8Array>,
    private readonly expect: ExpectedBytes,
    private readonly ctx: VerifyContext,
  ) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    const hash = crypto.createHash('sha256');
    const limit = this.expect.bytes ?? Infinity;
    for await (const chunk of this.src) {
      const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      if (this.bytes + c.length > limit) throw this.mismatch(`more than ${limit} bytes`);
      hash.update(c);
      this.bytes += c.length;
      yield c;
    }
    const got = carCidFromSha256(hash.digest());
    if (got !== this.expect.carCid || (this.expect.bytes !== undefined && this.bytes !== this.expect.bytes)) {
      throw this.mismatch(`${got}/${this.bytes}`);
    }
  }

  private mismatch(got: string): IntegrityError {
    const { provider, piece, what = 'bytes' } = this.ctx;
    const expected = `${this.expect.carCid}/${this.expect.bytes ?? '?'}`;
    this.failure = new IntegrityError(
      `${what} do not match the piece [provider=${provider}, piece=${piece}, expected=${expected}, got=${got}]`,
    );
    return this.failure;
  }
}

export function verifiedStream(
  src: AsyncIterable<Uint8Array>,
  expect: ExpectedBytes,
  ctx: VerifyContext,
): VerifiedStream {
  return new VerifiedStream(src, expect, ctx);
}

/** The CAR CID and length of a whole stream (for a piece whose CAR CID is not known yet). */
export async function carCidOfStream(src: AsyncIterable<Uint8Array>): Promise<{ carCid: string; bytes: number }> {
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  for await (const c of src) {
    hash.update(c);
    bytes += c.length;
  }
  return { carCid: carCidFromSha256(hash.digest()), bytes };
}
