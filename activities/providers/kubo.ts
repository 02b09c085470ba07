/**
 * A Kubo (go-ipfs) node as a storage provider, through its RPC API with plain `fetch`.
 *
 * Each piece is stored twice on the node:
 *   - as a UnixFS file of the exact CAR bytes (`/api/v0/add`, raw leaves, pinned and named
 *     `provenant:<pieceCid>`), so `readRange` returns those bytes with `/api/v0/cat?offset&length`;
 *     block reads alone cannot rebuild the original CAR framing;
 *   - its blocks imported with `/api/v0/dag/import`, so the dataset is served by its own CIDs.
 *     The roots are not pinned: a shard is a slice of a DAG, and a recursive pin of its header
 *     root can need blocks held by other shards (an online node would go looking for them).
 *     The pinned file above is what keeps the piece.
 *
 * The index lives in MFS under `<mfsDir>`: pieces/<pieceCid>.json (the PieceRef plus the file
 * CID) and roots/<rootCid> (the piece CID), so `locate` works from the root CID alone.
 * The bytes sent are hashed on the way; if they do not match the piece, the file is unpinned
 * and nothing is indexed.
 */
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import type { KuboProviderConfig } from '../../config/schema.js';
import { isNetworkError, PieceNotFoundError, ProviderUnavailableError, ProvenantError, StoreError } from '../errors.js';
import { requireEnv } from './kit/env.js';
import { httpStatusError, providerFailure, type ProviderOp as Op } from './kit/http-status.js';
import { verifiedStream } from './kit/verified-stream.js';
import type { CallOptions, PieceRef, Placement, ReplicaStatus, StorageProvider, RangeOptions } from './provider.js';

const SAFE_CID = /^[a-z0-9]+$/;
/** UnixFS chunk size for the stored CAR file. */
const CHUNK_BYTES = 1024 * 1024;

type Params = Record<string, string | number | boolean | undefined>;

interface IndexEntry extends PieceRef {
  /** CID of the UnixFS file that holds the exact CAR bytes. */
  fileCid: string;
  storedAt: string;
}

/** A Kubo RPC error body: `{ Message, Code, Type: 'error' }`. */
class KuboRpcError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class KuboProvider implements StorageProvider {
  readonly kind = 'kubo';
  readonly id: string;
  private readonly api: string;
  private readonly dir: string;
  private readonly headers: Record<string, string> = {};

  constructor(cfg: KuboProviderConfig, env: NodeJS.ProcessEnv = process.env) {
    this.id = cfg.id;
    this.api = `${cfg.apiUrl.replace(/\/+$/, '')}/api/v0`;
    this.dir = cfg.mfsDir;
    if (cfg.authorizationEnv)
      this.headers.authorization = requireEnv(cfg.authorizationEnv, {
        path: `providers.${cfg.id}.authorizationEnv`,
        env,
      });
  }

  private indexPath(pieceCid: string): string {
    if (!SAFE_CID.test(pieceCid))
      throw new PieceNotFoundError(`not a piece CID [provider=${this.id}, piece=${pieceCid}]`);
    return `${this.dir}/pieces/${pieceCid}.json`;
  }

  private rootPath(rootCid: string): string {
    return `${this.dir}/roots/${rootCid}`;
  }

  async put(piece: PieceRef, open: () => Readable, o: CallOptions = {}): Promise<Placement> {
    const existing = await this.readIndex(piece.pieceCid, o, 'put');
    if (
      existing &&
      existing.carCid === piece.carCid &&
      existing.bytes === piece.bytes &&
      (await this.pinned(existing.fileCid, o, 'put'))
    ) {
      await this.pointRoot(piece, o);
      return { providerId: this.id, pieceCid: piece.pieceCid, existed: true, storedAt: existing.storedAt };
    }

    // 1. The exact CAR bytes as a pinned UnixFS file, checked as they go out. A mismatch fails the
    // request body before its end, so Kubo never finishes the add (and never pins the file).
    const checked = verifiedStream(open(), piece, { provider: this.id, piece: piece.pieceCid, what: 'bytes sent' });
    let added: Response;
    try {
      const params = {
        pin: true,
        'pin-name': `provenant:${piece.pieceCid}`,
        'raw-leaves': true,
        'cid-version': 1,
        chunker: `size-${CHUNK_BYTES}`,
        quieter: true,
        progress: false,
      };
      added = await this.call('add', params, { ...o, op: 'put', body: multipart(`${piece.pieceCid}.car`, checked) });
    } catch (err) {
      throw checked.failure ?? err;
    }
    const text = await added.text().catch((err: unknown) => {
      throw checked.failure ?? this.typed(err, 'put', piece.pieceCid);
    });
    const fileCid = lastJson<{ Hash?: string }>(text)?.Hash;
    if (checked.failure) {
      if (fileCid) await this.call('pin/rm', { arg: fileCid }, { ...o, op: 'put' }).catch(() => {});
      throw checked.failure;
    }
    if (!fileCid) throw new StoreError(`add returned no CID ${this.where(piece.pieceCid)}`);

    // 2. Its blocks, so the node serves the dataset by its own CIDs.
    try {
      const imported = await this.call(
        'dag/import',
        { 'pin-roots': false, stats: true },
        { ...o, op: 'put', body: multipart(`${piece.pieceCid}.car`, open()) },
      );
      await imported.text();
    } catch (err) {
      // Not indexed, so not stored: release the file rather than leave an orphan pin.
      await this.call('pin/rm', { arg: fileCid }, { ...o, op: 'put' }).catch(() => {});
      throw err;
    }

    // 3. The index: piece → file CID, root → piece.
    const entry: IndexEntry = { ...piece, fileCid, storedAt: new Date().toISOString() };
    await this.writeMfs(this.indexPath(piece.pieceCid), JSON.stringify(entry), o);
    await this.pointRoot(piece, o);
    return { providerId: this.id, pieceCid: piece.pieceCid, existed: false, storedAt: entry.storedAt };
  }

