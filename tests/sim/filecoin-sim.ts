/**
 * A SIMULATED Filecoin network on loopback, for tests: no chain or storage provider outside
 * this process is ever contacted. Three HTTP servers, each on a free 127.0.0.1 port:
 *
 *   rpcUrl        a Lotus-style JSON-RPC endpoint (/rpc/v1) answering both the Ethereum
 *                 methods (`eth_*`, the simulated FOC contracts of chain.ts) and the `Filecoin.*`
 *                 methods of a Lotus node (lotus-node.ts), as a real Lotus node serves both;
 *   pdpUrl        a Curio PDP storage provider: the HTTP API the Synapse SDK uses (piece upload
 *                 sessions, piece lookup, data set create-and-add, add pieces, their status,
 *                 piece deletion) and /piece/<pieceCid> retrieval with Range;
 *   retrievalUrl  the Lotus miner's HTTP piece endpoint (as Boost and Curio serve it): GET
 *                 /piece/<v1 pieceCid> with Range, and PUT of a deal's piece bytes (the simulated
 *                 stand-in for offline-deal data import, which real providers do out of band).
 *
 * Epochs advance with the wall clock (30 s) and on `advance(n)`; proofs fault on command
 * (`chain.failProofs`), deals are slashed and sectors fault on command (`lotus.slashDeal`,
 * `lotus.faultSector`), and `faults` makes any server answer with errors or stall.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import * as Piece from '@filoz/synapse-core/piece';
import { CID } from 'multiformats/cid';
import { type Address, type Hex, isHex, toHex } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { ADDRESSES, SimChain } from './chain.js';
import { HttpRefusal, RpcError, SimLotus } from './lotus-node.js';

/** How a simulated server misbehaves for requests whose description matches. */
export interface Fault {
  /** 'error': an error answer; 'stall': never answer (the client times out). */
  kind: 'error' | 'stall';
  /** For 'error': an HTTP status (default: a JSON-RPC error on the RPC server, 503 elsewhere). */
  status?: number;
  /** Which requests: RPC method names, or "<METHOD> <path>" for HTTP; all when omitted. */
  match?: RegExp;
}

interface CommitRecord {
  kind: 'create' | 'add';
  status: 'pending' | 'confirmed' | 'rejected';
  dataSetId?: bigint;
  pieceIds?: bigint[];
  pieceCount: number;
}

