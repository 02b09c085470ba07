/**
 * The simulated Filecoin EVM chain behind the simulated network: an epoch clock and the
 * Filecoin Onchain Cloud contracts (PDPVerifier, FilecoinWarmStorageService and its view,
 * Filecoin Pay, USDFC, ServiceProviderRegistry, Multicall3), answered over Ethereum JSON-RPC
 * (`eth_*`) the way a Lotus node does, so viem and the Synapse SDK talk to it unchanged.
 *
 * It is a SIMULATION: contract logic is re-implemented in TypeScript from the contracts'
 * behaviour (FilOzone/filecoin-services, FilOzone/pdp), decoded and encoded with the SDK's own
 * ABIs. It keeps what the adapters depend on: EIP-712 signatures checked against the payer,
 * per-payer nonces (`clientNonces`) that make a replayed commit revert, payment rails whose
 * lockup drains the deposit as epochs pass, proving periods that prove or fault on command,
 * scheduled piece removals applied at the next proving period. Historical block queries are
 * answered from the current state. Contract addresses and the chain id are Calibration's, so
 * the SDK's `calibration` chain points here once its RPC URL is the simulator's.
 */
import { randomBytes } from 'node:crypto';
import * as Abis from '@filoz/synapse-core/abis';
import { calibration } from '@filoz/synapse-core/chains';
import { EIP712Types, getStorageDomain } from '@filoz/synapse-core/typed-data';
import { encodePDPCapabilities } from '@filoz/synapse-core/utils';
import { Piece as DsPiece } from '@web3-storage/data-segment';
import { CID } from 'multiformats/cid';
import { secp256k1 } from '@noble/curves/secp256k1';
import { publicKeyToAddress } from 'viem/accounts';
import {
  type Abi,
  type Address,
  type Hex,
  decodeAbiParameters,
  hashTypedData,
  parseSignature,
  decodeFunctionData,
  encodeAbiParameters,
  encodeErrorResult,
  encodeEventTopics,
  encodeFunctionResult,
  getAddress,
  hexToBytes,
  keccak256,
  multicall3Abi,
  numberToHex,
  parseTransaction,
  recoverTransactionAddress,
  toHex,
} from 'viem';

export const EPOCH_SECONDS = 30;
export const EPOCHS_PER_DAY = 2880n;
const EPOCHS_PER_MONTH = 86_400n;
const TIB = 1n << 40n;
const USDFC = 10n ** 18n;
/** FWSS pricing (SPEC.md): 2.5 USDFC per TiB-month, at least 0.06 USDFC a month per data set. */
const PRICE_PER_TIB_MONTH = (25n * USDFC) / 10n;
const MIN_RATE_PER_MONTH = (6n * USDFC) / 100n;
/** Filecoin Pay lockup FWSS asks for: 30 days of the rail's rate. */
const LOCKUP_PERIOD = 30n * EPOCHS_PER_DAY;
const MAX_PROVING_PERIOD = 2880n;
const CHALLENGE_WINDOW = 60n;

/** A contract call that reverts: a custom error of the contracts' ABI, or a plain reason. */
export class Revert extends Error {
  constructor(
    readonly errorName: string,
    readonly args: readonly unknown[] = [],
  ) {
    super(`${errorName}(${args.map(String).join(', ')})`);
  }
  data(): Hex {
    const known = (Abis.generated.errorsAbi as Abi).some((x) => x.type === 'error' && x.name === this.errorName);
    if (known)
      return encodeErrorResult({
        abi: Abis.generated.errorsAbi as Abi,
        errorName: this.errorName,
        args: this.args as unknown[],
      });
    return `0x08c379a0${encodeAbiParameters([{ type: 'string' }], [this.message]).slice(2)}` as Hex;
  }
}

interface Account {
  funds: bigint;
  lockupCurrent: bigint;
  lockupRate: bigint;
  lockupLastSettledAt: bigint;
}
interface Approval {
  isApproved: boolean;
  rateAllowance: bigint;
  lockupAllowance: bigint;
  rateUsage: bigint;
  lockupUsage: bigint;
  maxLockupPeriod: bigint;
}
interface Rail {
  token: Address;
  from: Address;
  to: Address;
  operator: Address;
  validator: Address;
  paymentRate: bigint;
  lockupPeriod: bigint;
  lockupFixed: bigint;
  settledUpTo: bigint;
  endEpoch: bigint;
  commissionRateBps: bigint;
  serviceFeeRecipient: Address;
}
interface PdpPiece {
  cid: Hex;
  leafCount: bigint;
  live: boolean;
}
interface PdpSet {
  live: boolean;
  sp: Address;
  listener: Address;
  nextPieceId: bigint;
  pieces: Map<bigint, PdpPiece>;
  scheduled: bigint[];
  lastProven: bigint;
  deadline: bigint;
  faulty: boolean;
}
interface FwssSet {
  pdpRailId: bigint;
  payer: Address;
  payee: Address;
  serviceProvider: Address;
  providerId: bigint;
  clientDataSetId: bigint;
  pdpEndEpoch: bigint;
  keys: string[];
  values: string[];
}
interface Provider {
  id: bigint;
  serviceProvider: Address;
  payee: Address;
  name: string;
  description: string;
  isActive: boolean;
  keys: string[];
  values: Hex[];
}
interface Log {
  address: Address;
  topics: Hex[];
  data: Hex;
  blockNumber: bigint;
  transactionHash: Hex;
  logIndex: number;
}
interface Receipt {
  hash: Hex;
  from: Address;
  to: Address | null;
  blockNumber: bigint;
  status: 'success' | 'reverted';
  logs: Log[];
  revert?: Revert;
}

/** All contract state, in one plain object so a dry run (eth_call, estimateGas) can clone it. */
interface State {
  balances: Map<string, bigint>;
  allowances: Map<string, bigint>;
  permitNonces: Map<string, bigint>;
  accounts: Map<string, Account>;
  approvals: Map<string, Approval>;
  rails: Map<bigint, Rail>;
  nextRail: bigint;
  pdp: Map<bigint, PdpSet>;
  nextDataSet: bigint;
  fwss: Map<bigint, FwssSet>;
  clientNonces: Map<string, bigint>;
  clientDataSets: Map<string, bigint[]>;
  pieceMeta: Map<string, [string[], string[]]>;
  providers: Map<bigint, Provider>;
  nextProvider: bigint;
  txNonces: Map<string, number>;
}

const C = calibration.contracts;
export const ADDRESSES = {
  multicall3: C.multicall3.address as Address,
  usdfc: C.usdfc.address,
  pay: C.filecoinPay.address,
  fwss: C.fwss.address,
  fwssView: C.fwssView.address,
  registry: C.serviceProviderRegistry.address,
  pdp: C.pdp.address,
  sessionKeys: C.sessionKeyRegistry.address,
  endorsements: C.endorsements.address,
};
const lc = (a: string) => a.toLowerCase();
const key = (...parts: (string | bigint)[]) =>
  parts.map((p) => (typeof p === 'string' ? lc(p) : p.toString())).join(':');
const ZERO = '0x0000000000000000000000000000000000000000' as Address;

type Ctx = { from: Address; s: State; logs: Log[]; value: bigint };
type Handler = (args: readonly unknown[], ctx: Ctx) => unknown;

