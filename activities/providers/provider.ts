/**
 * One small interface that every storage provider implements, one provider per file.
 * Pieces are keyed by their piece CID (CommP v2); `put` is idempotent by that key.
 */
import type { Readable } from 'node:stream';
import type { ChainCommitment, PieceRef, Placement } from '../../shared/types.js';

export type { PieceRef, Placement };

export interface ReplicaStatus {
  providerId: string;
  pieceCid: string;
  present: boolean;
  bytes?: number;
  expiresAt?: string;
  detail?: string;
  /** The chain's record of the piece (a Filecoin provider's), once there is one. */
  commitment?: ChainCommitment;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface StatusOptions extends CallOptions {
  /**
   * Also look up the chain's record of the piece, for a copy whose put recorded none (a commit
   * confirmed after the put returned). Providers that find it as part of every status (Lotus) or
   * have no chain ignore it.
   */
  commitment?: boolean;
}

/** A byte range of a piece: from `offset` (default 0), `length` bytes (to the end when omitted). */
export interface RangeOptions extends CallOptions {
  offset?: number;
  length?: number;
  /** Buffers the caller lends for the chunks (see ChunkBuffers); a provider may ignore them. */
  buffers?: ChunkBuffers;
}

/**
 * Buffers a reader lends for a range's chunks, to spare an allocation per chunk (the restore's:
 * each allocated chunk counts as external memory, and V8 answers every few tens of MiB of it with
 * a full collection). A provider that reads into memory it controls (local files) may take one per
 * chunk and yield it, or a prefix of it, as exactly one chunk, and must not touch it after; one it
 * takes and does not yield goes back with `give`. The reader reuses a buffer once it is done with
 * the chunk. Providers whose chunks come from elsewhere (the network) ignore them.
 */
export interface ChunkBuffers {
  take(): Uint8Array;
  give(buf: Uint8Array): void;
}

export interface PutOptions extends CallOptions {
  /**
   * The CAR as a file on this host whose bytes the caller has already checked against
   * `piece.carCid` (a staged shard, a verified download). A provider on the same machine may
   * copy it in the kernel instead of streaming it through `open()`; the others ignore it.
   */
  localFile?: string;
  /** The caller is done with `localFile` once the piece is stored: the provider may take the file itself. */
  consumeLocalFile?: boolean;
}

export interface StorageProvider {
  readonly id: string;
  readonly kind: string;
  /** Store the CAR read from `open()` under `piece.pieceCid`; no-op if already stored intact. */
  put(piece: PieceRef, open: () => Readable, o?: PutOptions): Promise<Placement>;
  status(piece: Pick<PieceRef, 'pieceCid'>, o?: StatusOptions): Promise<ReplicaStatus>;
  /** Read `length` bytes from `offset` (to the end when length is omitted). */
  readRange(piece: Pick<PieceRef, 'pieceCid'>, o?: RangeOptions): Readable;
  /** Find a piece by the root CID in its CAR header (used to locate manifests). */
  locate(rootCid: string, o?: CallOptions): Promise<PieceRef | undefined>;
  delete(piece: Pick<PieceRef, 'pieceCid'>, o?: CallOptions): Promise<void>;
  /**
   * True when a file in `dir` (on this host) would be taken in by moving it, not by copying its
   * bytes (a local directory on the same filesystem). The packer then writes extra copies of each
   * shard while packing, for such providers to take (see the pack and put activities).
   */
  adoptsFrom?(dir: string): Promise<boolean>;
  /** Extend how long the provider keeps the piece (claim extension, new deal, top-up). */
  renew?(piece: Pick<PieceRef, 'pieceCid'>, o?: CallOptions): Promise<{ expiresAt?: string }>;
  close?(): Promise<void>;
}