export class FilecoinSim {
  readonly chain = new SimChain();
  readonly lotus = new SimLotus(this.chain);
  /** The simulated PDP provider's own key: it sends the data set messages. */
  readonly spAccount = privateKeyToAccount(generatePrivateKey());
  /** Misbehaviour, per server; set and clear freely. */
  readonly faults: { rpc?: Fault; pdp?: Fault; retrieval?: Fault } = {};
  /** What the servers saw, for assertions. */
  readonly stats = {
    pdpUploads: 0,
    pdpCommits: 0,
    pdpDeletes: 0,
    lotusUploads: 0,
    rpcCalls: new Map<string, number>(),
  };
  providerId = 0n;
  rpcUrl = '';
  pdpUrl = '';
  retrievalUrl = '';
  private readonly servers: http.Server[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly uploads = new Map<string, Buffer | undefined>();
  /** Pieces parked at the PDP provider (stored, maybe committed): v2 piece CID → bytes. */
  private readonly parked = new Map<string, Buffer>();
  private readonly commits = new Map<string, CommitRecord>();
  /** Uploaded pieces the provider is still checking: GET /pdp/piece answers 202, adds refuse them. */
  private readonly processing = new Set<string>();
  /** Keep new uploads in processing until `finishProcessing()` (as Curio does for a while). */
  holdProcessing = false;

  static async start(o: { maxPieceSizeInBytes?: bigint } = {}): Promise<FilecoinSim> {
    const sim = new FilecoinSim();
    sim.rpcUrl = `${await sim.listen((req, res) => sim.onRpc(req, res))}/rpc/v1`;
    sim.pdpUrl = await sim.listen((req, res) => sim.onPdp(req, res));
    sim.retrievalUrl = await sim.listen((req, res) => sim.onRetrieval(req, res));
    sim.providerId = sim.chain.registerProvider({
      serviceProvider: sim.spAccount.address,
      serviceURL: sim.pdpUrl,
      maxPieceSizeInBytes: o.maxPieceSizeInBytes,
    });
    return sim;
  }

  /** Move the simulated chain forward by `epochs` (30 s each). */
  advance(epochs: number): void {
    this.chain.advance(epochs);
    this.lotus.tick();
  }

  /** Whether the PDP provider holds bytes for this piece (parked or committed). */
  pdpHas(pieceCid: string): boolean {
    return this.parked.has(pieceCid);
  }
  finishProcessing(): void {
    this.processing.clear();
  }
  /** The PDP provider loses its copy of a piece. */
  pdpDrop(pieceCid: string): void {
    this.parked.delete(pieceCid);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  private async listen(
    handler: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>,
  ): Promise<string> {
    const server = http.createServer((req, res) => {
      handler(req, res).catch((err: Error) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`simulated server error: ${err.message}`);
      });
    });
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.servers.push(server);
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** Apply a configured fault: true when the request has been answered (or left to hang). */
  private misbehave(fault: Fault | undefined, what: string, res: http.ServerResponse, rpcId?: unknown): boolean {
    if (!fault || (fault.match && !fault.match.test(what))) return false;
    if (fault.kind === 'stall') return true; // never answered; the socket is destroyed at stop()
    if (rpcId !== undefined && fault.status === undefined) {
      json(res, 200, {
        jsonrpc: '2.0',
        id: rpcId,
        error: { code: -32000, message: `simulated chain failure (${what})` },
      });
    } else {
      res.writeHead(fault.status ?? 503, { 'content-type': 'text/plain' }).end(`simulated failure (${what})`);
    }
    return true;
  }

  // ---- JSON-RPC (eth_* and Filecoin.*) --------------------------------------------------------
  private async onRpc(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method !== 'POST') return void res.writeHead(405).end();
    const body = JSON.parse((await readBody(req)).toString('utf8')) as RpcRequest | RpcRequest[];
    const batch = Array.isArray(body) ? body : [body];
    const first = batch[0];
    if (first && this.misbehave(this.faults.rpc, batch.map((b) => b.method).join(','), res, first.id)) return;
    this.lotus.tick();
    const out: unknown[] = [];
    for (const r of batch) {
      this.stats.rpcCalls.set(r.method, (this.stats.rpcCalls.get(r.method) ?? 0) + 1);
      try {
        const result = r.method.startsWith('Filecoin.')
          ? this.lotus.rpc(r.method, r.params ?? [], req.headers.authorization)
          : await this.chain.rpc(r.method, r.params ?? []);
        out.push({ jsonrpc: '2.0', id: r.id, result });
      } catch (err) {
        if (err instanceof HttpRefusal)
          return void res.writeHead(err.status, { 'content-type': 'text/plain' }).end(err.message);
        const e =
          err instanceof RpcError
            ? { code: err.code, message: err.message }
            : (err as { code?: number; message?: string; data?: Hex });
        if (e.code === undefined) throw err;
        out.push({
          jsonrpc: '2.0',
          id: r.id,
          error: { code: e.code, message: e.message, ...('data' in e && e.data ? { data: e.data } : {}) },
        });
      }
    }
    json(res, 200, Array.isArray(body) ? out : out[0]);
  }