export class SimChain {
  readonly chainId = calibration.id;
  readonly genesisTimestamp = calibration.genesisTimestamp;
  private skew = 0n;
  private s: State;
  private readonly receipts = new Map<string, Receipt>();
  private readonly logs: Log[] = [];
  /** Sent but not yet mined, in order (only when `autoMine` is off). */
  private pending: {
    hash: Hex;
    from: Address;
    to: Address | null;
    run: (ctx: Ctx) => void;
    onMined?: (r: Receipt) => void;
  }[] = [];
  /** Mine every transaction as it arrives (the default); off: they wait for `mine()`. */
  autoMine = true;
  private readonly handlers: Record<string, Record<string, Handler>>;
  private readonly abis: Record<string, Abi>;

  constructor() {
    this.s = {
      balances: new Map(),
      allowances: new Map(),
      permitNonces: new Map(),
      accounts: new Map(),
      approvals: new Map(),
      rails: new Map(),
      nextRail: 1n,
      pdp: new Map(),
      nextDataSet: 1n,
      fwss: new Map(),
      clientNonces: new Map(),
      clientDataSets: new Map(),
      pieceMeta: new Map(),
      providers: new Map(),
      nextProvider: 1n,
      txNonces: new Map(),
    };
    this.abis = {
      [lc(ADDRESSES.usdfc)]: Abis.erc20WithPermit as Abi,
      [lc(ADDRESSES.pay)]: Abis.filecoinPay as Abi,
      [lc(ADDRESSES.fwss)]: Abis.fwss as Abi,
      [lc(ADDRESSES.fwssView)]: Abis.fwssView as Abi,
      [lc(ADDRESSES.registry)]: Abis.serviceProviderRegistry as Abi,
      [lc(ADDRESSES.pdp)]: Abis.pdp as Abi,
      [lc(ADDRESSES.sessionKeys)]: Abis.sessionKeyRegistry as Abi,
      [lc(ADDRESSES.endorsements)]: Abis.providerIdSet as Abi,
    };
    this.handlers = {
      [lc(ADDRESSES.usdfc)]: this.usdfcHandlers(),
      [lc(ADDRESSES.pay)]: this.payHandlers(),
      [lc(ADDRESSES.fwss)]: this.fwssHandlers(),
      [lc(ADDRESSES.fwssView)]: this.fwssViewHandlers(),
      [lc(ADDRESSES.registry)]: this.registryHandlers(),
      [lc(ADDRESSES.pdp)]: this.pdpHandlers(),
      [lc(ADDRESSES.sessionKeys)]: { authorizationExpiry: () => 0n },
      [lc(ADDRESSES.endorsements)]: { getProviderIds: () => [...this.s.providers.keys()] },
    };
  }

  // ---- clock -----------------------------------------------------------------------------------
  /** The chain head: Calibration's epoch for the wall clock, plus every `advance`. */
  head(): bigint {
    return BigInt(Math.floor((Date.now() / 1000 - this.genesisTimestamp) / EPOCH_SECONDS)) + this.skew;
  }
  /** Move the chain forward; proving periods, faults and removals that fall due are applied. */
  advance(epochs: number | bigint): void {
    this.skew += BigInt(epochs);
    this.tick();
  }

  // ---- test set-up and fault injection --------------------------------------------------------
  /** Register a PDP provider (its registry entry), as an operator would once. */
  registerProvider(p: {
    serviceProvider: Address;
    payee?: Address;
    serviceURL: string;
    maxPieceSizeInBytes?: bigint;
    name?: string;
  }): bigint {
    const id = this.s.nextProvider++;
    const [keys, values] = encodePDPCapabilities({
      serviceURL: p.serviceURL,
      minPieceSizeInBytes: 127n,
      maxPieceSizeInBytes: p.maxPieceSizeInBytes ?? 1n << 30n,
      ipniPiece: false,
      ipniIpfs: false,
      storagePricePerTibPerDay: 0n,
      minProvingPeriodInEpochs: MAX_PROVING_PERIOD,
      location: 'simulated',
      paymentTokenAddress: ADDRESSES.usdfc,
    } as never);
    this.s.providers.set(id, {
      id,
      serviceProvider: getAddress(p.serviceProvider),
      payee: getAddress(p.payee ?? p.serviceProvider),
      name: p.name ?? `simulated-sp-${id}`,
      description: 'simulated Curio PDP provider',
      isActive: true,
      keys,
      values: values as Hex[],
    });
    return id;
  }
  /** Faucet: give `address` USDFC, deposit some into Filecoin Pay and approve FWSS as operator. */
  fund(address: Address, o: { wallet?: bigint; deposit?: bigint; approveOperator?: boolean } = {}): void {
    const a = lc(address);
    this.s.balances.set(a, (this.s.balances.get(a) ?? 0n) + (o.wallet ?? 0n));
    if (o.deposit) {
      const acct = this.account(this.s, ADDRESSES.usdfc, address);
      this.settle(acct);
      acct.funds += o.deposit;
    }
    if (o.approveOperator ?? true) {
      this.s.approvals.set(key(ADDRESSES.usdfc, address, ADDRESSES.fwss), {
        isApproved: true,
        rateAllowance: 2n ** 255n,
        lockupAllowance: 2n ** 255n,
        rateUsage: 0n,
        lockupUsage: 0n,
        maxLockupPeriod: 2n ** 64n,
      });
    }
  }
  usdfcBalance(address: Address): bigint {
    return this.s.balances.get(lc(address)) ?? 0n;
  }
  accountOf(address: Address): Account {
    return { ...this.account(this.s, ADDRESSES.usdfc, address) };
  }
  /** From now on the provider misses (true) or makes (false) its proofs for this data set. */
  failProofs(dataSetId: bigint, faulty = true): void {
    const set = this.s.pdp.get(dataSetId);
    if (!set) throw new Error(`simulated chain: no data set ${dataSetId}`);
    set.faulty = faulty;
  }
  dataSetIds(): bigint[] {
    return [...this.s.pdp.keys()];
  }
  /** Live pieces of a data set: id, piece CID (v2 string) and whether removal is scheduled. */
  piecesOf(dataSetId: bigint): { pieceId: bigint; pieceCid: string; scheduled: boolean }[] {
    const set = this.s.pdp.get(dataSetId);
    if (!set) return [];
    return this.livePieces(set).map(([pieceId, p]) => ({
      pieceId,
      pieceCid: CID.decode(hexToBytes(p.cid)).toString(),
      scheduled: set.scheduled.includes(pieceId),
    }));
  }
  /** The data sets a payer created. */
  dataSetsOf(payer: Address): bigint[] {
    return [...(this.s.clientDataSets.get(lc(payer)) ?? [])];
  }
  /** Mine every waiting transaction. */
  mine(): void {
    const waiting = this.pending;
    this.pending = [];
    for (const t of waiting) this.execute(t);
  }

