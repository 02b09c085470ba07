/**
 * The simulated Lotus node and storage provider of the simulated Filecoin network: the
 * `Filecoin.*` JSON-RPC methods the Lotus adapter calls (client deals, market deal state,
 * verified registry claims, miner faults, message pool), with Lotus's JSON shapes (CIDs as
 * {"/": …}, bitfields as run lengths, base64 CBOR params), and the provider's piece store that
 * its HTTP endpoint serves (/piece/<pieceCid>).
 *
 * SIMULATED behaviour: a deal whose piece the provider holds is published and its sector
 * activated at once (or `sealDelayEpochs` later); verified deals become claims with the market's
 * 90-day term buffer; deals stay queryable after they end; messages are executed when pushed
 * (or on `mine()`); a claim extension follows the verified registry's rules (only the claim's
 * client, never shorter, at most five years from now).
 */
import { createHash, randomBytes } from 'node:crypto';
import * as dagCbor from '@ipld/dag-cbor';
import { Piece as DsPiece } from '@web3-storage/data-segment';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import { sha256 } from 'multiformats/hashes/sha2';
import type { SimChain } from './chain.js';

export const DEAL_STATE = {
  ProposalRejected: 2,
  Sealing: 5,
  Active: 7,
  Expired: 8,
  Slashed: 9,
  Failing: 11,
  WaitingForData: 18,
  Publishing: 25,
  Error: 26,
} as const;
/** Market actor: a verified deal's claim may outlive the deal by this many epochs (90 days). */
const TERM_BUFFER = 90 * 2880;
/** Verified registry: a claim's term ends at most this long after now (five years). */
const MAX_TERM = 5 * 365 * 2880;
const VERIFREG = 'f06';
const METHOD_EXTEND_CLAIM_TERMS = 11;
/** Exit codes used by the simulated actors. */
const EXIT = { OK: 0, ILLEGAL_ARGUMENT: 16, NOT_FOUND: 17, FORBIDDEN: 18, UNHANDLED: 22 } as const;

/** Which methods need a token with write permission (as in Lotus's api permissions). */
const WRITE_METHODS = new Set([
  'Filecoin.ClientStartDeal',
  'Filecoin.ClientListDeals',
  'Filecoin.ClientGetDealInfo',
  'Filecoin.MpoolPushMessage',
]);

export interface DealProposal {
  PieceCID: { '/': string };
  PieceSize: number;
  VerifiedDeal: boolean;
  Client: string;
  Provider: string;
  Label: string;
  StartEpoch: number;
  EndEpoch: number;
  StoragePricePerEpoch: string;
  ProviderCollateral: string;
  ClientCollateral: string;
}
interface DealState {
  SectorNumber: number;
  SectorStartEpoch: number;
  LastUpdatedEpoch: number;
  SlashEpoch: number;
}
interface Claim {
  Provider: number;
  Client: number;
  Data: { '/': string };
  Size: number;
  TermMin: number;
  TermMax: number;
  TermStart: number;
  Sector: number;
}
interface ClientDeal {
  ProposalCid: { '/': string };
  State: number;
  Message: string;
  Provider: string;
  DataRef: {
    TransferType: string;
    Root: { '/': string };
    PieceCid: { '/': string } | null;
    PieceSize: number;
    RawBlockSize: number;
  };
  PieceCID: { '/': string };
  Size: number;
  PricePerEpoch: string;
  Duration: number;
  DealID: number;
  CreationTime: string;
  Verified: boolean;
  /** Not part of Lotus's DealInfo: what the simulated provider will propose on chain. */
  proposal: DealProposal;
}