  // ---- Curio PDP provider -----------------------------------------------------------------------
  private async onPdp(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.pdpUrl);
    const p = url.pathname;
    if (this.misbehave(this.faults.pdp, `${req.method} ${p}`, res)) return;
    let m: RegExpMatchArray | null;
    if (req.method === 'GET' && p === '/pdp/ping') return void res.writeHead(200).end();
    if (req.method === 'POST' && p === '/pdp/piece/uploads') {
      const id = randomUUID();
      this.uploads.set(id, undefined);
      return void res.writeHead(201, { Location: `/pdp/piece/uploads/${id}` }).end();
    }
    if ((m = p.match(/^\/pdp\/piece\/uploads\/([0-9a-f-]+)$/))) {
      const id = m[1]!;
      if (!this.uploads.has(id)) return text(res, 404, 'upload session not found');
      if (req.method === 'PUT') {
        let bytes: Buffer;
        try {
          bytes = await readBody(req);
        } catch {
          this.uploads.delete(id); // the client gave up mid-stream: nothing is kept
          return;
        }
        this.stats.pdpUploads++;
        this.uploads.set(id, bytes);
        return void res.writeHead(204).end();
      }
      if (req.method === 'POST') {
        const { pieceCid } = JSON.parse((await readBody(req)).toString('utf8')) as { pieceCid: string };
        const bytes = this.uploads.get(id);
        this.uploads.delete(id);
        if (!bytes) return text(res, 400, 'no data uploaded for this session');
        const got = Piece.calculate(bytes).toString();
        if (got !== pieceCid) return text(res, 400, `piece CID mismatch: computed ${got}, client said ${pieceCid}`);
        this.parked.set(pieceCid, bytes);
        if (this.holdProcessing) this.processing.add(pieceCid);
        return json(res, 200, { pieceCid });
      }
    }
    if (req.method === 'GET' && p === '/pdp/piece') {
      const cid = url.searchParams.get('pieceCid') ?? '';
      if (this.processing.has(cid)) return json(res, 202, { pieceCid: cid });
      return this.parked.has(cid) ? json(res, 200, { pieceCid: cid }) : text(res, 404, 'piece not found');
    }
    if ((req.method === 'GET' || req.method === 'HEAD') && (m = p.match(/^\/piece\/([a-z0-9]+)$/))) {
      const bytes = this.parked.get(m[1]!);
      if (!bytes) return text(res, 404, 'piece not found');
      return serveRange(req, res, bytes, bytes.length);
    }
    if (req.method === 'POST' && p === '/pdp/data-sets/create-and-add') {
      const body = JSON.parse((await readBody(req)).toString('utf8')) as {
        recordKeeper: Address;
        extraData: Hex;
        pieces: { pieceCid: string }[];
      };
      const pieces = this.piecesOrRefuse(body.pieces, res);
      if (!pieces) return;
      if (!isHex(body.extraData)) return text(res, 400, 'extraData must be hex');
      try {
        this.chain.dryRunCreateAndAdd(this.spAccount.address, body.recordKeeper, body.extraData, pieces);
      } catch (err) {
        return text(res, 500, `failed to estimate gas: execution reverted: ${(err as Error).message}`);
      }
      this.stats.pdpCommits++;
      const record: CommitRecord = { kind: 'create', status: 'pending', pieceCount: pieces.length };
      const hash = this.chain.submitCreateAndAdd(
        this.spAccount.address,
        body.recordKeeper,
        body.extraData,
        pieces,
        (r, result) => {
          Object.assign(record, r.status === 'success' ? { status: 'confirmed', ...result } : { status: 'rejected' });
        },
      );
      this.commits.set(hash, record);
      return void res.writeHead(201, { Location: `/pdp/data-sets/created/${hash}` }).end();
    }
    if (req.method === 'GET' && (m = p.match(/^\/pdp\/data-sets\/created\/(0x[0-9a-f]+)$/))) {
      const c = this.commits.get(m[1]!);
      if (!c || c.kind !== 'create') return text(res, 404, 'not found');
      return json(res, 200, {
        createMessageHash: m[1],
        dataSetCreated: c.status === 'confirmed',
        service: 'simulated-curio',
        txStatus: c.status,
        ok: c.status === 'pending' ? null : c.status === 'confirmed',
        ...(c.dataSetId !== undefined ? { dataSetId: Number(c.dataSetId) } : {}),
      });
    }
    if ((m = p.match(/^\/pdp\/data-sets\/(\d+)\/pieces$/)) && req.method === 'POST') {
      const dataSetId = BigInt(m[1]!);
      const body = JSON.parse((await readBody(req)).toString('utf8')) as {
        extraData: Hex;
        pieces: { pieceCid: string }[];
      };
      const pieces = this.piecesOrRefuse(body.pieces, res);
      if (!pieces) return;
      try {
        this.chain.dryRunAddPieces(this.spAccount.address, dataSetId, body.extraData, pieces);
      } catch (err) {
        return text(res, 500, `failed to estimate gas: execution reverted: ${(err as Error).message}`);
      }
      this.stats.pdpCommits++;
      const record: CommitRecord = { kind: 'add', status: 'pending', dataSetId, pieceCount: pieces.length };
      const hash = this.chain.submitAddPieces(this.spAccount.address, dataSetId, body.extraData, pieces, (r, ids) => {
        Object.assign(record, r.status === 'success' ? { status: 'confirmed', pieceIds: ids } : { status: 'rejected' });
      });
      this.commits.set(hash, record);
      return void res.writeHead(201, { Location: `/pdp/data-sets/${dataSetId}/pieces/added/${hash}` }).end();
    }
    if (req.method === 'GET' && (m = p.match(/^\/pdp\/data-sets\/(\d+)\/pieces\/added\/(0x[0-9a-f]+)$/))) {
      const c = this.commits.get(m[2]!);
      if (!c || (c.dataSetId !== undefined && c.dataSetId !== BigInt(m[1]!))) return text(res, 404, 'not found');
      const confirmed = c.status === 'confirmed';
      return json(res, 200, {
        txHash: m[2],
        txStatus: c.status,
        dataSetId: Number(m[1]),
        pieceCount: c.pieceCount,
        addMessageOk: confirmed ? true : null,
        piecesAdded: confirmed,
        ...(confirmed ? { confirmedPieceIds: (c.pieceIds ?? []).map(Number) } : {}),
      });
    }
    if (req.method === 'DELETE' && (m = p.match(/^\/pdp\/data-sets\/(\d+)\/pieces\/(\d+)$/))) {
      const [dataSetId, pieceId] = [BigInt(m[1]!), BigInt(m[2]!)];
      const { extraData } = JSON.parse((await readBody(req)).toString('utf8')) as { extraData: Hex };
      try {
        this.chain.dryRunScheduleRemovals(this.spAccount.address, dataSetId, [pieceId], extraData);
      } catch (err) {
        return text(res, 500, `failed to estimate gas: execution reverted: ${(err as Error).message}`);
      }
      this.stats.pdpDeletes++;
      return json(res, 200, {
        txHash: this.chain.submitSchedulePieceDeletions(this.spAccount.address, dataSetId, [pieceId], extraData),
      });
    }
    text(res, 404, `simulated Curio: no route for ${req.method} ${p}`);
  }

  /** Piece CIDs of an add request as contract bytes, or a 400 when one is not parked here. */
  private piecesOrRefuse(pieces: { pieceCid: string }[] | undefined, res: http.ServerResponse): Hex[] | undefined {
    if (!Array.isArray(pieces) || pieces.length === 0) return void text(res, 400, 'no pieces');
    for (const { pieceCid } of pieces) {
      if (!this.parked.has(pieceCid)) return void text(res, 400, `piece ${pieceCid} has not been uploaded`);
      if (this.processing.has(pieceCid)) return void text(res, 400, `piece ${pieceCid} is still being processed`);
    }
    return pieces.map(({ pieceCid }) => toHex(CID.parse(pieceCid).bytes));
  }

  // ---- the Lotus miner's HTTP piece endpoint --------------------------------------------------
  private async onRetrieval(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const p = new URL(req.url ?? '/', this.retrievalUrl).pathname;
    if (this.misbehave(this.faults.retrieval, `${req.method} ${p}`, res)) return;
    const m = p.match(/^\/piece\/([a-z0-9]+)$/);
    if (!m) return text(res, 404, 'not found');
    const cid = m[1]!;
    if (req.method === 'PUT') {
      let bytes: Buffer;
      try {
        bytes = await readBody(req);
      } catch {
        return; // aborted mid-stream: nothing kept
      }
      this.stats.lotusUploads++;
      return this.lotus.acceptPiece(cid, bytes)
        ? void res.writeHead(201).end()
        : text(res, 400, `bytes do not hash to piece ${cid}`);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'method not allowed');
    const served = this.lotus.servedPiece(cid);
    if (!served) return text(res, 404, 'piece not found');
    serveRange(req, res, served.bytes, served.length);
  }
}