  async status(piece: Pick<PieceRef, 'pieceCid'>, o: CallOptions = {}): Promise<ReplicaStatus> {
    const entry = await this.readIndex(piece.pieceCid, o, 'status');
    if (!entry) return { providerId: this.id, pieceCid: piece.pieceCid, present: false };
    const pinned = await this.pinned(entry.fileCid, o, 'status');
    return {
      providerId: this.id,
      pieceCid: piece.pieceCid,
      present: pinned,
      bytes: pinned ? entry.bytes : undefined,
      detail: pinned ? `file ${entry.fileCid}` : `indexed but ${entry.fileCid} is not pinned`,
    };
  }

  readRange(piece: Pick<PieceRef, 'pieceCid'>, o: RangeOptions = {}): Readable {
    const { offset = 0, length } = o;
    if (length === 0) return Readable.from([]);
    const self = this;
    return Readable.from(
      (async function* () {
        const entry = await self.readIndex(piece.pieceCid, o, 'read');
        if (!entry) throw new PieceNotFoundError(`piece not stored ${self.where(piece.pieceCid)}`);
        if (offset >= entry.bytes) return;
        const expected = Math.min(length ?? Infinity, entry.bytes - offset);
        const res = await self.call('cat', { arg: entry.fileCid, offset, length }, { ...o, op: 'read' });
        let got = 0;
        try {
          for await (const chunk of Readable.fromWeb(res.body as never) as AsyncIterable<Buffer>) {
            got += chunk.length;
            yield chunk;
          }
        } catch (err) {
          throw self.typed(err, 'read', piece.pieceCid);
        }
        // Kubo reports errors after the headers in a trailer; a short body is how they show here.
        if (got !== expected)
          throw new ProviderUnavailableError(`short read: ${got} of ${expected} bytes ${self.where(piece.pieceCid)}`);
      })(),
      { objectMode: false },
    );
  }

  async locate(rootCid: string, o: CallOptions = {}): Promise<PieceRef | undefined> {
    if (!SAFE_CID.test(rootCid)) return undefined;
    const pieceCid = (await this.readMfs(this.rootPath(rootCid), o, 'locate'))?.trim();
    if (!pieceCid || !SAFE_CID.test(pieceCid)) return undefined;
    const entry = await this.readIndex(pieceCid, o, 'locate');
    if (!entry) return undefined;
    return { pieceCid: entry.pieceCid, carCid: entry.carCid, rootCid: entry.rootCid, bytes: entry.bytes };
  }

  async delete(piece: Pick<PieceRef, 'pieceCid'>, o: CallOptions = {}): Promise<void> {
    const entry = await this.readIndex(piece.pieceCid, o, 'delete');
    if (!entry) return;
    if (await this.pinned(entry.fileCid, o, 'delete'))
      await this.call('pin/rm', { arg: entry.fileCid }, { ...o, op: 'delete' });
    await this.call('files/rm', { arg: this.indexPath(piece.pieceCid), force: true }, { ...o, op: 'delete' });
    if (
      SAFE_CID.test(entry.rootCid) &&
      (await this.readMfs(this.rootPath(entry.rootCid), o, 'delete'))?.trim() === piece.pieceCid
    ) {
      await this.call('files/rm', { arg: this.rootPath(entry.rootCid), force: true }, { ...o, op: 'delete' });
    }
  }

  // ---- index in MFS ----------------------------------------------------------------------------

  private async readIndex(pieceCid: string, o: CallOptions, op: Op): Promise<IndexEntry | undefined> {
    const text = await this.readMfs(this.indexPath(pieceCid), o, op);
    return text ? (JSON.parse(text) as IndexEntry) : undefined;
  }

