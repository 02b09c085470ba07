/**
 * Filecoin storage deals with one storage provider as a storage provider, through a Lotus
 * node's JSON-RPC API (wallet, deals, chain state) and the provider's HTTP piece endpoint.
 *
 * Pieces are addressed on chain by their v1 piece CID (baga…) and padded size; Provenant's v2
 * piece CID (FRC-0069) carries both plus the payload length, so each converts to the other.
 *
 * put: the piece must fit the miner's sectors (`Filecoin.StateMinerInfo`), else
 * PieceSizeExceededError before anything is sent. A deal the client already has for this piece
 * with this miner (`Filecoin.ClientListDeals`, not failed, not ended) makes put a no-op.
 * Otherwise the CAR streams to the provider's `PUT /piece/<v1 pieceCid>` while its bytes are
 * checked against the CAR CID (a mismatch aborts the upload, so the provider keeps nothing),
 * then `Filecoin.ClientStartDeal` proposes an offline ("manual" transfer) deal for that piece,
 * the payload root as its label (Lotus's DataRef.Root), verified (Filecoin Plus) by default.
 * Note: a real provider imports offline-deal data out of band (`boostd import-data`, Curio's
 * authenticated mk20 upload); the PUT is what the simulated network accepts in its place, and
 * the legacy Lotus client API (ClientStartDeal/ClientListDeals) needs a Lotus node that still
 * serves it. Status, renewal and retrieval use only standard calls.
 *
 * status: the deal on chain (`Filecoin.StateMarketStorageDeal`: active when SectorStartEpoch > 0
 * and SlashEpoch = -1, until EndEpoch), the claim a verified deal becomes
 * (`Filecoin.StateGetClaims`: until TermStart + TermMax), and the miner's faulty sectors
 * (`Filecoin.StateMinerFaults`); `expiresAt` is the later of the deal's and the claim's end.
 * renew: extend the claim's TermMax by a verified registry ExtendClaimTerms message
 * (`Filecoin.MpoolPushMessage` to f06, method 11, looked up once with `Filecoin.StateSearchMsg`),
 * or, for an unverified deal, propose a new deal for the piece the provider already holds.
 * readRange: `GET /piece/<v1 pieceCid>` with a Range header, as Boost and Curio serve it.
 * locate: the client's deals whose DataRef.Root is the root; the CAR CID is computed by reading
 * the piece (locate is for manifests, which are small). delete: a client cannot end a deal or
 * claim early, so it throws DeletionUnsupportedError; the piece lapses when not renewed.
 * Dates come from epochs relative to the chain head (30 s an epoch).
 */
import { Readable } from 'node:stream';
import * as dagCbor from '@ipld/dag-cbor';
import type { LotusProviderConfig } from '../../config/schema.js';
import {
  ConfigError,
  DeletionUnsupportedError,
  InsufficientFundsError,
  IntegrityError,
  PieceNotFoundError,
  PieceSizeExceededError,
  ProviderAuthError,
  ProviderUnavailableError,
  StoreError,
  RenewalPendingError,
} from '../errors.js';
import { pieceCidV2, pieceInfo } from '../pack/cids.js';
import { readPieceRange } from './http-range.js';
import { requireEnv } from './kit/env.js';
import { httpStatusError, providerFailure, type ProviderOp as Op } from './kit/http-status.js';
import { abortable } from './kit/signal.js';
import { carCidOfStream, verifiedStream } from './kit/verified-stream.js';
import type { ChainCommitment } from '../../shared/types.js';
import type { CallOptions, PieceRef, Placement, ReplicaStatus, StorageProvider, RangeOptions } from './provider.js';

const EPOCH_MS = 30_000;
/** Verified registry: a claim's term may end at most five years from now. */
const MAX_CLAIM_TERM = 5 * 365 * 2880;
const VERIFREG = 'f06';
const EXTEND_CLAIM_TERMS = 11;
/** Deal states (go-fil-markets StorageDealStatus) after which a deal will never hold the piece. */
const FAILED_STATES = new Set([
  2 /* ProposalRejected */, 8 /* Expired */, 9 /* Slashed */, 11 /* Failing */, 26 /* Error */,
]);
const STATE_NAMES: Record<number, string> = {
  3: 'accepted',
  5: 'sealing',
  6: 'finalizing',
  7: 'active',
  18: 'waiting for data',
  24: 'publishing',
  25: 'publishing',
  29: 'awaiting pre-commit',
};

