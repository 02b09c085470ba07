/**
 * Client-side encryption of shard data: a decorator over any StorageProvider, built per archive
 * run from the run's data key. Callers keep the plaintext piece's view (its piece CID, CAR CID and
 * length; ranged reads at plaintext offsets); the provider underneath only ever sees ciphertext,
 * stored under an id derived from the data key, so that it learns neither the piece CID nor the
 * root of the shard, and a copy under another key never meets this one.
 *
 * Ciphertext layout: the plaintext in chunks of `chunkBytes` (the last one shorter), each sealed
 * with AES-256-GCM and followed by its 16-byte tag. Each piece has its own key (HKDF of the data
 * key and the piece CID) and chunk i has nonce i, so a nonce is never used twice under one key,
 * and encryption is deterministic: a retried put makes the same bytes, and a repair's copy is
 * byte-identical to the one it replaces. A ranged read fetches and opens whole chunks; a chunk
 * that fails authentication (a flipped bit, a chunk moved or swapped) is an IntegrityError, as for
 * any bytes that do not match.
 *
 * The provider underneath checks what it is given as always (`verifiedStream`): the ciphertext
 * against its own CAR-codec sha256 CID, which a put computes in a first pass over the plaintext
 * (checking the plaintext against the piece's CAR CID on the way). Shortcuts that hand a provider
 * the staged plaintext file (`localFile`, twins through `adoptsFrom`) are off.
 *
 * Filecoin providers (synapse, lotus) compute the piece CID of the bytes they take, and Kubo
 * imports them as a CAR: neither holds for ciphertext, so they refuse encrypted pieces with
 * EncryptionUnsupportedError.
 */
import crypto from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { EncryptionUnsupportedError, IntegrityError, PieceNotFoundError } from '../errors.js';
import { carCidFromSha256, cidOf, RAW_CODE } from '../pack/cids.js';
import { verifiedStream } from './kit/verified-stream.js';
import type {
  CallOptions,
  PieceRef,
  Placement,
  PutOptions,
  RangeOptions,
  ReplicaStatus,
  StatusOptions,
  StorageProvider,
} from './provider.js';

const TAG_BYTES = 16;
/** Any fixed piece name: two ciphers with the same data key give it the same stored id. */
const KEY_PROBE = 'provenant/key-probe';
const NONCE_BYTES = 12;
/** Provider kinds that cannot hold ciphertext under a piece's name (see the header). */
export const PLAINTEXT_ONLY_KINDS: ReadonlySet<string> = new Set(['synapse', 'lotus', 'kubo']);

/** The keys of one archive run, derived once from its data key. */
export class ShardCipher {
  private readonly idKey: Buffer;
  constructor(
    private readonly dataKey: Buffer,
    readonly chunkBytes: number,
  ) {
    if (dataKey.length !== 32) throw new RangeError('a data key is 32 bytes');
    this.idKey = hkdf(dataKey, 'provenant/encrypted-piece-id/v1', '');
  }

  /** The id the ciphertext of `pieceCid` is stored under: a raw-codec CID, meaningless without the data key. */
  storedId(pieceCid: string): string {
    const mac = crypto.createHmac('sha256', this.idKey).update(pieceCid).digest();
    return cidOf(RAW_CODE, mac).toString();
  }

  pieceKey(pieceCid: string): Buffer {
    return hkdf(this.dataKey, 'provenant/encrypted-piece/v1', pieceCid);
  }

  /** Ciphertext length of `plainBytes` of plaintext. */
  cipherBytes(plainBytes: number): number {
    return plainBytes + TAG_BYTES * Math.ceil(plainBytes / this.chunkBytes);
  }

  /** Plaintext length of `cipherBytes` of ciphertext (undefined when no plaintext has that ciphertext length). */
  plainBytes(cipherBytes: number): number | undefined {
    const sealed = this.chunkBytes + TAG_BYTES;
    const full = Math.floor(cipherBytes / sealed);
    const rest = cipherBytes - full * sealed;
    if (rest > 0 && rest <= TAG_BYTES) return undefined;
    return full * this.chunkBytes + (rest > 0 ? rest - TAG_BYTES : 0);
  }