/** A JSON-RPC error as Lotus returns it. */
export class RpcError extends Error {
  constructor(
    message: string,
    readonly code = 1,
  ) {
    super(message);
  }
}
/** The request is refused before reaching the API (HTTP status, as Lotus's auth handler does). */
export class HttpRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class SimLotus {
  /** The API token a caller must present (Authorization: Bearer …). */
  readonly token = `sim-lotus-${randomBytes(12).toString('hex')}`;
  readonly minerId = 'f01000';
  readonly minerActorId = 1000;
  readonly clientAddress = `f1${randomBytes(19).toString('hex').slice(0, 38)}`;
  readonly clientActorId = 1001;
  /** Bytes of the miner's sectors; a piece must fit one. */
  sectorSize = 32 * 1024 ** 3;
  /** Epochs between a deal's data arriving and its sector being active. */
  sealDelayEpochs = 0;
  /** Execute messages as they are pushed; off: they wait for `mine()`. */
  autoMine = true;
  datacap = 1n << 50n;
  private nextDealId = 100;
  private nextClaimId = 1;
  private nextSector = 1;
  private readonly deals = new Map<number, { Proposal: DealProposal; State: DealState }>();
  private readonly clientDeals = new Map<string, ClientDeal>();
  private readonly claims = new Map<number, Claim>();
  private readonly faults = new Set<number>();
  private readonly messages = new Map<
    string,
    {
      cid: string;
      msg: Message;
      receipt?: { ExitCode: number; Return: string | null; GasUsed: number };
      height?: number;
    }
  >();
  private pendingMessages: string[] = [];
  /** The provider's pieces: v1 piece CID → the payload bytes (served zero-padded). */
  private readonly pieces = new Map<string, { bytes: Buffer; padded: bigint }>();

  constructor(private readonly chain: SimChain) {}

  head(): number {
    return Number(this.chain.head());
  }

  // ---- test controls ---------------------------------------------------------------------------
  /** The deal's provider is slashed for it (e.g. the sector was terminated). */
  slashDeal(dealId: number): void {
    const d = this.deals.get(dealId);
    if (!d) throw new Error(`simulated Lotus: no deal ${dealId}`);
    d.State.SlashEpoch = this.head();
  }
  /** The sector holding the deal is declared faulty (missed WindowPoSt) or recovers. */
  faultSector(sector: number, faulty = true): void {
    if (faulty) this.faults.add(sector);
    else this.faults.delete(sector);
  }
  dealIds(): number[] {
    return [...this.deals.keys()];
  }
  deal(dealId: number) {
    return this.deals.get(dealId);
  }
  claimList(): [number, Claim][] {
    return [...this.claims.entries()];
  }
  mine(): void {
    const waiting = this.pendingMessages;
    this.pendingMessages = [];
    for (const c of waiting) this.execute(c);
  }

  // ---- the provider's piece store (its HTTP endpoint lives in filecoin-sim.ts) -----------------
  /** Store uploaded bytes under the piece CID they hash to; false when they do not. */
  acceptPiece(pieceCidV1: string, bytes: Buffer): boolean {
    const info = DsPiece.fromPayload(bytes).toInfo();
    if (info.link.toString() !== pieceCidV1) return false;
    this.pieces.set(pieceCidV1, { bytes, padded: info.size });
    for (const d of this.clientDeals.values())
      if (d.State === DEAL_STATE.WaitingForData && d.PieceCID['/'] === pieceCidV1) this.publish(d);
    return true;
  }
  /** The bytes the provider serves for a piece: the payload, zero-padded to the unpadded piece size. */
  servedPiece(pieceCidV1: string): { bytes: Buffer; length: number } | undefined {
    const p = this.pieces.get(pieceCidV1);
    return p && { bytes: p.bytes, length: Number((p.padded * 127n) / 128n) };
  }
  /** The provider loses its copy (its HTTP endpoint answers 404). */
  dropPiece(pieceCidV1: string): void {
    this.pieces.delete(pieceCidV1);
  }