/** One RPC call: its signal, what the provider call is doing, and the piece it is about (for messages). */
type Call = CallOptions & { op: Op; pieceCid?: string };
type Cid = { '/': string };

interface DealInfo {
  ProposalCid: Cid;
  State: number;
  Message: string;
  Provider: string;
  PieceCID: Cid;
  Size: number;
  Duration: number;
  DealID: number;
  Verified: boolean;
  DataRef: { TransferType: string; Root: Cid; PieceCid: Cid | null; PieceSize: number; RawBlockSize: number };
}
interface MarketDeal {
  Proposal: {
    PieceCID: Cid;
    PieceSize: number;
    VerifiedDeal: boolean;
    Client: string;
    Provider: string;
    Label: string;
    StartEpoch: number;
    EndEpoch: number;
  };
  State: { SectorNumber?: number; SectorStartEpoch: number; LastUpdatedEpoch: number; SlashEpoch: number };
}
interface Claim {
  Provider: number;
  Client: number;
  Data: Cid;
  Size: number;
  TermMin: number;
  TermMax: number;
  TermStart: number;
  Sector: number;
}

/** A JSON-RPC error answer from Lotus. */
class LotusRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export class LotusProvider implements StorageProvider {
  readonly kind = 'lotus';
  readonly id: string;
  private readonly token?: string;
  private readonly retrieval: string;
  private wallet?: Promise<{ address: string; actorId: number }>;
  private sectorBytes?: Promise<number>;
  private networkName?: Promise<string>;
  private rpcId = 0;