  // ---- the simulated PDP provider's transactions (it signs its own; the sim trusts it) -------
  /** PDPVerifier.createDataSet + addPieces in one message, as Curio's create-and-add sends. */
  submitCreateAndAdd(
    sp: Address,
    listener: Address,
    extraData: Hex,
    pieces: Hex[],
    onMined: (r: Receipt, result?: { dataSetId: bigint; pieceIds: bigint[] }) => void,
  ): Hex {
    const [createExtra, addExtra] = decodeAbiParameters([{ type: 'bytes' }, { type: 'bytes' }], extraData);
    let result: { dataSetId: bigint; pieceIds: bigint[] } | undefined;
    const run = (ctx: Ctx) => {
      const dataSetId = this.pdpCreateDataSet(ctx, listener, createExtra);
      result = { dataSetId, pieceIds: this.pdpAddPieces(ctx, dataSetId, pieces, addExtra) };
    };
    return this.submitInternal(sp, ADDRESSES.pdp, run, (r) => onMined(r, r.status === 'success' ? result : undefined));
  }
  submitAddPieces(
    sp: Address,
    dataSetId: bigint,
    extraData: Hex,
    pieces: Hex[],
    onMined: (r: Receipt, pieceIds?: bigint[]) => void,
  ): Hex {
    let ids: bigint[] | undefined;
    const run = (ctx: Ctx) => {
      const set = this.s.pdp.get(dataSetId);
      if (!set?.live) throw new Revert('InvalidDataSetId', [dataSetId]);
      if (lc(set.sp) !== lc(ctx.from)) throw new Revert('Only the storage provider can add pieces');
      ids = this.pdpAddPieces(ctx, dataSetId, pieces, extraData);
    };
    return this.submitInternal(sp, ADDRESSES.pdp, run, (r) => onMined(r, r.status === 'success' ? ids : undefined));
  }
  submitSchedulePieceDeletions(sp: Address, dataSetId: bigint, pieceIds: bigint[], extraData: Hex): Hex {
    return this.submitInternal(sp, ADDRESSES.pdp, (ctx) =>
      this.pdpScheduleRemovals(ctx, dataSetId, pieceIds, extraData),
    );
  }
  /** Run `run` against a copy of the state: what eth_estimateGas does. Throws its Revert. */
  dryRun(from: Address, run: (ctx: Ctx) => void): void {
    const saved = this.s;
    this.s = cloneState(saved);
    try {
      run({ from, s: this.s, logs: [], value: 0n });
    } finally {
      this.s = saved;
    }
  }
  dryRunCreateAndAdd(sp: Address, listener: Address, extraData: Hex, pieces: Hex[]): void {
    const [createExtra, addExtra] = decodeAbiParameters([{ type: 'bytes' }, { type: 'bytes' }], extraData);
    this.dryRun(sp, (ctx) =>
      this.pdpAddPieces(ctx, this.pdpCreateDataSet(ctx, listener, createExtra), pieces, addExtra),
    );
  }
  dryRunAddPieces(sp: Address, dataSetId: bigint, extraData: Hex, pieces: Hex[]): void {
    this.dryRun(sp, (ctx) => this.pdpAddPieces(ctx, dataSetId, pieces, extraData));
  }
  dryRunScheduleRemovals(sp: Address, dataSetId: bigint, pieceIds: bigint[], extraData: Hex): void {
    this.dryRun(sp, (ctx) => this.pdpScheduleRemovals(ctx, dataSetId, pieceIds, extraData));
  }
  receipt(hash: string): Receipt | undefined {
    return this.receipts.get(lc(hash));
  }

  private submitInternal(from: Address, to: Address, run: (ctx: Ctx) => void, onMined?: (r: Receipt) => void): Hex {
    const hash = keccak256(randomBytes(32));
    const t = { hash, from, to, run, onMined };
    if (this.autoMine) this.execute(t);
    else this.pending.push(t);
    return hash;
  }

  private execute(t: {
    hash: Hex;
    from: Address;
    to: Address | null;
    run: (ctx: Ctx) => void;
    onMined?: (r: Receipt) => void;
  }): Receipt {
    this.tick();
    const blockNumber = this.head();
    const saved = this.s;
    this.s = cloneState(saved);
    const ctx: Ctx = { from: t.from, s: this.s, logs: [], value: 0n };
    let receipt: Receipt;
    try {
      t.run(ctx);
      receipt = { hash: t.hash, from: t.from, to: t.to, blockNumber, status: 'success', logs: [] };
      for (const l of ctx.logs) {
        const log = { ...l, blockNumber, transactionHash: t.hash, logIndex: this.logs.length };
        this.logs.push(log);
        receipt.logs.push(log);
      }
    } catch (err) {
      this.s = saved;
      if (!(err instanceof Revert)) throw err;
      receipt = { hash: t.hash, from: t.from, to: t.to, blockNumber, status: 'reverted', logs: [], revert: err };
    }
    const n = this.s.txNonces.get(lc(t.from)) ?? 0;
    this.s.txNonces.set(lc(t.from), n + 1);
    this.receipts.set(lc(t.hash), receipt);
    t.onMined?.(receipt);
    return receipt;
  }

  // ---- Ethereum JSON-RPC --------------------------------------------------------------------
  /** Answer one eth_* request; throws {code, message, data} for a JSON-RPC error. */
  async rpc(method: string, params: unknown[]): Promise<unknown> {
    this.tick();
    switch (method) {
      case 'eth_chainId':
        return numberToHex(this.chainId);
      case 'net_version':
        return String(this.chainId);
      case 'web3_clientVersion':
        // Says what it is: whatever records the network from this node labels it simulated.
        return 'provenant-filecoin-sim/1.0+simulated';
      case 'eth_blockNumber':
        return numberToHex(this.head());
      case 'eth_getBlockByNumber':
        return this.block(params[0] as string);
      case 'eth_gasPrice':
        return '0x64';
      case 'eth_maxPriorityFeePerGas':
        return '0x1';
      case 'eth_feeHistory':
        return {
          oldestBlock: numberToHex(this.head()),
          baseFeePerGas: ['0x64', '0x64'],
          gasUsedRatio: [0.5],
          reward: [['0x1']],
        };
      case 'eth_getBalance':
        return numberToHex(100n * 10n ** 18n); // gas money: every simulated account has 100 FIL
      case 'eth_getTransactionCount': {
        const addr = lc(params[0] as string);
        const mined = this.s.txNonces.get(addr) ?? 0;
        const waiting = params[1] === 'pending' ? this.pending.filter((t) => lc(t.from) === addr).length : 0;
        return numberToHex(mined + waiting);
      }
      case 'eth_call': {
        const call = params[0] as { to: Address; data: Hex; from?: Address };
        return this.call(call.from ?? ZERO, call.to, call.data);
      }
      case 'eth_estimateGas': {
        const call = params[0] as { to: Address; data: Hex; from?: Address };
        this.call(call.from ?? ZERO, call.to, call.data);
        return '0x100000';
      }
      case 'eth_sendRawTransaction':
        return this.sendRaw(params[0] as Hex);
      case 'eth_getTransactionReceipt':
        return this.formatReceipt(params[0] as string);
      case 'eth_getTransactionByHash': {
        const r = this.receipts.get(lc(params[0] as string));
        return r
          ? {
              hash: r.hash,
              from: r.from,
              to: r.to,
              blockNumber: numberToHex(r.blockNumber),
              blockHash: blockHash(r.blockNumber),
              transactionIndex: '0x0',
              nonce: '0x0',
              value: '0x0',
              input: '0x',
              gas: '0x100000',
              gasPrice: '0x64',
              type: '0x2',
              v: '0x0',
              r: '0x0',
              s: '0x0',
              chainId: numberToHex(this.chainId),
            }
          : null;
      }
      case 'eth_getLogs':
        return this.getLogs(params[0] as LogFilter);
      default:
        throw { code: -32601, message: `simulated chain: method ${method} not supported` };
    }
  }