  /** The ciphertext of a plaintext stream, chunk by chunk. */
  async *seal(pieceCid: string, plain: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
    const key = this.pieceKey(pieceCid);
    let index = 0;
    for await (const chunk of rechunk(plain, this.chunkBytes)) yield sealChunk(key, index++, chunk);
  }

  /**
   * The plaintext of ciphertext that starts at chunk `first`, chunk by chunk. A chunk that fails
   * authentication, or a tail too short to be one, is an IntegrityError naming `where`.
   */
  async *open(
    pieceCid: string,
    sealed: AsyncIterable<Uint8Array>,
    first: number,
    where: string,
  ): AsyncGenerator<Buffer> {
    const key = this.pieceKey(pieceCid);
    let index = first;
    for await (const chunk of rechunk(sealed, this.chunkBytes + TAG_BYTES)) {
      if (chunk.length <= TAG_BYTES) throw new IntegrityError(`ciphertext is truncated in chunk ${index} ${where}`);
      yield openChunk(key, index, chunk, where);
      index++;
    }
  }
}

function hkdf(key: Buffer, salt: string, info: string): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', key, salt, info, 32));
}

function nonceOf(index: number): Buffer {
  const n = Buffer.alloc(NONCE_BYTES);
  n.writeBigUInt64BE(BigInt(index), NONCE_BYTES - 8);
  return n;
}

function sealChunk(key: Buffer, index: number, plain: Buffer): Buffer {
  const c = crypto.createCipheriv('aes-256-gcm', key, nonceOf(index));
  const body = c.update(plain);
  c.final();
  return Buffer.concat([body, c.getAuthTag()]);
}

function openChunk(key: Buffer, index: number, sealed: Buffer, where: string): Buffer {
  const d = crypto.createDecipheriv('aes-256-gcm', key, nonceOf(index));
  d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const body = d.update(sealed.subarray(0, sealed.length - TAG_BYTES));
  try {
    d.final();
  } catch (cause) {
    throw new IntegrityError(`ciphertext fails authentication in chunk ${index} ${where}`, { cause });
  }
  return body;
}

/** Re-cut a byte stream into pieces of exactly `size` bytes (the last one shorter). */
async function* rechunk(src: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  for await (const c of src) {
    let b = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    while (held + b.length >= size) {
      const take = size - held;
      parts.push(b.subarray(0, take));
      yield parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      b = b.subarray(take);
      parts = [];
      held = 0;
    }
    if (b.length > 0) {
      parts.push(b);
      held += b.length;
    }
  }
  if (held > 0) yield Buffer.concat(parts);
}

/** Ciphertext of the CAR read from `open()`, checked as plaintext against the piece on the way. */
function sealedStream(cipher: ShardCipher, piece: PieceRef, open: () => Readable, provider: string): Readable {
  const plain = verifiedStream(open(), piece, { provider, piece: piece.pieceCid, what: 'bytes to encrypt' });
  return Readable.from(cipher.seal(piece.pieceCid, plain));
}

/** One provider seen through a run's data key (see the header). */
export class EncryptedProvider implements StorageProvider {
  readonly id: string;
  readonly kind: string;
  /** Ciphertext CAR CIDs computed by this instance's puts (a second provider's put needs one pass, not two). */
  private readonly sealedCids = new Map<string, string>();
  /** Ciphertext lengths as the provider reported them (to bound ranged reads at the last chunk). */
  private readonly sealedLengths = new Map<string, number>();
  readonly renew?: StorageProvider['renew'];

  private readonly plain: ReadonlySet<string>;

  constructor(
    readonly inner: StorageProvider,
    private readonly cipher: ShardCipher,
    o: {
      /** Shared between the decorators of one run, so that each piece is sealed and hashed once per worker. */
      sealed?: Map<string, string>;
      /** Pieces stored as they are (a manifest): passed through untouched. */
      plain?: ReadonlySet<string>;
    } = {},
  ) {
    this.id = inner.id;
    this.kind = inner.kind;
    if (o.sealed) this.sealedCids = o.sealed;
    this.plain = o.plain ?? new Set();
    if (inner.renew) {
      const renew = inner.renew.bind(inner);
      this.renew = (piece, opts) => {
        if (this.plain.has(piece.pieceCid)) return renew(piece, opts);
        this.refuseKind();
        return renew({ pieceCid: this.cipher.storedId(piece.pieceCid) }, opts);
      };
    }
  }