  // ---- JSON-RPC -------------------------------------------------------------------------------
  rpc(method: string, params: unknown[], authorization: string | undefined): unknown {
    if (authorization !== undefined && authorization !== `Bearer ${this.token}`)
      throw new HttpRefusal(401, 'JWT Verification failed');
    if (WRITE_METHODS.has(method) && authorization === undefined) {
      throw new RpcError(`missing permission to invoke '${method.slice('Filecoin.'.length)}' (need 'write')`);
    }
    const head = this.head();
    switch (method) {
      case 'Filecoin.Version':
        return { Version: '1.32.0+simulated', APIVersion: 0x20100, BlockDelay: 30 };
      case 'Filecoin.StateNetworkName':
        return 'calibrationnet';
      case 'Filecoin.ChainHead':
        return { Cids: [{ '/': fakeCid(`tipset ${head}`) }], Blocks: [], Height: head };
      case 'Filecoin.WalletDefaultAddress':
        return this.clientAddress;
      case 'Filecoin.StateLookupID': {
        const addr = params[0] as string;
        if (addr === this.clientAddress) return `f0${this.clientActorId}`;
        if (addr === this.minerId) return addr;
        throw new RpcError(`resolution lookup failed (${addr}): actor not found`);
      }
      case 'Filecoin.StateMinerInfo':
        this.miner(params[0]);
        return {
          Owner: 'f0999',
          Worker: 'f0998',
          NewWorker: '<empty>',
          ControlAddresses: [],
          WorkerChangeEpoch: -1,
          PeerId: '12D3KooWSimulated',
          Multiaddrs: [],
          WindowPoStProofType: 8,
          SectorSize: this.sectorSize,
          WindowPoStPartitionSectors: 2349,
          ConsensusFaultElapsed: -1,
          Beneficiary: 'f0999',
          PendingOwnerAddress: null,
        };
      case 'Filecoin.StateMinerFaults': {
        this.miner(params[0]);
        return toRle([...this.faults]);
      }
      case 'Filecoin.ClientStartDeal':
        return this.startDeal(params[0] as StartDealParams);
      case 'Filecoin.ClientListDeals':
        return [...this.clientDeals.values()].map(publicDealInfo);
      case 'Filecoin.ClientGetDealInfo': {
        const d = this.clientDeals.get((params[0] as { '/': string })['/']);
        if (!d) throw new RpcError('datastore: key not found');
        return publicDealInfo(d);
      }
      case 'Filecoin.StateMarketStorageDeal': {
        const d = this.deals.get(Number(params[0]));
        if (!d) throw new RpcError(`deal ${params[0]} not found`);
        return d;
      }
      case 'Filecoin.StateGetClaims': {
        this.miner(params[0]);
        return Object.fromEntries([...this.claims.entries()].map(([id, c]) => [String(id), c]));
      }
      case 'Filecoin.StateGetClaim': {
        this.miner(params[0]);
        return this.claims.get(Number(params[1])) ?? null;
      }
      case 'Filecoin.MpoolPushMessage':
        return this.push(params[0] as Message);
      case 'Filecoin.StateSearchMsg': {
        const m = this.messages.get((params[1] as { '/': string })['/']);
        if (!m?.receipt) return null;
        return {
          Message: { '/': m.cid },
          Receipt: { ...m.receipt, EventsRoot: null },
          ReturnDec: null,
          TipSet: [{ '/': fakeCid(`tipset ${m.height}`) }],
          Height: m.height,
        };
      }
      default:
        throw new RpcError(`method '${method}' not found`, -32601);
    }
  }

  private miner(addr: unknown): void {
    if (addr !== this.minerId) throw new RpcError(`failed to load miner actor: actor not found (${String(addr)})`);
  }