  private block(tag: string) {
    const head = this.head();
    const n = tag === 'latest' || tag === 'pending' || tag === 'safe' || tag === 'finalized' ? head : BigInt(tag);
    const h = blockHash(n);
    return {
      number: numberToHex(n),
      hash: h,
      parentHash: blockHash(n - 1n),
      nonce: '0x0000000000000000',
      sha3Uncles: h,
      logsBloom: `0x${'0'.repeat(512)}`,
      transactionsRoot: h,
      stateRoot: h,
      receiptsRoot: h,
      miner: ZERO,
      difficulty: '0x0',
      totalDifficulty: '0x0',
      extraData: '0x',
      size: '0x0',
      gasLimit: numberToHex(10_000_000_000n),
      gasUsed: '0x0',
      timestamp: numberToHex(BigInt(this.genesisTimestamp) + n * BigInt(EPOCH_SECONDS)),
      baseFeePerGas: '0x64',
      transactions: [],
      uncles: [],
      mixHash: h,
    };
  }

  private call(from: Address, to: Address, data: Hex): Hex {
    if (lc(to) === lc(ADDRESSES.multicall3)) return this.multicall(from, data);
    const saved = this.s;
    this.s = cloneState(saved);
    try {
      return this.invoke({ from, s: this.s, logs: [], value: 0n }, to, data);
    } catch (err) {
      if (err instanceof Revert) throw { code: 3, message: `execution reverted: ${err.message}`, data: err.data() };
      throw err;
    } finally {
      this.s = saved;
    }
  }

  private multicall(from: Address, data: Hex): Hex {
    const { functionName, args } = decodeFunctionData({ abi: multicall3Abi, data });
    if (functionName !== 'aggregate3')
      throw { code: -32000, message: `simulated Multicall3: ${functionName} not supported` };
    const calls = args[0] as readonly { target: Address; allowFailure: boolean; callData: Hex }[];
    const results = calls.map((c) => {
      try {
        return { success: true, returnData: this.call(from, c.target, c.callData) };
      } catch (err) {
        if (!c.allowFailure) throw err;
        return { success: false, returnData: ((err as { data?: Hex }).data ?? '0x') as Hex };
      }
    });
    return encodeFunctionResult({ abi: multicall3Abi, functionName: 'aggregate3', result: results });
  }

  /** Decode, dispatch and encode one call into a contract. */
  private invoke(ctx: Ctx, to: Address, data: Hex): Hex {
    const abi = this.abis[lc(to)];
    const handlers = this.handlers[lc(to)];
    if (!abi || !handlers) throw new Revert(`simulated chain: no contract at ${to}`);
    const { functionName, args } = decodeFunctionData({ abi, data });
    const h = handlers[functionName];
    if (!h) throw new Revert(`simulated ${to}: ${functionName} not implemented`);
    const result = h(args ?? [], ctx);
    const fn = abi.find(
      (x) => x.type === 'function' && x.name === functionName && toFunctionSelector(x) === data.slice(0, 10),
    );
    const outputs = (fn as { outputs?: unknown[] } | undefined)?.outputs ?? [];
    if (outputs.length === 0) return '0x';
    return encodeFunctionResult({ abi: [fn!] as Abi, functionName, result } as never);
  }

  private async sendRaw(raw: Hex): Promise<Hex> {
    const tx = parseTransaction(raw);
    const from = await recoverTransactionAddress({ serializedTransaction: raw as never });
    if (tx.chainId !== undefined && tx.chainId !== this.chainId)
      throw { code: -32000, message: `invalid chain id ${tx.chainId}` };
    const expected = (this.s.txNonces.get(lc(from)) ?? 0) + this.pending.filter((t) => lc(t.from) === lc(from)).length;
    if (tx.nonce !== expected)
      throw {
        code: -32000,
        message: `nonce ${(tx.nonce ?? 0) < expected ? 'too low' : 'too high'}: expected ${expected}, got ${tx.nonce}`,
      };
    if (!tx.to) throw { code: -32000, message: 'simulated chain: contract creation not supported' };
    const hash = keccak256(raw);
    const to = tx.to;
    const data = (tx.data ?? '0x') as Hex;
    const t = { hash, from, to, run: (ctx: Ctx) => void this.invoke(ctx, to, data) };
    if (this.autoMine) this.execute(t);
    else this.pending.push(t);
    return hash;
  }

  private formatReceipt(hash: string) {
    const r = this.receipts.get(lc(hash));
    if (!r) return null;
    return {
      transactionHash: r.hash,
      transactionIndex: '0x0',
      blockHash: blockHash(r.blockNumber),
      blockNumber: numberToHex(r.blockNumber),
      from: r.from,
      to: r.to,
      cumulativeGasUsed: '0x5208',
      gasUsed: '0x5208',
      effectiveGasPrice: '0x64',
      contractAddress: null,
      logs: r.logs.map((l) => this.formatLog(l)),
      logsBloom: `0x${'0'.repeat(512)}`,
      status: r.status === 'success' ? '0x1' : '0x0',
      type: '0x2',
    };
  }

  private formatLog(l: Log) {
    return {
      address: l.address,
      topics: l.topics,
      data: l.data,
      blockNumber: numberToHex(l.blockNumber),
      blockHash: blockHash(l.blockNumber),
      transactionHash: l.transactionHash,
      transactionIndex: '0x0',
      logIndex: numberToHex(l.logIndex),
      removed: false,
    };
  }

  private getLogs(f: LogFilter) {
    const head = this.head();
    const num = (t: string | undefined, dflt: bigint) =>
      t === undefined || t === 'latest' ? dflt : t === 'earliest' ? 0n : BigInt(t);
    const from = num(f.fromBlock, head);
    const to = num(f.toBlock, head);
    const addrs = f.address === undefined ? undefined : (Array.isArray(f.address) ? f.address : [f.address]).map(lc);
    return this.logs
      .filter((l) => l.blockNumber >= from && l.blockNumber <= to)
      .filter((l) => !addrs || addrs.includes(lc(l.address)))
      .filter((l) =>
        (f.topics ?? []).every(
          (t, i) =>
            t === null ||
            t === undefined ||
            (Array.isArray(t) ? t.map(lc).includes(lc(l.topics[i] ?? '')) : lc(t) === lc(l.topics[i] ?? '')),
        ),
      )
      .map((l) => this.formatLog(l));
  }

  // ---- proving periods, advanced lazily whenever the chain is asked anything ---------------
  private tick(): void {
    const head = this.head();
    for (const [id, set] of this.s.pdp) {
      if (!set.live || set.deadline === 0n) continue;
      while (set.deadline <= head) {
        const deadline = set.deadline;
        if (set.faulty) {
          this.logs.push(
            this.log(
              ADDRESSES.fwss,
              Abis.fwss as Abi,
              'FaultRecord',
              { dataSetId: id, periodsFaulted: 1n, deadline },
              deadline,
            ),
          );
        } else {
          set.lastProven = deadline - CHALLENGE_WINDOW / 2n;
          this.logs.push(
            this.log(ADDRESSES.pdp, Abis.pdp as Abi, 'PossessionProven', { setId: id, challenges: [] }, set.lastProven),
          );
        }
        // nextProvingPeriod: scheduled removals take effect, the rate follows the new size.
        for (const pid of set.scheduled) {
          const p = set.pieces.get(pid);
          if (p) p.live = false;
        }
        if (set.scheduled.length > 0) {
          this.logs.push(
            this.log(ADDRESSES.pdp, Abis.pdp as Abi, 'PiecesRemoved', { setId: id, pieceIds: set.scheduled }, deadline),
          );
          set.scheduled = [];
          this.updateRate(this.s, id);
        }
        set.deadline += MAX_PROVING_PERIOD;
      }
    }
  }