  private refuseKind(): void {
    if (PLAINTEXT_ONLY_KINDS.has(this.inner.kind))
      throw new EncryptionUnsupportedError(
        `provider ${this.inner.id} (${this.inner.kind}) cannot hold encrypted shards: use local or s3 providers, or archive without encryption`,
      );
  }

  private where(pieceCid: string): string {
    return `[provider=${this.id}, piece=${pieceCid}]`;
  }

  /** The ciphertext's piece reference at the provider underneath. */
  private storedRef(piece: PieceRef, carCid: string): PieceRef {
    const id = this.cipher.storedId(piece.pieceCid);
    return { pieceCid: id, rootCid: id, carCid, bytes: this.cipher.cipherBytes(piece.bytes) };
  }

  async put(piece: PieceRef, open: () => Readable, o: PutOptions = {}): Promise<Placement> {
    if (this.plain.has(piece.pieceCid)) return this.inner.put(piece, open, o);
    this.refuseKind();
    let carCid = this.sealedCids.get(piece.pieceCid);
    if (!carCid) {
      // First pass: the ciphertext's own CID, which the provider checks the second pass against.
      const hash = crypto.createHash('sha256');
      for await (const c of sealedStream(this.cipher, piece, open, this.id)) {
        o.signal?.throwIfAborted();
        hash.update(c as Buffer);
      }
      carCid = carCidFromSha256(hash.digest());
      this.sealedCids.set(piece.pieceCid, carCid);
    }
    const placed = await this.inner.put(
      this.storedRef(piece, carCid),
      () => sealedStream(this.cipher, piece, open, this.id),
      {
        ...(o.signal ? { signal: o.signal } : {}),
      },
    );
    return { ...placed, pieceCid: piece.pieceCid };
  }

  async status(piece: Pick<PieceRef, 'pieceCid'>, o: StatusOptions = {}): Promise<ReplicaStatus> {
    if (this.plain.has(piece.pieceCid)) return this.inner.status(piece, o);
    this.refuseKind();
    const st = await this.inner.status({ pieceCid: this.cipher.storedId(piece.pieceCid) }, o);
    if (st.bytes !== undefined) this.sealedLengths.set(piece.pieceCid, st.bytes);
    const bytes = st.bytes === undefined ? undefined : this.cipher.plainBytes(st.bytes);
    const out: ReplicaStatus = { ...st, pieceCid: piece.pieceCid };
    delete out.bytes;
    if (bytes !== undefined) out.bytes = bytes;
    else if (st.bytes !== undefined) {
      // A length no plaintext encrypts to: the stored copy is cut short or padded.
      out.bytes = -1;
      out.detail = `stored ciphertext has ${st.bytes} bytes, not a whole number of sealed chunks`;
    }
    return out;
  }

  readRange(piece: Pick<PieceRef, 'pieceCid'>, o: RangeOptions = {}): Readable {
    const { offset = 0, length } = o;
    if (length === 0) return Readable.from([]);
    if (this.plain.has(piece.pieceCid)) return this.inner.readRange(piece, o);
    const self = this;
    return Readable.from(
      (async function* () {
        self.refuseKind();
        const C = self.cipher.chunkBytes;
        const sealed = C + TAG_BYTES;
        const first = Math.floor(offset / C);
        const start = first * sealed;
        let cipherLength: number | undefined;
        if (length !== undefined) {
          const last = Math.floor((offset + length - 1) / C);
          let end = (last + 1) * sealed;
          // Bounded by the stored length, so that a provider strict about ranges past the end is asked for no more.
          let total = self.sealedLengths.get(piece.pieceCid);
          if (total === undefined) {
            const st = await self.status(piece, o);
            if (!st.present) throw new PieceNotFoundError(`piece not stored ${self.where(piece.pieceCid)}`);
            total = self.sealedLengths.get(piece.pieceCid);
          }
          if (total !== undefined) end = Math.min(end, total);
          cipherLength = Math.max(0, end - start);
          if (cipherLength === 0) return;
        }
        const src = self.inner.readRange(
          { pieceCid: self.cipher.storedId(piece.pieceCid) },
          {
            offset: start,
            ...(cipherLength !== undefined ? { length: cipherLength } : {}),
            ...(o.signal ? { signal: o.signal } : {}),
          },
        );
        let skip = offset - first * C;
        let left = length ?? Infinity;
        for await (const plain of self.cipher.open(piece.pieceCid, src, first, self.where(piece.pieceCid))) {
          let out = plain;
          if (skip > 0) {
            out = out.subarray(Math.min(skip, out.length));
            skip -= plain.length - out.length;
          }
          if (out.length > left) out = out.subarray(0, left);
          left -= out.length;
          if (out.length > 0) yield out;
          if (left <= 0) return;
        }
      })(),
      { objectMode: false },
    );
  }