  private startDeal(p: StartDealParams): { '/': string } {
    this.miner(p.Miner);
    const wallet = p.Wallet;
    if (wallet !== this.clientAddress) throw new RpcError(`wallet ${wallet} not found in the keystore`);
    if (p.Data.TransferType !== 'manual')
      throw new RpcError('simulated Lotus: only manual (offline) transfer is simulated');
    if (!p.Data.PieceCid) throw new RpcError('manual transfer needs Data.PieceCid');
    const pieceCid = p.Data.PieceCid['/'];
    parseV1(pieceCid);
    const padded = (p.Data.PieceSize * 128) / 127;
    if (!Number.isInteger(padded) || padded < 128 || (padded & (padded - 1)) !== 0)
      throw new RpcError(`invalid unpadded piece size ${p.Data.PieceSize}`);
    if (padded > this.sectorSize)
      throw new RpcError(`piece size ${padded} exceeds the miner's sector size ${this.sectorSize}`);
    if (p.MinBlocksDuration < 180 * 2880 || p.MinBlocksDuration > 1278 * 2880)
      throw new RpcError(`deal duration ${p.MinBlocksDuration} out of bounds`);
    if (p.DealStartEpoch < this.head()) throw new RpcError(`deal start epoch ${p.DealStartEpoch} has already passed`);
    if (p.VerifiedDeal) {
      if (this.datacap < BigInt(padded)) throw new RpcError(`not enough DataCap: have ${this.datacap}, need ${padded}`);
      this.datacap -= BigInt(padded);
    }
    const proposalCid = fakeCid(`proposal ${pieceCid} ${Date.now()} ${randomBytes(8).toString('hex')}`);
    const proposal: DealProposal = {
      PieceCID: { '/': pieceCid },
      PieceSize: padded,
      VerifiedDeal: p.VerifiedDeal,
      Client: `f0${this.clientActorId}`,
      Provider: p.Miner,
      Label: p.Data.Root['/'],
      StartEpoch: p.DealStartEpoch,
      EndEpoch: p.DealStartEpoch + p.MinBlocksDuration,
      StoragePricePerEpoch: p.EpochPrice,
      ProviderCollateral: p.ProviderCollateral ?? '0',
      ClientCollateral: '0',
    };
    const d: ClientDeal = {
      ProposalCid: { '/': proposalCid },
      State: DEAL_STATE.WaitingForData,
      Message: '',
      Provider: p.Miner,
      DataRef: { ...p.Data },
      PieceCID: { '/': pieceCid },
      Size: padded,
      PricePerEpoch: p.EpochPrice,
      Duration: p.MinBlocksDuration,
      DealID: 0,
      CreationTime: new Date().toISOString(),
      Verified: p.VerifiedDeal,
      proposal,
    };
    this.clientDeals.set(proposalCid, d);
    if (this.pieces.has(pieceCid)) this.publish(d);
    return { '/': proposalCid };
  }

  /** The provider has the data: publish the deal on chain and seal it into a sector. */
  private publish(d: ClientDeal): void {
    const dealId = this.nextDealId++;
    const activation = this.head() + this.sealDelayEpochs;
    const sector = this.nextSector++;
    d.DealID = dealId;
    d.State = this.sealDelayEpochs === 0 ? DEAL_STATE.Active : DEAL_STATE.Sealing;
    d.Message = this.sealDelayEpochs === 0 ? '' : 'sealing';
    const state: DealState = { SectorNumber: sector, SectorStartEpoch: -1, LastUpdatedEpoch: -1, SlashEpoch: -1 };
    this.deals.set(dealId, { Proposal: d.proposal, State: state });
    const activate = () => {
      state.SectorStartEpoch = activation;
      d.State = DEAL_STATE.Active;
      d.Message = '';
      if (d.proposal.VerifiedDeal) {
        const term = d.proposal.EndEpoch - d.proposal.StartEpoch;
        this.claims.set(this.nextClaimId++, {
          Provider: this.minerActorId,
          Client: this.clientActorId,
          Data: { ...d.proposal.PieceCID },
          Size: d.proposal.PieceSize,
          TermMin: term,
          TermMax: term + TERM_BUFFER,
          TermStart: activation,
          Sector: sector,
        });
      }
    };
    if (this.sealDelayEpochs === 0) activate();
    else this.sealing.push({ at: activation, activate });
  }
  private sealing: { at: number; activate: () => void }[] = [];
  /** Activate sectors whose sealing is done (called before every request). */
  tick(): void {
    const head = this.head();
    const due = this.sealing.filter((s) => s.at <= head);
    this.sealing = this.sealing.filter((s) => s.at > head);
    for (const s of due) s.activate();
  }