  private log(
    address: Address,
    abi: Abi,
    eventName: string,
    args: Record<string, unknown>,
    blockNumber: bigint,
    transactionHash: Hex = ZERO_HASH,
  ): Log {
    const ev = abi.find((x) => x.type === 'event' && x.name === eventName) as unknown as {
      inputs: { name: string; type: string; indexed?: boolean }[];
    };
    const indexed = Object.fromEntries(ev.inputs.filter((i) => i.indexed).map((i) => [i.name, args[i.name]]));
    const topics = encodeEventTopics({ abi: [ev] as unknown as Abi, eventName, args: indexed } as never) as Hex[];
    const rest = ev.inputs.filter((i) => !i.indexed);
    const data = encodeAbiParameters(rest as never, rest.map((i) => args[i.name]) as never);
    return { address, topics, data, blockNumber, transactionHash, logIndex: this.logs.length };
  }

  private emit(ctx: Ctx, address: Address, abi: Abi, eventName: string, args: Record<string, unknown>): void {
    ctx.logs.push(this.log(address, abi, eventName, args, this.head()));
  }

  // ---- Filecoin Pay -------------------------------------------------------------------------
  private account(s: State, token: Address, owner: Address): Account {
    const k = key(token, owner);
    let a = s.accounts.get(k);
    if (!a) s.accounts.set(k, (a = { funds: 0n, lockupCurrent: 0n, lockupRate: 0n, lockupLastSettledAt: this.head() }));
    return a;
  }

  /** settleAccountLockup: the rate's lockup accrues up to now, or as far as the funds reach. */
  private settle(a: Account): void {
    const now = this.head();
    if (a.lockupRate === 0n) {
      a.lockupLastSettledAt = now;
      return;
    }
    const fundedUntil = a.lockupLastSettledAt + (a.funds - a.lockupCurrent) / a.lockupRate;
    const until = fundedUntil < now ? fundedUntil : now;
    if (until <= a.lockupLastSettledAt) return;
    a.lockupCurrent += a.lockupRate * (until - a.lockupLastSettledAt);
    a.lockupLastSettledAt = until;
  }

  private transferFrom(s: State, owner: Address, to: string, amount: bigint): void {
    const bal = s.balances.get(lc(owner)) ?? 0n;
    if (bal < amount) throw new Revert('ERC20InsufficientBalance', [owner, bal, amount]);
    s.balances.set(lc(owner), bal - amount);
    s.balances.set(lc(to), (s.balances.get(lc(to)) ?? 0n) + amount);
  }

  private credit(ctx: Ctx, token: Address, from: Address, to: Address, amount: bigint): void {
    if (lc(token) !== lc(ADDRESSES.usdfc)) throw new Revert('simulated Filecoin Pay: only USDFC');
    if (amount <= 0n) throw new Revert('simulated Filecoin Pay: amount must be positive');
    const acct = this.account(ctx.s, token, to);
    this.settle(acct);
    this.transferFrom(ctx.s, from, ADDRESSES.pay, amount);
    acct.funds += amount;
    this.emit(ctx, ADDRESSES.pay, Abis.filecoinPay as Abi, 'DepositRecorded', { token, from, to, amount });
  }

  /** EIP-2612 permit: the owner's signature sets the allowance (the nonce guards replay). */
  private permitSync(
    ctx: Ctx,
    owner: Address,
    spender: Address,
    value: bigint,
    deadline: bigint,
    v: number,
    r: Hex,
    s: Hex,
    nonce: bigint,
  ): void {
    const signer = recoverTypedSync(
      { name: USDFC_NAME, version: '1', chainId: this.chainId, verifyingContract: ADDRESSES.usdfc },
      'Permit',
      { owner, spender, value, nonce, deadline },
      { r, s, v: BigInt(v) },
    );
    if (lc(signer) !== lc(owner)) throw new Revert('ERC2612InvalidSigner', [signer, owner]);
    ctx.s.permitNonces.set(lc(owner), nonce + 1n);
    ctx.s.allowances.set(key(owner, spender), value);
  }

  private payHandlers(): Record<string, Handler> {
    return {
      accounts: ([token, owner]) => {
        const a = this.s.accounts.get(key(token as Address, owner as Address));
        return a ? [a.funds, a.lockupCurrent, a.lockupRate, a.lockupLastSettledAt] : [0n, 0n, 0n, 0n];
      },
      operatorApprovals: ([token, client, operator]) => {
        const a = this.s.approvals.get(key(token as Address, client as Address, operator as Address));
        return a
          ? [a.isApproved, a.rateAllowance, a.lockupAllowance, a.rateUsage, a.lockupUsage, a.maxLockupPeriod]
          : [false, 0n, 0n, 0n, 0n, 0n];
      },
      setOperatorApproval: ([token, operator, approved, rateAllowance, lockupAllowance, maxLockupPeriod], ctx) => {
        ctx.s.approvals.set(key(token as Address, ctx.from, operator as Address), {
          isApproved: approved as boolean,
          rateAllowance: rateAllowance as bigint,
          lockupAllowance: lockupAllowance as bigint,
          rateUsage: 0n,
          lockupUsage: 0n,
          maxLockupPeriod: maxLockupPeriod as bigint,
        });
      },
      deposit: ([token, to, amount], ctx) => {
        const allowance = ctx.s.allowances.get(key(ctx.from, ADDRESSES.pay)) ?? 0n;
        if (allowance < (amount as bigint))
          throw new Revert('ERC20InsufficientAllowance', [ADDRESSES.pay, allowance, amount]);
        ctx.s.allowances.set(key(ctx.from, ADDRESSES.pay), allowance - (amount as bigint));
        this.credit(ctx, token as Address, ctx.from, to as Address, amount as bigint);
      },
      depositWithPermit: ([token, to, amount, deadline, v, r, s], ctx) => {
        this.permitSync(
          ctx,
          to as Address,
          ADDRESSES.pay,
          amount as bigint,
          deadline as bigint,
          v as number,
          r as Hex,
          s as Hex,
          ctx.s.permitNonces.get(lc(to as string)) ?? 0n,
        );
        ctx.s.allowances.set(key(to as Address, ADDRESSES.pay), 0n);
        this.credit(ctx, token as Address, to as Address, to as Address, amount as bigint);
      },
      getRailsForPayerAndToken: ([payer, token]) => {
        const rails = [...this.s.rails.entries()].filter(
          ([, r]) => lc(r.from) === lc(payer as string) && lc(r.token) === lc(token as string),
        );
        return [
          rails.map(([railId, r]) => ({ railId, isTerminated: r.endEpoch !== 0n, endEpoch: r.endEpoch })),
          BigInt(rails.length),
          BigInt(rails.length),
        ];
      },
      getRailsForPayeeAndToken: ([payee, token]) => {
        const rails = [...this.s.rails.entries()].filter(
          ([, r]) => lc(r.to) === lc(payee as string) && lc(r.token) === lc(token as string),
        );
        return [
          rails.map(([railId, r]) => ({ railId, isTerminated: r.endEpoch !== 0n, endEpoch: r.endEpoch })),
          BigInt(rails.length),
          BigInt(rails.length),
        ];
      },
      getRail: ([railId]) => {
        const r = this.s.rails.get(railId as bigint);
        if (!r) throw new Revert('RailInactiveOrSettled', [railId]);
        return r;
      },
    };
  }