  private async pointRoot(piece: PieceRef, o: CallOptions): Promise<void> {
    if (!SAFE_CID.test(piece.rootCid)) return;
    const path = this.rootPath(piece.rootCid);
    if ((await this.readMfs(path, o, 'put'))?.trim() !== piece.pieceCid) await this.writeMfs(path, piece.pieceCid, o);
  }

  private async readMfs(path: string, o: CallOptions, op: Op): Promise<string | undefined> {
    try {
      return await (await this.call('files/read', { arg: path }, { ...o, op })).text();
    } catch (err) {
      if (err instanceof PieceNotFoundError) return undefined;
      throw err;
    }
  }

  private async writeMfs(path: string, text: string, o: CallOptions): Promise<void> {
    const params = { arg: path, create: true, parents: true, truncate: true };
    const res = await this.call('files/write', params, {
      ...o,
      op: 'put',
      body: multipart('data', [Buffer.from(text)]),
    });
    await res.text();
  }

  private async pinned(cid: string, o: CallOptions, op: Op): Promise<boolean> {
    try {
      const r = lastJson<{ Keys?: Record<string, unknown> }>(
        await (await this.call('pin/ls', { arg: cid, type: 'recursive' }, { ...o, op })).text(),
      );
      return !!r?.Keys?.[cid];
    } catch (err) {
      if (err instanceof PieceNotFoundError) return false;
      throw err;
    }
  }

  // ---- RPC ---------------------------------------------------------------------------------------

  /** POST one RPC command; a non-2xx answer becomes a typed error (absent paths: PieceNotFoundError). */
  private async call(cmd: string, params: Params, c: CallOptions & { op: Op; body?: Multipart }): Promise<Response> {
    const { op, body } = c;
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined) qs.set(k, String(v));
    let res: Response;
    try {
      res = await fetch(`${this.api}/${cmd}?${qs}`, {
        method: 'POST',
        headers: body ? { ...this.headers, 'content-type': body.contentType } : this.headers,
        body: body ? (Readable.from(body.stream) as never) : undefined,
        signal: c.signal,
        duplex: 'half',
      } as RequestInit);
    } catch (err) {
      throw this.typed(err, op, String(params.arg ?? cmd));
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => '');
    let message = text.trim();
    try {
      message = (JSON.parse(text) as { Message?: string }).Message ?? message;
    } catch {
      /* not JSON: keep the text */
    }
    throw this.typed(
      new KuboRpcError(res.status, `${cmd}: ${message || res.statusText}`),
      op,
      String(params.arg ?? cmd),
    );
  }

  private where(subject: string): string {
    return `[provider=${this.id}, api=${this.api}, ${SAFE_CID.test(subject) ? 'piece' : 'path'}=${subject}]`;
  }

  /**
   * Map a fetch or RPC error onto the error hierarchy, keeping it as the cause. Kubo answers a
   * failed command with HTTP 500 and a message, so "no such path" is read from the message; every
   * status follows the kit's rules for an RPC endpoint (404/405: the apiUrl is not a Kubo RPC API).
   */
  private typed(err: unknown, op: Op, subject: string): ProvenantError {
    if (ProvenantError.is(err)) return err;
    const where = this.where(subject);
    const msg = (err as Error)?.message ?? String(err);
    if (err instanceof KuboRpcError) {
      if (/file does not exist|not pinned|no link named|not found/i.test(msg))
        return new PieceNotFoundError(`not stored ${where}: ${msg}`, { cause: err });
      return httpStatusError(err.status, {
        side: 'provider',
        endpoint: 'rpc',
        op,
        message: `Kubo ${op} failed ${where}: ${msg}`,
        cause: err,
      });
    }
    if (isNetworkError(err))
      return new ProviderUnavailableError(`Kubo API unreachable ${where}: ${msg}`, { cause: err });
    return providerFailure(op, `${op} failed ${where}: ${msg}`, err);
  }
}

interface Multipart {
  contentType: string;
  stream: AsyncIterable<Uint8Array>;
}

/** One file as a streamed multipart/form-data body (nothing buffered). */
function multipart(filename: string, data: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Multipart {
  const boundary = `provenant-${crypto.randomBytes(12).toString('hex')}`;
  return {
    contentType: `multipart/form-data; boundary=${boundary}`,
    stream: (async function* () {
      yield Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${encodeURIComponent(filename)}"\r\n` +
          'Content-Type: application/octet-stream\r\n\r\n',
      );
      yield* data;
      yield Buffer.from(`\r\n--${boundary}--\r\n`);
    })(),
  };
}

/** The last JSON object of a newline-delimited JSON answer. */
function lastJson<T>(text: string): T | undefined {
  const lines = text.split('\n').filter((l) => l.trim());
  return lines.length ? (JSON.parse(lines[lines.length - 1]!) as T) : undefined;
}