  /**
   * By a root CID as it is: only pieces stored as they are (manifests, tables, audit records) are
   * found that way, an encrypted piece's root being stored under its id.
   */
  locate(rootCid: string, o?: CallOptions): Promise<PieceRef | undefined> {
    return this.inner.locate(rootCid, o);
  }

  async delete(piece: Pick<PieceRef, 'pieceCid'>, o: CallOptions = {}): Promise<void> {
    if (this.plain.has(piece.pieceCid)) return this.inner.delete(piece, o);
    this.refuseKind();
    await this.inner.delete({ pieceCid: this.cipher.storedId(piece.pieceCid) }, o);
  }

  /** The id the ciphertext of `pieceCid` is stored under at the inner provider (itself for a plaintext piece). */
  storedIdOf(pieceCid: string): string {
    return this.plain.has(pieceCid) ? pieceCid : this.cipher.storedId(pieceCid);
  }

  /** True when `other` sees pieces through the same data key (its ciphertext can be copied here as it is). */
  sameKey(other: EncryptedProvider): boolean {
    return other.cipher.storedId(KEY_PROBE) === this.cipher.storedId(KEY_PROBE);
  }

  /**
   * Read this provider's ciphertext of `piece` into `file` as it is stored (a repair's source):
   * each chunk authenticated and the plaintext checked against the piece as the bytes pass, so
   * only a good copy gets through, and nothing decrypted reaches the disk. Returns the
   * ciphertext's CAR CID, for `putSealed`.
   */
  async readSealed(piece: PieceRef, file: string, o: CallOptions = {}): Promise<string> {
    this.refuseKind();
    const hash = crypto.createHash('sha256');
    const out = fs.createWriteStream(file);
    // Kept, not thrown from an event: a failed write shows at the end (or the read fails first).
    let writeError: Error | undefined;
    out.on('error', (e) => (writeError ??= e));
    const src = this.inner.readRange({ pieceCid: this.cipher.storedId(piece.pieceCid) }, o);
    async function* tap(): AsyncGenerator<Buffer> {
      for await (const c of src) {
        const b = c as Buffer;
        hash.update(b);
        if (!out.write(b)) await once(out, 'drain');
        yield b;
      }
    }
    try {
      const plain = verifiedStream(this.cipher.open(piece.pieceCid, tap(), 0, this.where(piece.pieceCid)), piece, {
        provider: this.id,
        piece: piece.pieceCid,
        what: 'decrypted bytes',
      });
      for await (const chunk of plain) void chunk;
      await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
      if (writeError) throw writeError;
    } catch (err) {
      out.destroy();
      throw err;
    }
    const carCid = carCidFromSha256(hash.digest());
    this.sealedCids.set(piece.pieceCid, carCid);
    return carCid;
  }

  /** Store the ciphertext that `readSealed` (same data key) put in `file`, as it is. */
  async putSealed(piece: PieceRef, file: string, carCid: string, o: PutOptions = {}): Promise<Placement> {
    this.refuseKind();
    const placed = await this.inner.put(
      this.storedRef(piece, carCid),
      () => fs.createReadStream(file, { highWaterMark: 4 << 20 }),
      { ...o, localFile: file },
    );
    return { ...placed, pieceCid: piece.pieceCid };
  }

  /** A staged file is plaintext: never moved in as it is. */
  async adoptsFrom(): Promise<boolean> {
    return false;
  }
}