  // ---- USDFC ---------------------------------------------------------------------------------
  private usdfcHandlers(): Record<string, Handler> {
    return {
      name: () => USDFC_NAME,
      symbol: () => 'USDFC',
      version: () => '1',
      decimals: () => 18,
      totalSupply: () => [...this.s.balances.values()].reduce((a, b) => a + b, 0n),
      balanceOf: ([a]) => this.s.balances.get(lc(a as string)) ?? 0n,
      allowance: ([o, sp]) => this.s.allowances.get(key(o as Address, sp as Address)) ?? 0n,
      nonces: ([o]) => this.s.permitNonces.get(lc(o as string)) ?? 0n,
      approve: ([spender, amount], ctx) => {
        ctx.s.allowances.set(key(ctx.from, spender as Address), amount as bigint);
        this.emit(ctx, ADDRESSES.usdfc, Abis.erc20WithPermit as Abi, 'Approval', {
          owner: ctx.from,
          spender,
          value: amount,
        });
        return true;
      },
      transfer: ([to, amount], ctx) => {
        this.transferFrom(ctx.s, ctx.from, to as string, amount as bigint);
        return true;
      },
      permit: ([owner, spender, value, deadline, v, r, s], ctx) =>
        this.permitSync(
          ctx,
          owner as Address,
          spender as Address,
          value as bigint,
          deadline as bigint,
          v as number,
          r as Hex,
          s as Hex,
          ctx.s.permitNonces.get(lc(owner as string)) ?? 0n,
        ),
      DOMAIN_SEPARATOR: () => ZERO_HASH,
    };
  }

  // ---- ServiceProviderRegistry ----------------------------------------------------------------
  private providerWithProduct(p: Provider) {
    return {
      providerId: p.id,
      providerInfo: {
        serviceProvider: p.serviceProvider,
        payee: p.payee,
        name: p.name,
        description: p.description,
        isActive: p.isActive,
      },
      product: { productType: 0, capabilityKeys: p.keys, isActive: true },
      productCapabilityValues: p.values,
    };
  }
  private registryHandlers(): Record<string, Handler> {
    const byAddress = (a: unknown) =>
      [...this.s.providers.values()].find((p) => lc(p.serviceProvider) === lc(a as string));
    return {
      getProviderWithProduct: ([id]) => {
        const p = this.s.providers.get(id as bigint);
        if (!p) throw new Revert('Provider not found');
        return this.providerWithProduct(p);
      },
      getProvider: ([id]) => {
        const p = this.s.providers.get(id as bigint);
        if (!p) throw new Revert('Provider not found');
        return {
          providerId: p.id,
          info: {
            serviceProvider: p.serviceProvider,
            payee: p.payee,
            name: p.name,
            description: p.description,
            isActive: p.isActive,
          },
        };
      },
      getProviderIdByAddress: ([a]) => byAddress(a)?.id ?? 0n,
      getProviderPayee: ([id]) => this.s.providers.get(id as bigint)?.payee ?? ZERO,
      isProviderActive: ([id]) => this.s.providers.get(id as bigint)?.isActive ?? false,
      isRegisteredProvider: ([a]) => !!byAddress(a),
      getProviderCount: () => BigInt(this.s.providers.size),
      activeProviderCount: () => BigInt([...this.s.providers.values()].filter((p) => p.isActive).length),
      getAllActiveProviders: () => [[...this.s.providers.keys()], false],
    };
  }

  // ---- PDPVerifier ---------------------------------------------------------------------------
  private pdpSet(id: unknown): PdpSet {
    const set = this.s.pdp.get(id as bigint);
    if (!set?.live) throw new Revert('Data set not live');
    return set;
  }
  private livePieces(set: PdpSet): [bigint, PdpPiece][] {
    return [...set.pieces.entries()].filter(([, p]) => p.live);
  }
  private pdpHandlers(): Record<string, Handler> {
    return {
      dataSetLive: ([id]) => this.s.pdp.get(id as bigint)?.live ?? false,
      pieceLive: ([id, pid]) =>
        !!this.s.pdp.get(id as bigint)?.live && !!this.s.pdp.get(id as bigint)?.pieces.get(pid as bigint)?.live,
      getDataSetListener: ([id]) => this.pdpSet(id).listener,
      getDataSetStorageProvider: ([id]) => [this.pdpSet(id).sp, ZERO],
      getNextPieceId: ([id]) => this.pdpSet(id).nextPieceId,
      getNextDataSetId: () => this.s.nextDataSet,
      getActivePieceCount: ([id]) => BigInt(this.livePieces(this.pdpSet(id)).length),
      getDataSetLeafCount: ([id]) => this.livePieces(this.pdpSet(id)).reduce((a, [, p]) => a + p.leafCount, 0n),
      getDataSetLastProvenEpoch: ([id]) => this.pdpSet(id).lastProven,
      getNextChallengeEpoch: ([id]) => {
        const set = this.pdpSet(id);
        return set.deadline === 0n ? 0n : set.deadline - CHALLENGE_WINDOW;
      },
      getScheduledRemovals: ([id]) => this.pdpSet(id).scheduled,
      getPieceCid: ([id, pid]) => ({ data: this.pdpSet(id).pieces.get(pid as bigint)?.cid ?? '0x' }),
      getPieceLeafCount: ([id, pid]) => this.pdpSet(id).pieces.get(pid as bigint)?.leafCount ?? 0n,
      findPieceIdsByCid: ([id, cid, start, limit]) => {
        const want = lc((cid as { data: Hex }).data);
        return this.livePieces(this.pdpSet(id))
          .filter(([pid, p]) => pid >= (start as bigint) && lc(p.cid) === want)
          .slice(0, Number(limit as bigint))
          .map(([pid]) => pid);
      },
      getActivePieces: ([id, offset, limit]) => {
        const all = this.livePieces(this.pdpSet(id));
        const page = all.slice(Number(offset as bigint), Number((offset as bigint) + (limit as bigint)));
        return [
          page.map(([, p]) => ({ data: p.cid })),
          page.map(([pid]) => pid),
          Number(offset as bigint) + page.length < all.length,
        ];
      },
    };
  }

  private pdpCreateDataSet(ctx: Ctx, listener: Address, extraData: Hex): bigint {
    if (lc(listener) !== lc(ADDRESSES.fwss))
      throw new Revert('simulated PDPVerifier: only the FWSS listener is simulated');
    const id = ctx.s.nextDataSet++;
    ctx.s.pdp.set(id, {
      live: true,
      sp: ctx.from,
      listener,
      nextPieceId: 0n,
      pieces: new Map(),
      scheduled: [],
      lastProven: this.head(),
      deadline: 0n,
      faulty: false,
    });
    this.emit(ctx, ADDRESSES.pdp, Abis.pdp as Abi, 'DataSetCreated', { setId: id, storageProvider: ctx.from });
    this.fwssDataSetCreated(ctx, id, ctx.from, extraData);
    return id;
  }