  private push(msg: Message) {
    if (msg.From !== this.clientAddress) throw new RpcError(`wallet ${msg.From} not found in the keystore`);
    const cid = fakeCid(`message ${JSON.stringify(msg)} ${randomBytes(8).toString('hex')}`);
    this.messages.set(cid, { cid, msg });
    if (this.autoMine) this.execute(cid);
    else this.pendingMessages.push(cid);
    return {
      Message: { ...msg, Nonce: this.messages.size - 1, GasLimit: 1_000_000, GasFeeCap: '100', GasPremium: '1' },
      Signature: { Type: 1, Data: randomBytes(65).toString('base64') },
      CID: { '/': cid },
    };
  }

  private execute(cid: string): void {
    const m = this.messages.get(cid)!;
    const head = this.head();
    let exit: number = EXIT.OK;
    let ret: unknown = null;
    if (m.msg.To !== VERIFREG || m.msg.Method !== METHOD_EXTEND_CLAIM_TERMS) {
      exit = EXIT.UNHANDLED;
    } else {
      // ExtendClaimTermsParams { terms: [{ provider, claim_id, term_max }] } as CBOR tuples.
      const [terms] = dagCbor.decode(Buffer.from(m.msg.Params, 'base64')) as [[number, number, number][]];
      const fails: [number, number][] = [];
      terms.forEach(([provider, claimId, termMax], i) => {
        const c = this.claims.get(claimId);
        if (!c || c.Provider !== provider) return void fails.push([i, EXIT.NOT_FOUND]);
        if (c.Client !== this.clientActorId) return void fails.push([i, EXIT.FORBIDDEN]);
        if (c.TermStart + c.TermMax < head) return void fails.push([i, EXIT.FORBIDDEN]); // expired claims cannot be extended
        if (termMax < c.TermMax || c.TermStart + termMax > head + MAX_TERM)
          return void fails.push([i, EXIT.ILLEGAL_ARGUMENT]);
        c.TermMax = termMax;
      });
      ret = [terms.length - fails.length, fails];
    }
    m.receipt = {
      ExitCode: exit,
      Return: ret === null ? null : Buffer.from(dagCbor.encode(ret)).toString('base64'),
      GasUsed: 1000,
    };
    m.height = head;
  }
}

export interface StartDealParams {
  Data: {
    TransferType: string;
    Root: { '/': string };
    PieceCid: { '/': string } | null;
    PieceSize: number;
    RawBlockSize: number;
  };
  Wallet: string;
  Miner: string;
  EpochPrice: string;
  MinBlocksDuration: number;
  ProviderCollateral?: string;
  DealStartEpoch: number;
  FastRetrieval: boolean;
  VerifiedDeal: boolean;
}
interface Message {
  Version?: number;
  To: string;
  From: string;
  Nonce?: number;
  Value: string;
  Method: number;
  Params: string;
}

function publicDealInfo(d: ClientDeal) {
  const { proposal: _hidden, ...info } = d;
  return { ...info, DealStages: null, TransferChannelID: null, DataTransfer: null };
}

function parseV1(v1: string): void {
  let cid: CID;
  try {
    cid = CID.parse(v1);
  } catch {
    throw new RpcError(`invalid piece CID: ${v1}`);
  }
  if (cid.code !== 0xf101 || cid.multihash.code !== 0x1012) throw new RpcError(`not a v1 piece CID (baga…): ${v1}`);
}

/** Run lengths of a bitfield (go-bitfield's JSON): alternating runs of 0s and 1s, from 0. */
function toRle(bits: number[]): number[] {
  const set = [...new Set(bits)].sort((a, b) => a - b);
  const runs: number[] = [];
  let pos = 0;
  for (let i = 0; i < set.length;) {
    let j = i;
    while (j + 1 < set.length && set[j + 1] === set[j]! + 1) j++;
    runs.push(set[i]! - pos, j - i + 1);
    pos = set[j]! + 1;
    i = j + 1;
  }
  return runs;
}

function fakeCid(seed: string): string {
  const digest = createHash('sha256').update(seed).digest();
  return CID.createV1(raw.code, {
    code: sha256.code,
    size: 32,
    digest,
    bytes: Buffer.concat([Buffer.from([0x12, 0x20]), digest]),
  } as never).toString();
}