  constructor(
    private readonly cfg: LotusProviderConfig,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.id = cfg.id;
    this.retrieval = cfg.retrievalUrl.replace(/\/*$/, '/');
    if (cfg.tokenEnv) this.token = requireEnv(cfg.tokenEnv, { path: `providers.${cfg.id}.tokenEnv`, env });
  }

  private where(pieceCid?: string): string {
    return `[provider=${this.id}, miner=${this.cfg.minerId}${pieceCid ? `, piece=${pieceCid}` : ''}]`;
  }

  private info(pieceCid: string): ReturnType<typeof pieceInfo> {
    try {
      return pieceInfo(pieceCid);
    } catch (cause) {
      throw new PieceNotFoundError(`not a v2 piece CID ${this.where(pieceCid)}`, { cause });
    }
  }

  // ---- Lotus JSON-RPC -------------------------------------------------------------------------
  private async rpc<T>(method: string, params: unknown[], c: Call): Promise<T> {
    const timeout = AbortSignal.timeout(this.cfg.requestTimeoutMs);
    let res: Response;
    try {
      res = await fetch(this.cfg.apiUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: ++this.rpcId, method: `Filecoin.${method}`, params }),
        signal: c.signal ? AbortSignal.any([c.signal, timeout]) : timeout,
      });
    } catch (err) {
      if (c.signal?.aborted) throw err;
      throw new ProviderUnavailableError(
        `Lotus API unreachable (${method}) ${this.where()}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (!res.ok) {
      const message = `Lotus API (${method}) ${this.where()}: ${(await res.text()).slice(0, 200)}`;
      throw httpStatusError(res.status, { side: 'provider', endpoint: 'rpc', op: c.op, message });
    }
    let body: { result?: T; error?: { code: number; message: string } };
    try {
      body = (await res.json()) as typeof body;
    } catch (err) {
      throw new ProviderUnavailableError(`Lotus API answered with invalid JSON (${method}) ${this.where()}`, {
        cause: err,
      });
    }
    if (body.error) {
      const e = new LotusRpcError(body.error.code, body.error.message);
      if (/missing permission|unauthori[sz]ed|JWT|token/i.test(e.message))
        throw new ProviderAuthError(`Lotus API refused ${method} ${this.where()}: ${e.message}`, { cause: e });
      throw e;
    }
    return body.result as T;
  }

  /** Like rpc, with a Lotus error answer turned into a typed error for `op`. */
  private async call<T>(method: string, params: unknown[], c: Call): Promise<T> {
    try {
      return await this.rpc<T>(method, params, c);
    } catch (err) {
      if (!(err instanceof LotusRpcError)) throw err;
      const message = `${method} failed ${this.where(c.pieceCid)}: ${err.message}`;
      if (/DataCap|insufficient funds|not enough funds|balance/i.test(err.message))
        throw new InsufficientFundsError(message, { cause: err });
      if (/not found in the keystore|key not found/i.test(err.message) && method !== 'ClientGetDealInfo')
        throw new ProviderAuthError(message, { cause: err });
      throw providerFailure(c.op, message, err);
    }
  }

  /** The client wallet, looked up once (shared by concurrent calls, so each only stops waiting on its own signal). */
  private client(c: Call): Promise<{ address: string; actorId: number }> {
    const { op } = c;
    this.wallet ??= (async () => {
      const address = this.cfg.clientAddress ?? (await this.call<string>('WalletDefaultAddress', [], { op }));
      if (!address)
        throw new ConfigError(`provider '${this.id}': the Lotus node has no default wallet; set clientAddress`, [
          { path: `providers.${this.id}.clientAddress`, message: 'required: the node has no default wallet' },
        ]);
      const idAddr = await this.call<string>('StateLookupID', [address, []], { op });
      return { address, actorId: Number(idAddr.slice(2)) };
    })().catch((err: unknown) => {
      this.wallet = undefined;
      throw err;
    });
    const wallet = this.wallet;
    return abortable(c.signal, () => wallet);
  }

  private async head(op: Op, o?: CallOptions): Promise<number> {
    return (await this.call<{ Height: number }>('ChainHead', [], { ...o, op })).Height;
  }

  private dateOf(epoch: number, head: number): string {
    return new Date(Date.now() + (epoch - head) * EPOCH_MS).toISOString();
  }

  private minerActorId(): number {
    return Number(this.cfg.minerId.slice(2));
  }

  // ---- what the chain says about a piece --------------------------------------------------------
  private async deals(v1: string, op: Op, o?: CallOptions): Promise<DealInfo[]> {
    const all = (await this.call<DealInfo[] | null>('ClientListDeals', [], { ...o, op })) ?? [];
    return all.filter((d) => d.Provider === this.cfg.minerId && d.PieceCID['/'] === v1);
  }

  private async onChain(dealId: number, op: Op, o?: CallOptions): Promise<MarketDeal | undefined> {
    try {
      return await this.rpc<MarketDeal>('StateMarketStorageDeal', [dealId, []], { ...o, op });
    } catch (err) {
      if (err instanceof LotusRpcError && /not found/i.test(err.message)) return undefined; // ended and cleaned up
      if (err instanceof LotusRpcError)
        throw providerFailure(op, `StateMarketStorageDeal failed ${this.where()}: ${err.message}`, err);
      throw err;
    }
  }

  private async claims(v1: string, op: Op, o?: CallOptions): Promise<[number, Claim][]> {
    const { actorId } = await this.client({ ...o, op });
    const all =
      (await this.call<Record<string, Claim> | null>('StateGetClaims', [this.cfg.minerId, []], { ...o, op })) ?? {};
    return Object.entries(all)
      .filter(([, c]) => c.Data['/'] === v1 && c.Client === actorId)
      .map(([id, c]) => [Number(id), c]);
  }

  /** Everything known about the piece with this miner, folded into one picture. */
  private async survey(v1: string, op: Op, o?: CallOptions) {
    const [head, deals, claims] = await Promise.all([this.head(op, o), this.deals(v1, op, o), this.claims(v1, op, o)]);
    const chain = await Promise.all(
      deals.filter((d) => d.DealID > 0).map(async (d) => ({ info: d, deal: await this.onChain(d.DealID, op, o) })),
    );
    const activeDeals = chain.filter(
      ({ deal }) =>
        deal && deal.State.SectorStartEpoch > 0 && deal.State.SlashEpoch === -1 && deal.Proposal.EndEpoch > head,
    );
    const activeClaims = claims.filter(([, c]) => c.TermStart + c.TermMax > head);
    const ends = [
      ...activeDeals.map(({ deal }) => deal!.Proposal.EndEpoch),
      ...activeClaims.map(([, c]) => c.TermStart + c.TermMax),
    ];
    const inProgress = deals.filter(
      (d) =>
        !FAILED_STATES.has(d.State) &&
        (d.DealID === 0 ||
          chain.some(
            (c) => c.info === d && c.deal && c.deal.State.SectorStartEpoch <= 0 && c.deal.State.SlashEpoch === -1,
          )),
    );
    return {
      head,
      deals,
      chain,
      claims,
      activeDeals,
      activeClaims,
      end: ends.length > 0 ? Math.max(...ends) : undefined,
      inProgress,
    };
  }

  // ---- put ------------------------------------------------------------------------------------
  async put(piece: PieceRef, open: () => Readable, o: CallOptions = {}): Promise<Placement> {
    const info = this.info(piece.pieceCid);
    const sector = await this.sectorSize(o);
    const limit = Math.min(this.cfg.maxPieceBytes ?? Infinity, (sector / 128) * 127);
    if (piece.bytes > limit || info.paddedBytes > sector) {
      throw new PieceSizeExceededError(
        `piece of ${piece.bytes} bytes does not fit the miner's ${sector}-byte sectors (limit ${limit} bytes) ${this.where(piece.pieceCid)}`,
      );
    }
    const s = await this.survey(info.v1, 'put', o);
    if (s.end !== undefined || s.inProgress.length > 0) {
      const commitment = await this.commitmentOf(piece.pieceCid, s, o);
      return {
        providerId: this.id,
        pieceCid: piece.pieceCid,
        existed: true,
        storedAt: new Date().toISOString(),
        ...(s.end !== undefined ? { expiresAt: this.dateOf(s.end, s.head) } : {}),
        ...(commitment ? { commitment } : {}),
      };
    }
    await this.upload(piece, open, { ...o, v1: info.v1 });
    const end = await this.propose(piece, info, 'put', o);
    // A deal is on chain once its sector is sealed: at once on the simulated network, hours later on
    // a real one (then the placement has no commitment yet).
    const commitment = await this.commitmentOf(piece.pieceCid, await this.survey(info.v1, 'put', o), o);
    return {
      providerId: this.id,
      pieceCid: piece.pieceCid,
      existed: false,
      storedAt: new Date().toISOString(),
      expiresAt: this.dateOf(end.end, end.head),
      ...(commitment ? { commitment } : {}),
    };
  }

  /**
   * The network as the node names it (`StateNetworkName`), labelled simulated when the node's
   * version says it is (the test network's does). Asked once; a node that does not say is
   * recorded as such (a stored piece is not failed over the name of its network).
   */
  private network(o: CallOptions): Promise<string> {
    this.networkName ??= Promise.all([
      this.call<string>('StateNetworkName', [], { op: 'put' }),
      this.call<{ Version: string }>('Version', [], { op: 'put' }),
    ]).then(
      ([name, v]) => (/simulated/i.test(v.Version) ? `${name} (simulated)` : name),
      () => {
        this.networkName = undefined;
        return 'unknown network';
      },
    );
    const name = this.networkName;
    return abortable(o.signal, () => name);
  }

  /**
   * The chain's record of the piece: its earliest active deal (sector activation), else its
   * earliest active claim (term start). None while the deal is still being sealed.
   */
  private async commitmentOf(
    pieceCid: string,
    s: { activeDeals: { info: DealInfo; deal?: MarketDeal }[]; activeClaims: [number, Claim][] },
    o: CallOptions,
  ): Promise<ChainCommitment | undefined> {
    const deal = [...s.activeDeals].sort((a, b) => a.deal!.State.SectorStartEpoch - b.deal!.State.SectorStartEpoch)[0];
    const claim = [...s.activeClaims].sort(([, a], [, b]) => a.TermStart - b.TermStart)[0];
    if (!deal && !claim) return undefined;
    const network = await this.network(o);
    if (deal) {
      const { SectorStartEpoch, SectorNumber } = deal.deal!.State;
      const sameSector = s.activeClaims.find(([, c]) => c.Sector === SectorNumber);
      return {
        kind: 'deal',
        providerId: this.id,
        pieceCid,
        epoch: SectorStartEpoch,
        network,
        dealId: deal.info.DealID,
        ...(SectorNumber !== undefined ? { sector: SectorNumber } : {}),
        ...(sameSector ? { claimId: sameSector[0] } : {}),
      };
    }
    const [claimId, c] = claim!;
    return { kind: 'claim', providerId: this.id, pieceCid, epoch: c.TermStart, network, claimId, sector: c.Sector };
  }

  private sectorSize(o: CallOptions): Promise<number> {
    this.sectorBytes ??= this.call<{ SectorSize: number }>('StateMinerInfo', [this.cfg.minerId, []], { op: 'put' })
      .then((m) => m.SectorSize)
      .catch((err: unknown) => {
        this.sectorBytes = undefined;
        throw err;
      });
    const sector = this.sectorBytes;
    return abortable(o.signal, () => sector);
  }

  /** Stream the CAR to the provider, checked against the CAR CID on the way. */
  private async upload(piece: PieceRef, open: () => Readable, o: CallOptions & { v1: string }): Promise<void> {
    const where = this.where(piece.pieceCid);
    // A mismatch aborts the request before it completes: the provider keeps nothing.
    const checked = verifiedStream(open(), piece, { provider: this.id, piece: piece.pieceCid, what: 'bytes sent' });
    const body = Readable.from(checked);
    let res: Response;
    try {
      res = await fetch(new URL(`piece/${o.v1}`, this.retrieval), {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(piece.bytes) },
        body: Readable.toWeb(body) as ReadableStream<Uint8Array>,
        duplex: 'half',
        signal: o.signal,
      } as RequestInit);
    } catch (err) {
      if (checked.failure) throw checked.failure;
      body.destroy();
      if (o.signal?.aborted) throw err;
      throw new ProviderUnavailableError(`piece upload failed ${where}: ${(err as Error).message}`, { cause: err });
    }
    const text = await res.text();
    if (res.ok) return;
    // The piece endpoint checks the bytes against the piece CID: its 400 says they do not match.
    if (res.status === 400)
      throw new IntegrityError(`the provider says the bytes do not hash to the piece ${where}: ${text.slice(0, 200)}`);
    throw httpStatusError(res.status, {
      side: 'provider',
      op: 'put',
      message: `piece upload ${where}: ${text.slice(0, 200)}`,
    });
  }

  /** Propose an offline deal for a piece the provider holds; its projected end. */
  private async propose(
    piece: Pick<PieceRef, 'pieceCid' | 'rootCid' | 'bytes'>,
    info: ReturnType<typeof pieceInfo>,
    op: Op,
    o: CallOptions,
  ): Promise<{ end: number; head: number }> {
    const [{ address }, head] = await Promise.all([this.client({ ...o, op }), this.head(op, o)]);
    const start = head + this.cfg.dealStartOffsetEpochs;
    await this.call<Cid>(
      'ClientStartDeal',
      [
        {
          Data: {
            TransferType: 'manual',
            Root: { '/': piece.rootCid },
            PieceCid: { '/': info.v1 },
            PieceSize: (info.paddedBytes / 128) * 127,
            RawBlockSize: piece.bytes,
          },
          Wallet: address,
          Miner: this.cfg.minerId,
          EpochPrice: this.cfg.pricePerEpochAttoFil,
          MinBlocksDuration: this.cfg.dealDurationEpochs,
          ProviderCollateral: '0',
          DealStartEpoch: start,
          FastRetrieval: true,
          VerifiedDeal: this.cfg.verifiedDeal,
        },
      ],
      { ...o, op, pieceCid: piece.pieceCid },
    );
    return { end: start + this.cfg.dealDurationEpochs, head };
  }

  // ---- status ---------------------------------------------------------------------------------
  async status(piece: Pick<PieceRef, 'pieceCid'>, o: CallOptions = {}): Promise<ReplicaStatus> {
    const info = this.info(piece.pieceCid);
    const base = { providerId: this.id, pieceCid: piece.pieceCid };
    const s = await this.survey(info.v1, 'status', o);
    if (s.end !== undefined) {
      const sectors = new Set(
        [
          ...s.activeDeals.map(({ deal }) => deal!.State.SectorNumber),
          ...s.activeClaims.map(([, c]) => c.Sector),
        ].filter((n): n is number => n !== undefined),
      );
      const faulty = decodeRle(
        await this.call<number[] | null>('StateMinerFaults', [this.cfg.minerId, []], { ...o, op: 'status' }),
      );
      const bad = [...sectors].filter((n) => faulty.has(n));
      const expiresAt = this.dateOf(s.end, s.head);
      if (bad.length > 0)
        return {
          ...base,
          present: false,
          bytes: info.rawBytes,
          expiresAt,
          detail: `sector ${bad.join(', ')} faulty (missed WindowPoSt)`,
        };
      const what = [
        ...s.activeDeals.map(({ info: d }) => `deal ${d.DealID}`),
        ...s.activeClaims.map(([id]) => `claim ${id}`),
      ].join(', ');
      const commitment = await this.commitmentOf(piece.pieceCid, s, o);
      return {
        ...base,
        present: true,
        bytes: info.rawBytes,
        expiresAt,
        detail: `${what} active until epoch ${s.end}`,
        ...(commitment ? { commitment } : {}),
      };
    }
    // Not active: say why, with the latest end when it has passed.
    const slashed = s.chain.find(({ deal }) => deal && deal.State.SlashEpoch !== -1);
    if (slashed)
      return {
        ...base,
        present: false,
        detail: `deal ${slashed.info.DealID} slashed at epoch ${slashed.deal!.State.SlashEpoch}`,
      };
    const ended = [
      ...s.chain.map(({ deal }) => deal?.Proposal.EndEpoch),
      ...s.claims.map(([, c]) => c.TermStart + c.TermMax),
    ].filter((e): e is number => e !== undefined && e <= s.head);
    if (ended.length > 0) {
      const last = Math.max(...ended);
      return { ...base, present: false, expiresAt: this.dateOf(last, s.head), detail: `deal expired at epoch ${last}` };
    }
    const progressing = s.inProgress[0];
    if (progressing)
      return {
        ...base,
        present: false,
        detail: `deal ${progressing.DealID || progressing.ProposalCid['/']} ${STATE_NAMES[progressing.State] ?? `in state ${progressing.State}`}, not active yet`,
      };
    const gone = s.deals.find((d) => d.DealID > 0);
    return {
      ...base,
      present: false,
      detail: gone
        ? `deal ${gone.DealID} is no longer on chain`
        : s.deals.length > 0
          ? 'deal failed'
          : 'no deal for this piece with this miner',
    };
  }

  // ---- renew ----------------------------------------------------------------------------------
  async renew(piece: Pick<PieceRef, 'pieceCid'>, o: CallOptions = {}): Promise<{ expiresAt?: string }> {
    const info = this.info(piece.pieceCid);
    const s = await this.survey(info.v1, 'renew', o);
    if (s.end === undefined)
      throw new PieceNotFoundError(
        `cannot renew a piece without an active deal or claim ${this.where(piece.pieceCid)}`,
      );
    const target = s.head + this.cfg.dealDurationEpochs;
    if (s.activeClaims.length > 0) {
      const terms = s.activeClaims
        .map(
          ([id, c]) => [this.minerActorId(), id, Math.min(target, s.head + MAX_CLAIM_TERM) - c.TermStart, c] as const,
        )
        .filter(([, , termMax, c]) => termMax > c.TermMax);
      if (terms.length === 0) return { expiresAt: this.dateOf(s.end, s.head) };
      const { address } = await this.client({ ...o, op: 'renew' });
      const sent = await this.call<{ CID: Cid }>(
        'MpoolPushMessage',
        [
          {
            Version: 0,
            To: VERIFREG,
            From: address,
            Value: '0',
            Method: EXTEND_CLAIM_TERMS,
            Params: Buffer.from(dagCbor.encode([terms.map(([p, id, termMax]) => [p, id, termMax])])).toString('base64'),
          },
          null,
        ],
        { ...o, op: 'renew', pieceCid: piece.pieceCid },
      );
      const found = await this.call<{ Receipt: { ExitCode: number; Return: string | null } } | null>(
        'StateSearchMsg',
        [[], sent.CID, -1, true],
        { ...o, op: 'renew' },
      );
      if (!found)
        throw new RenewalPendingError(
          `claim extension ${sent.CID['/']} sent, not on chain yet ${this.where(piece.pieceCid)}`,
        );
      if (found.Receipt.ExitCode !== 0)
        throw new StoreError(
          `claim extension failed with exit code ${found.Receipt.ExitCode} ${this.where(piece.pieceCid)}`,
        );
      const [, fails] = dagCbor.decode(Buffer.from(found.Receipt.Return ?? '', 'base64')) as [
        number,
        [number, number][],
      ];
      if (fails.length > 0)
        throw new StoreError(
          `claim extension refused (exit codes ${fails.map(([, c]) => c).join(', ')}) ${this.where(piece.pieceCid)}`,
        );
      const end = Math.max(s.end, ...terms.map(([, , termMax, c]) => c.TermStart + termMax));
      return { expiresAt: this.dateOf(end, s.head) };
    }
    // An unverified deal cannot be extended: a new deal for the piece the provider still holds.
    if (s.inProgress.length > 0) return { expiresAt: this.dateOf(s.end, s.head) }; // a renewal deal is already on its way
    const roots = s.deals.map((d) => d.DataRef.Root['/']);
    const next = await this.propose(
      { pieceCid: piece.pieceCid, rootCid: roots[0]!, bytes: info.rawBytes },
      info,
      'renew',
      o,
    );
    return { expiresAt: this.dateOf(Math.max(s.end, next.end), next.head) };
  }

  // ---- read, locate, delete -------------------------------------------------------------------
  readRange(piece: Pick<PieceRef, 'pieceCid'>, o: RangeOptions = {}): Readable {
    const { offset = 0, length } = o;
    if (length === 0) return Readable.from([]);
    const self = this;
    return Readable.from(
      (async function* () {
        const info = self.info(piece.pieceCid);
        if (offset >= info.rawBytes) return;
        // The provider serves the piece zero-padded; the payload ends at rawBytes.
        const last = length === undefined ? info.rawBytes - 1 : Math.min(info.rawBytes, offset + length) - 1;
        yield* readPieceRange(new URL(`piece/${info.v1}`, self.retrieval), {
          offset,
          last,
          signal: o.signal,
          timeoutMs: self.cfg.requestTimeoutMs,
          where: self.where(piece.pieceCid),
        });
      })(),
      { objectMode: false },
    );
  }

  async locate(rootCid: string, o: CallOptions = {}): Promise<PieceRef | undefined> {
    const all = (await this.call<DealInfo[] | null>('ClientListDeals', [], { ...o, op: 'locate' })) ?? [];
    const candidates = all.filter(
      (d) =>
        d.Provider === this.cfg.minerId &&
        d.DataRef.Root['/'] === rootCid &&
        !FAILED_STATES.has(d.State) &&
        d.DataRef.RawBlockSize > 0,
    );
    for (const d of candidates.reverse()) {
      const pieceCid = pieceCidV2(d.PieceCID['/'], (d.DataRef.PieceSize / 127) * 128, d.DataRef.RawBlockSize);
      if (!(await this.status({ pieceCid }, o)).present) continue;
      const { carCid } = await carCidOfStream(this.readRange({ pieceCid }, o));
      return { pieceCid, carCid, rootCid, bytes: d.DataRef.RawBlockSize };
    }
    return undefined;
  }

  async delete(piece: Pick<PieceRef, 'pieceCid'>, _o: CallOptions = {}): Promise<void> {
    throw new DeletionUnsupportedError(
      `a Filecoin deal cannot be ended by its client; the piece lapses when it is not renewed ${this.where(piece.pieceCid)}`,
    );
  }
}

/** The set bits of a go-bitfield in its JSON form (alternating run lengths of 0s and 1s). */
function decodeRle(runs: number[] | null): Set<number> {
  const set = new Set<number>();
  let pos = 0;
  (runs ?? []).forEach((len, i) => {
    if (i % 2 === 1) for (let k = 0; k < len; k++) set.add(pos + k);
    pos += len;
  });
  return set;
}