  private pdpAddPieces(ctx: Ctx, id: bigint, pieces: Hex[], extraData: Hex): bigint[] {
    const set = ctx.s.pdp.get(id);
    if (!set?.live) throw new Revert('InvalidDataSetId', [id]);
    if (pieces.length === 0) throw new Revert('Must add at least one piece');
    const first = set.nextPieceId;
    const ids: bigint[] = [];
    for (const cid of pieces) {
      const leafCount = DsPiece.fromLink(CID.decode(hexToBytes(cid)) as never).size / 32n;
      const pid = set.nextPieceId++;
      set.pieces.set(pid, { cid, leafCount, live: true });
      ids.push(pid);
    }
    this.emit(ctx, ADDRESSES.pdp, Abis.pdp as Abi, 'PiecesAdded', {
      setId: id,
      pieceIds: ids,
      pieceCids: pieces.map((data) => ({ data })),
    });
    this.fwssPiecesAdded(ctx, id, first, pieces, extraData);
    if (set.deadline === 0n) set.deadline = this.head() + MAX_PROVING_PERIOD; // proving starts with the first piece
    return ids;
  }

  private pdpScheduleRemovals(ctx: Ctx, id: bigint, pieceIds: bigint[], extraData: Hex): void {
    const set = ctx.s.pdp.get(id);
    if (!set?.live) throw new Revert('InvalidDataSetId', [id]);
    if (lc(set.sp) !== lc(ctx.from)) throw new Revert('Only the storage provider can schedule removal of pieces');
    for (const pid of pieceIds)
      if (!set.pieces.get(pid)?.live) throw new Revert('Can only schedule removal of existing pieces');
    this.fwssPiecesScheduledRemove(ctx, id, pieceIds, extraData);
    for (const pid of pieceIds) if (!set.scheduled.includes(pid)) set.scheduled.push(pid);
  }

  // ---- FilecoinWarmStorageService (the data set listener) ----------------------------------
  private fwssInfo(ctx: Ctx, id: bigint): FwssSet {
    const info = ctx.s.fwss.get(id);
    if (!info) throw new Revert('DataSetNotRegistered', [id]);
    return info;
  }

  private fwssDataSetCreated(ctx: Ctx, id: bigint, sp: Address, extraData: Hex): void {
    const [payer, clientDataSetId, keys, values, signature] = decodeAbiParameters(
      [{ type: 'address' }, { type: 'uint256' }, { type: 'string[]' }, { type: 'string[]' }, { type: 'bytes' }],
      extraData,
    );
    const provider = [...ctx.s.providers.values()].find((p) => lc(p.serviceProvider) === lc(sp));
    if (!provider) throw new Revert('ProviderNotRegistered', [sp]);
    if ((ctx.s.clientNonces.get(key(payer, clientDataSetId)) ?? 0n) !== 0n)
      throw new Revert('ClientDataSetAlreadyRegistered', [clientDataSetId]);
    const signer = recoverTypedSync(
      this.domain(),
      'CreateDataSet',
      {
        clientDataSetId,
        payee: provider.payee,
        metadata: keys.map((k, i) => ({ key: k, value: values[i]! })),
      },
      signature,
    );
    if (lc(signer) !== lc(payer)) throw new Revert('InvalidSignature', [payer, signer]);
    const approval = ctx.s.approvals.get(key(ADDRESSES.usdfc, payer, ADDRESSES.fwss));
    if (!approval?.isApproved) throw new Revert('OperatorNotApproved', [payer, ADDRESSES.fwss]);
    ctx.s.clientNonces.set(key(payer, clientDataSetId), id);
    ctx.s.clientDataSets.set(lc(payer), [...(ctx.s.clientDataSets.get(lc(payer)) ?? []), id]);
    const railId = ctx.s.nextRail++;
    ctx.s.rails.set(railId, {
      token: ADDRESSES.usdfc,
      from: payer,
      to: provider.payee,
      operator: ADDRESSES.fwss,
      validator: ADDRESSES.fwss,
      paymentRate: 0n,
      lockupPeriod: LOCKUP_PERIOD,
      lockupFixed: 0n,
      settledUpTo: this.head(),
      endEpoch: 0n,
      commissionRateBps: 0n,
      serviceFeeRecipient: ADDRESSES.fwss,
    });
    ctx.s.fwss.set(id, {
      pdpRailId: railId,
      payer,
      payee: provider.payee,
      serviceProvider: sp,
      providerId: provider.id,
      clientDataSetId,
      pdpEndEpoch: 0n,
      keys: [...keys],
      values: [...values],
    });
    this.emit(ctx, ADDRESSES.fwss, Abis.fwss as Abi, 'DataSetCreated', {
      dataSetId: id,
      providerId: provider.id,
      pdpRailId: railId,
      cacheMissRailId: 0n,
      cdnRailId: 0n,
      payer,
      serviceProvider: sp,
      payee: provider.payee,
      metadataKeys: keys,
      metadataValues: values,
    });
  }

  private fwssPiecesAdded(ctx: Ctx, id: bigint, firstAdded: bigint, pieces: Hex[], extraData: Hex): void {
    const info = this.fwssInfo(ctx, id);
    if (info.pdpEndEpoch !== 0n) throw new Revert('DataSetPaymentAlreadyTerminated', [id]);
    const [nonce, keys, values, signature] = decodeAbiParameters(
      [{ type: 'uint256' }, { type: 'string[][]' }, { type: 'string[][]' }, { type: 'bytes' }],
      extraData,
    );
    if ((ctx.s.clientNonces.get(key(info.payer, nonce)) ?? 0n) !== 0n)
      throw new Revert('ClientDataSetAlreadyRegistered', [nonce]);
    ctx.s.clientNonces.set(key(info.payer, nonce), ((firstAdded + BigInt(pieces.length)) << 128n) | id);
    const signer = recoverTypedSync(
      this.domain(),
      'AddPieces',
      {
        clientDataSetId: info.clientDataSetId,
        nonce,
        pieceData: pieces.map((data) => ({ data })),
        pieceMetadata: pieces.map((_, i) => ({
          pieceIndex: BigInt(i),
          metadata: (keys[i] ?? []).map((k, j) => ({ key: k, value: values[i]![j]! })),
        })),
      },
      signature,
    );
    if (lc(signer) !== lc(info.payer)) throw new Revert('InvalidSignature', [info.payer, signer]);
    pieces.forEach((cid, i) => {
      const pieceId = firstAdded + BigInt(i);
      ctx.s.pieceMeta.set(key(id, pieceId), [[...(keys[i] ?? [])], [...(values[i] ?? [])]]);
      this.emit(ctx, ADDRESSES.fwss, Abis.fwss as Abi, 'PieceAdded', {
        dataSetId: id,
        pieceId,
        pieceCid: { data: cid },
        keys: keys[i] ?? [],
        values: values[i] ?? [],
      });
    });
    this.updateRate(ctx.s, id, true);
  }

  private fwssPiecesScheduledRemove(ctx: Ctx, id: bigint, pieceIds: bigint[], extraData: Hex): void {
    const info = this.fwssInfo(ctx, id);
    const [signature] = decodeAbiParameters([{ type: 'bytes' }], extraData);
    const signer = recoverTypedSync(
      this.domain(),
      'SchedulePieceRemovals',
      { clientDataSetId: info.clientDataSetId, pieceIds },
      signature,
    );
    if (lc(signer) !== lc(info.payer)) throw new Revert('InvalidSignature', [info.payer, signer]);
  }