interface RpcRequest {
  jsonrpc: '2.0';
  id: unknown;
  method: string;
  params?: unknown[];
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of req) parts.push(c as Buffer);
  if (!req.complete) throw new Error('request aborted');
  return Buffer.concat(parts);
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
function text(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
}

/** Serve `length` bytes (the payload, then zeros) honouring a single `Range: bytes=a-b`. */
function serveRange(req: http.IncomingMessage, res: http.ServerResponse, bytes: Buffer, length: number): void {
  let start = 0;
  let end = length - 1;
  const range = req.headers.range?.match(/^bytes=(\d*)-(\d*)$/);
  if (range) {
    if (range[1] === '') start = Math.max(0, length - Number(range[2]));
    else {
      start = Number(range[1]);
      if (range[2] !== '') end = Math.min(end, Number(range[2]));
    }
    if (start >= length || start > end) return void res.writeHead(416, { 'content-range': `bytes */${length}` }).end();
  }
  const body = Buffer.alloc(end - start + 1);
  if (start < bytes.length) bytes.copy(body, 0, start, Math.min(bytes.length, end + 1));
  res.writeHead(range ? 206 : 200, {
    'content-type': 'application/octet-stream',
    'content-length': String(body.length),
    'accept-ranges': 'bytes',
    ...(range ? { 'content-range': `bytes ${start}-${end}/${length}` } : {}),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

export { ADDRESSES };