  /** Set the data set's rail rate from its live size; the payer's lockup must cover 30 days of it. */
  private updateRate(s: State, id: bigint, enforce = false): void {
    const info = s.fwss.get(id);
    const set = s.pdp.get(id);
    if (!info || !set) return;
    const bytes = this.livePieces(set).reduce((a, [, p]) => a + p.leafCount * 32n, 0n);
    const sized = (bytes * PRICE_PER_TIB_MONTH) / TIB / EPOCHS_PER_MONTH;
    const floor = MIN_RATE_PER_MONTH / EPOCHS_PER_MONTH;
    const rate = bytes === 0n ? 0n : sized > floor ? sized : floor;
    const rail = s.rails.get(info.pdpRailId)!;
    const acct = this.account(s, ADDRESSES.usdfc, info.payer);
    this.settle(acct);
    const delta = rate - rail.paymentRate;
    acct.lockupRate += delta;
    acct.lockupCurrent += delta * LOCKUP_PERIOD;
    rail.paymentRate = rate;
    if (enforce && acct.lockupCurrent > acct.funds)
      throw new Revert('InsufficientLockupFunds', [info.payer, acct.lockupCurrent, acct.funds]);
  }

  private domain() {
    return getStorageDomain({ chain: calibration });
  }

  private fwssHandlers(): Record<string, Handler> {
    return {
      viewContractAddress: () => ADDRESSES.fwssView,
      pdpVerifierAddress: () => ADDRESSES.pdp,
      paymentsContractAddress: () => ADDRESSES.pay,
      usdfcTokenAddress: () => ADDRESSES.usdfc,
      serviceProviderRegistry: () => ADDRESSES.registry,
      sessionKeyRegistry: () => ADDRESSES.sessionKeys,
      filBeamBeneficiaryAddress: () => ZERO,
      getServicePrice: () => ({
        pricePerTiBPerMonthNoCDN: PRICE_PER_TIB_MONTH,
        pricePerTiBCdnEgress: 0n,
        pricePerTiBCacheMissEgress: 0n,
        tokenAddress: ADDRESSES.usdfc,
        epochsPerMonth: EPOCHS_PER_MONTH,
        minimumPricePerMonth: MIN_RATE_PER_MONTH,
      }),
    };
  }

  private fwssViewHandlers(): Record<string, Handler> {
    const view = (id: bigint, f: FwssSet) => ({
      pdpRailId: f.pdpRailId,
      cacheMissRailId: 0n,
      cdnRailId: 0n,
      payer: f.payer,
      payee: f.payee,
      serviceProvider: f.serviceProvider,
      commissionBps: 0n,
      clientDataSetId: f.clientDataSetId,
      pdpEndEpoch: f.pdpEndEpoch,
      providerId: f.providerId,
      dataSetId: id,
    });
    const ofClient = (payer: unknown) => this.s.clientDataSets.get(lc(payer as string)) ?? [];
    return {
      getDataSet: ([id]) => {
        const f = this.s.fwss.get(id as bigint);
        return f
          ? view(id as bigint, f)
          : view(id as bigint, {
              pdpRailId: 0n,
              payer: ZERO,
              payee: ZERO,
              serviceProvider: ZERO,
              providerId: 0n,
              clientDataSetId: 0n,
              pdpEndEpoch: 0n,
              keys: [],
              values: [],
            });
      },
      getClientDataSets: ([payer]) => ofClient(payer).map((id) => view(id, this.s.fwss.get(id)!)),
      clientDataSets: ([payer]) => ofClient(payer),
      getClientDataSetsLength: ([payer]) => BigInt(ofClient(payer).length),
      clientNonces: ([payer, nonce]) => this.s.clientNonces.get(key(payer as Address, nonce as bigint)) ?? 0n,
      railToDataSet: ([rail]) => [...this.s.fwss.entries()].find(([, f]) => f.pdpRailId === rail)?.[0] ?? 0n,
      getAllDataSetMetadata: ([id]) => {
        const f = this.s.fwss.get(id as bigint);
        return [f?.keys ?? [], f?.values ?? []];
      },
      getDataSetMetadata: ([id, k]) => {
        const f = this.s.fwss.get(id as bigint);
        const i = f?.keys.indexOf(k as string) ?? -1;
        return i < 0 ? [false, ''] : [true, f!.values[i]!];
      },
      getAllPieceMetadata: ([id, pid]) => this.s.pieceMeta.get(key(id as bigint, pid as bigint)) ?? [[], []],
      getPieceMetadata: ([id, pid, k]) => {
        const [keys, values] = this.s.pieceMeta.get(key(id as bigint, pid as bigint)) ?? [[], []];
        const i = keys.indexOf(k as string);
        return i < 0 ? [false, ''] : [true, values[i]!];
      },
      getPDPConfig: () => [MAX_PROVING_PERIOD, CHALLENGE_WINDOW, 5n, 0n],
      provingDeadline: ([id]) => this.s.pdp.get(id as bigint)?.deadline ?? 0n,
      provenThisPeriod: ([id]) => {
        const set = this.s.pdp.get(id as bigint);
        return !!set && !set.faulty && set.lastProven > set.deadline - MAX_PROVING_PERIOD;
      },
      isProviderApproved: ([id]) => this.s.providers.has(id as bigint),
      getApprovedProviders: () => [...this.s.providers.keys()],
      getApprovedProvidersLength: () => BigInt(this.s.providers.size),
      getDataSetStatus: ([id]) => (this.s.fwss.get(id as bigint) ? 1 : 0),
    };
  }
}

interface LogFilter {
  fromBlock?: string;
  toBlock?: string;
  address?: string | string[];
  topics?: (string | string[] | null)[];
}

const USDFC_NAME = 'USD for Filecoin Community';
const ZERO_HASH = `0x${'0'.repeat(64)}` as Hex;

function blockHash(n: bigint): Hex {
  return keccak256(toHex(`simulated block ${n}`));
}

function toFunctionSelector(fn: unknown): string {
  const f = fn as { name: string; inputs: { type: string; components?: unknown[] }[] };
  const sig = `${f.name}(${f.inputs.map(canonicalType).join(',')})`;
  return keccak256(toHex(sig)).slice(0, 10);
}
function canonicalType(p: { type: string; components?: unknown[] }): string {
  if (p.type.startsWith('tuple'))
    return `(${(p.components as { type: string; components?: unknown[] }[]).map(canonicalType).join(',')})${p.type.slice(5)}`;
  return p.type;
}

/**
 * Recover an EIP-712 signer synchronously. viem's recoverTypedDataAddress is async only in
 * signature; the hashing and secp256k1 recovery it does are synchronous, so use their parts.
 */
function recoverTypedSync(
  domain: Record<string, unknown>,
  primaryType: string,
  message: Record<string, unknown>,
  signature: Hex | { r: Hex; s: Hex; v: bigint },
): Address {
  const hash = hashTypedData({ domain, types: EIP712Types, primaryType, message } as never);
  const sig = typeof signature === 'string' ? parseSignature(signature) : signature;
  const yParity = sig.v !== undefined ? Number(sig.v) - 27 : (sig as { yParity: number }).yParity;
  if (yParity !== 0 && yParity !== 1) throw new Revert('UnsupportedSignatureV', [Number(sig.v)]);
  const recovered = new secp256k1.Signature(BigInt(sig.r), BigInt(sig.s))
    .addRecoveryBit(yParity)
    .recoverPublicKey(hash.slice(2));
  return publicKeyToAddress(`0x${recovered.toHex(false)}`);
}

function cloneState(s: State): State {
  return structuredClone(s);
}
