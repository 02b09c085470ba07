/**
 * Filecoin Onchain Cloud as a storage provider: pieces in a PDP data set of one storage
 * provider, proven on chain (PDPVerifier) and paid through Filecoin Pay, driven by the Synapse
 * SDK (`@filoz/synapse-sdk` for the client and the provider registry, `@filoz/synapse-core` for
 * the split operations).
 *
 * put = store → commit, each step checked against the chain first, so a retry never redoes
 * finished work:
 *   1. already committed (a live, unscheduled piece with this CID in our data set) → done
 *      (a commit this process sent is looked at first, so the put that sent it reports it new);
 *   2. bytes already parked at the provider (`GET /pdp/piece`) → no upload; otherwise stream
 *      them (`uploadPieceStreaming`, no SDK retries) while checking them against the CAR CID:
 *      on a mismatch the upload is aborted before it is finalised, so nothing is parked; while
 *      the provider is still processing an upload (202), CommitPendingError;
 *   3. commit: add the piece (create the data set with it the first time) with an EIP-712
 *      signature whose nonce is derived from (data set, piece, generation). FWSS records each
 *      nonce it accepts (`clientNonces`), so a commit sent twice (a lost response, another
 *      worker) lands once: the second reverts. The commit's status is read once; while it is
 *      not on chain yet, put throws CommitPendingError and Temporal calls again later.
 * The data set is Provenant's own on that provider, found again from a client data set id
 * derived from (wallet, provider, dataSetLabel): no local state is needed.
 * Each piece carries metadata (ipfsRootCID, CAR CID, length), so `locate` works from the root.
 *
 * status reads the PDP contracts: data set live, piece live and not scheduled for removal,
 * proof faults (FWSS FaultRecord events since the last proof), the service not terminated, and
 * the payment runway; `expiresAt` is when the deposit runs out at the current rate, which is
 * what `renew` extends (a deposit with an ERC-2612 permit up to `topUpRunwayDays`).
 * delete schedules the piece's removal (applied by PDPVerifier at the next proving period).
 * Dates come from epochs relative to the chain head (30 s an epoch), not from genesis.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Readable } from 'node:stream';
import { fetchWithTimeout, readPieceRange } from './http-range.js';
import type { Chain } from '@filoz/synapse-core/chains';
import type { PieceCID } from '@filoz/synapse-core/piece';
import type { PDPProvider, Synapse } from '@filoz/synapse-sdk';
import type { Hex, PrivateKeyAccount } from 'viem';
import type { SynapseProviderConfig } from '../../config/schema.js';
import {
  CommitPendingError,
  ConfigError,
  InsufficientFundsError,
  isNetworkError,
  PieceNotFoundError,
  PieceSizeExceededError,
  ProviderAuthError,
  ProviderUnavailableError,
  ProvenantError,
  RenewalPendingError,
  StoreError,
} from '../errors.js';
import { requireEnv } from './kit/env.js';
import { httpStatusError, providerFailure, type ProviderOp as Op } from './kit/http-status.js';
import { abortable } from './kit/signal.js';
import { verifiedStream } from './kit/verified-stream.js';
import type { ChainCommitment } from '../../shared/types.js';
import type {
  CallOptions,
  PieceRef,
  Placement,
  ReplicaStatus,
  StorageProvider,
  RangeOptions,
  StatusOptions,
} from './provider.js';

const EPOCH_MS = 30_000;
const EPOCHS_PER_DAY = 2880n;
/** Piece metadata keys (FWSS allows 5 keys of ≤32 bytes, values ≤128 bytes). */
const META = { root: 'ipfsRootCID', car: 'provenant.carCid', bytes: 'provenant.bytes' } as const;
/** How many commits of one piece to one data set (after deletions) we look through. */
const MAX_GENERATIONS = 64;

/** The SDK and viem, imported on first use: together they take most of a second to load. */
async function loadSdk() {
  const [main, chains, Abis, Pay, PDPVerifier, Piece, SP, typedData, utils, warm, viem, accounts, actions] =
    await Promise.all([
      import('@filoz/synapse-sdk'),
      import('@filoz/synapse-core/chains'),
      import('@filoz/synapse-core/abis'),
      import('@filoz/synapse-core/pay'),
      import('@filoz/synapse-core/pdp-verifier'),
      import('@filoz/synapse-core/piece'),
      import('@filoz/synapse-core/sp'),
      import('@filoz/synapse-core/typed-data'),
      import('@filoz/synapse-core/utils'),
      import('@filoz/synapse-core/warm-storage'),
      import('viem'),
      import('viem/accounts'),
      import('viem/actions'),
    ]);
  return {
    Synapse: main.Synapse,
    chains,
    Abis,
    Pay,
    PDPVerifier,
    Piece,
    SP,
    typedData,
    utils,
    warm,
    viem,
    accounts,
    actions,
  };
}
type Sdk = Awaited<ReturnType<typeof loadSdk>>;
let loading: Promise<Sdk> | undefined;
/** Set once loaded; every public method awaits `load()` before using it. */
let sdk: Sdk;

/**
 * The signal of the provider call a chain request is made for: viem's contract reads take none,
 * so the transport's fetch picks it up from here and aborts with the call.
 */
const callSignal = new AsyncLocalStorage<AbortSignal | undefined>();
const fetchWithCallSignal: typeof fetch = (input, init) => {
  const signals = [init?.signal, callSignal.getStore()].filter((x): x is AbortSignal => !!x);
  return fetch(input, { ...init, signal: signals.length > 1 ? AbortSignal.any(signals) : signals[0] });
};

interface DataSetRef {
  /** Undefined until the first commit creates it. */
  dataSetId?: bigint;
  clientDataSetId: bigint;
}
type CommitState =
  { state: 'pending' } | { state: 'rejected' } | { state: 'confirmed'; dataSetId: bigint; txHash: Hex };
/** How far back (epochs) a put that finds its piece already committed looks for the commit (a day: what Lotus nodes serve). */
const COMMIT_LOOKBACK_EPOCHS = 2880n;

export class SynapseProvider implements StorageProvider {
  readonly kind = 'synapse';
  readonly id: string;
  private readonly key: Hex;
  private loaded?: Promise<void>;
  private synapse!: Synapse;
  private account!: PrivateKeyAccount;
  private chain!: Chain;
  private providerInfo?: Promise<PDPProvider>;
  private dataSetRef?: DataSetRef;
  private networkInfo?: Promise<{ network: string; chainId: number }>;
  /** Commits this process sent and has not seen land: piece CID → status URL. */
  private readonly pending = new Map<string, { statusUrl: string; kind: 'create' | 'add' }>();

  constructor(
    private readonly cfg: SynapseProviderConfig,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.id = cfg.id;
    this.key = requireEnv(cfg.privateKeyEnv, {
      path: `providers.${cfg.id}.privateKeyEnv`,
      env,
      format: { pattern: /^0x[0-9a-fA-F]{64}$/, description: 'a private key (0x + 64 hex digits)' },
    }) as Hex;
  }

  /** Load the SDK and build the client, once. */
  private load(): Promise<void> {
    this.loaded ??= (loading ??= loadSdk()).then((m) => {
      sdk = m;
      this.account = m.accounts.privateKeyToAccount(this.key);
      const base = this.cfg.network === 'mainnet' ? m.chains.mainnet : m.chains.calibration;
      this.chain = { ...base, rpcUrls: { default: { http: [this.cfg.rpcUrl] } } };
      this.synapse = m.Synapse.create({
        account: this.account,
        chain: this.chain,
        // One attempt per call: Temporal owns retries.
        transport: m.viem.http(this.cfg.rpcUrl, {
          retryCount: 0,
          timeout: this.cfg.requestTimeoutMs,
          fetchFn: fetchWithCallSignal,
        }),
        source: 'provenant',
      });
    });
    return this.loaded;
  }

  /**
   * Run one provider call under its signal: chain reads abort with it (callSignal), and SDK
   * requests that take no signal stop being waited for.
   */
  private scoped<T>(o: CallOptions, work: () => Promise<T>): Promise<T> {
    return callSignal.run(o.signal, () =>
      abortable(o.signal, async () => {
        await this.load();
        return work();
      }),
    );
  }

  private get client() {
    return this.synapse.client;
  }

  private where(pieceCid?: string): string {
    return `[provider=${this.id}, sp=${this.cfg.providerId}${pieceCid ? `, piece=${pieceCid}` : ''}]`;
  }

  // ---- the provider and the data set ------------------------------------------------------------
  private provider(): Promise<PDPProvider> {
    this.providerInfo ??= this.synapse.getProviderInfo(BigInt(this.cfg.providerId)).catch((err: unknown) => {
      this.providerInfo = undefined;
      if (/not found in registry/.test(String((err as Error)?.message))) {
        const message = `storage provider ${this.cfg.providerId} is not in the ServiceProviderRegistry`;
        throw new ConfigError(
          `provider '${this.id}': ${message}`,
          [{ path: `providers.${this.id}.providerId`, message }],
          { cause: err },
        );
      }
      throw this.typed(err, 'status');
    });
    return this.providerInfo;
  }

  private async serviceUrl(): Promise<string> {
    return (this.cfg.serviceUrl ?? (await this.provider()).pdp.serviceURL).replace(/\/*$/, '/');
  }

  /** Our data set: the configured one, or the one created under our derived client data set id. */
  private async dataSet(): Promise<DataSetRef> {
    if (this.dataSetRef?.dataSetId !== undefined) return this.dataSetRef;
    if (this.cfg.dataSetId !== undefined) {
      const dataSetId = BigInt(this.cfg.dataSetId);
      const info = await sdk.warm.getDataSet(this.client, { dataSetId }).catch((err: unknown) => {
        throw this.typed(err, 'status');
      });
      if (!info)
        throw new ConfigError(`provider '${this.id}': data set ${dataSetId} does not exist`, [
          { path: `providers.${this.id}.dataSetId`, message: 'no such data set' },
        ]);
      if (info.payer.toLowerCase() !== this.account.address.toLowerCase()) {
        throw new ProviderAuthError(
          `data set ${dataSetId} belongs to ${info.payer}, not to this wallet (${this.account.address}) ${this.where()}`,
        );
      }
      if (info.providerId !== BigInt(this.cfg.providerId)) {
        const message = `data set ${dataSetId} is with provider ${info.providerId}, not ${this.cfg.providerId}`;
        throw new ConfigError(`provider '${this.id}': ${message}`, [
          { path: `providers.${this.id}.dataSetId`, message },
        ]);
      }
      return (this.dataSetRef = { dataSetId, clientDataSetId: info.clientDataSetId });
    }
    const clientDataSetId = BigInt(
      sdk.viem.keccak256(
        sdk.viem.encodeAbiParameters(
          [{ type: 'string' }, { type: 'address' }, { type: 'uint256' }, { type: 'string' }],
          ['provenant/data-set', this.account.address, BigInt(this.cfg.providerId), this.cfg.dataSetLabel],
        ),
      ),
    );
    const used = await this.clientNonce(clientDataSetId, 'status');
    this.dataSetRef = { clientDataSetId, dataSetId: used === 0n ? undefined : used };
    return this.dataSetRef;
  }

  /** FWSS `clientNonces(payer, nonce)`: 0 when unused, else what the accepted call recorded. */
  private async clientNonce(nonce: bigint, op: Op): Promise<bigint> {
    try {
      return await sdk.actions.readContract(this.client, {
        address: this.chain.contracts.fwssView.address,
        abi: sdk.Abis.fwssView,
        functionName: 'clientNonces',
        args: [this.account.address, nonce],
      });
    } catch (err) {
      throw this.typed(err, op);
    }
  }

  /** The nonce of the `generation`-th commit of this piece to our data set. */
  private addNonce(clientDataSetId: bigint, pieceCid: PieceCID, generation: number): bigint {
    return BigInt(
      sdk.viem.keccak256(
        sdk.viem.encodeAbiParameters(
          [{ type: 'string' }, { type: 'uint256' }, { type: 'bytes' }, { type: 'uint256' }],
          ['provenant/add-pieces', clientDataSetId, sdk.viem.toHex(pieceCid.bytes), BigInt(generation)],
        ),
      ),
    );
  }

  /** Ids of the piece in the data set that are live and not scheduled for removal. */
  private async livePieceIds(
    dataSetId: bigint,
    pieceCid: PieceCID,
    op: Op,
  ): Promise<{ ids: bigint[]; scheduled: boolean }> {
    try {
      const [ids, removals] = await Promise.all([
        sdk.PDPVerifier.findPieceIdsByCid(this.client, { dataSetId, pieceCid, startPieceId: 0n, limit: 64n }),
        sdk.PDPVerifier.getScheduledRemovals(this.client, { dataSetId }),
      ]);
      const scheduled = new Set(removals);
      const live = ids.filter((id) => !scheduled.has(id));
      return { ids: live, scheduled: live.length < ids.length };
    } catch (err) {
      throw this.typed(err, op);
    }
  }

  private parse(pieceCid: string): PieceCID {
    const parsed = sdk.Piece.asPieceCID(pieceCid);
    if (!parsed) throw new PieceNotFoundError(`not a v2 piece CID ${this.where(pieceCid)}`);
    return parsed;
  }

  // ---- put ------------------------------------------------------------------------------------
  put(piece: PieceRef, open: () => Readable, o: CallOptions = {}): Promise<Placement> {
    return this.scoped(o, () => this.store(piece, open, o));
  }

  private async store(piece: PieceRef, open: () => Readable, o: CallOptions): Promise<Placement> {
    const pieceCid = this.parse(piece.pieceCid);
    const provider = await this.provider();
    const limit = Math.min(
      this.cfg.maxPieceBytes,
      sdk.utils.SIZE_CONSTANTS.MAX_UPLOAD_SIZE,
      Number((provider.pdp.maxPieceSizeInBytes * 127n) / 128n),
    );
    if (piece.bytes > limit) {
      throw new PieceSizeExceededError(
        `piece of ${piece.bytes} bytes exceeds the provider's limit of ${limit} bytes ${this.where(piece.pieceCid)}`,
      );
    }
    const ds = await this.dataSet();

    // 1. A commit this process sent earlier (an earlier attempt of this put): look at it once, never send it twice.
    const sent = this.pending.get(piece.pieceCid);
    if (sent) {
      const s = await this.commitState(sent, o);
      if (s.state === 'pending')
        throw new CommitPendingError(`commit sent, not on chain yet ${this.where(piece.pieceCid)}`);
      this.pending.delete(piece.pieceCid);
      if (s.state === 'confirmed') return this.placed(piece, s.dataSetId, s.txHash);
    }
    // Already committed (by anyone)?
    const live = ds.dataSetId !== undefined ? await this.livePieceIds(ds.dataSetId, pieceCid, 'put') : undefined;
    if (ds.dataSetId !== undefined && live && live.ids.length > 0) {
      const commitment = await this.findCommitment(ds.dataSetId, pieceCid, live.ids);
      return {
        providerId: this.id,
        pieceCid: piece.pieceCid,
        existed: true,
        storedAt: new Date().toISOString(),
        expiresAt: await this.expiry('put'),
        ...(commitment ? { commitment } : {}),
      };
    }

    // 2. Store: the bytes parked at the provider, uploaded at most once.
    const serviceURL = await this.serviceUrl();
    let parked = await this.parked(serviceURL, pieceCid, o);
    if (parked === 'no') {
      await this.upload(piece, open, { ...o, serviceURL, pieceCid });
      parked = await this.parked(serviceURL, pieceCid, o);
    }
    if (parked !== 'yes') {
      // Uploaded, but the provider is still checking it (or lost it): committing now would fail.
      throw new CommitPendingError(
        `stored; the provider has not finished processing the upload ${this.where(piece.pieceCid)}`,
      );
    }

    // 3. Commit.
    return this.commit(piece, { ...o, serviceURL, provider, ds, pieceCid });
  }

  /** Whether the provider holds the piece's bytes (`GET /pdp/piece`; 202: still processing an upload). */
  private async parked(serviceURL: string, pieceCid: PieceCID, o: CallOptions): Promise<'yes' | 'no' | 'processing'> {
    const res = await this.request(new URL(`pdp/piece?pieceCid=${pieceCid.toString()}`, serviceURL), {
      ...o,
      op: 'put',
    });
    if (res.status === 404) return 'no';
    if (res.status === 202) return 'processing';
    if (res.ok) return 'yes';
    throw httpStatusError(res.status, {
      side: 'provider',
      op: 'put',
      message: `piece lookup ${this.where(pieceCid.toString())}`,
    });
  }

  private async upload(
    piece: PieceRef,
    open: () => Readable,
    o: CallOptions & { serviceURL: string; pieceCid: PieceCID },
  ): Promise<void> {
    // A mismatch is thrown before the last chunk goes out: the upload is never finalised, nothing is parked.
    const checked = verifiedStream(open(), piece, { provider: this.id, piece: piece.pieceCid, what: 'bytes sent' });
    const body = Readable.from(checked);
    try {
      await sdk.SP.uploadPieceStreaming({
        serviceURL: o.serviceURL,
        data: Readable.toWeb(body) as ReadableStream<Uint8Array>,
        size: piece.bytes,
        pieceCid: o.pieceCid,
        signal: o.signal,
      });
    } catch (err) {
      if (checked.failure) throw checked.failure;
      body.destroy();
      throw this.typed(err, 'put', piece.pieceCid);
    }
  }

  private async commit(
    piece: PieceRef,
    o: CallOptions & { serviceURL: string; provider: PDPProvider; ds: DataSetRef; pieceCid: PieceCID },
  ): Promise<Placement> {
    const { serviceURL, provider, ds, pieceCid } = o;
    const metadata = sdk.utils.pieceMetadataObjectToEntry({
      [META.root]: piece.rootCid,
      [META.car]: piece.carCid,
      [META.bytes]: String(piece.bytes),
    });
    let generation = 0;
    if (ds.dataSetId !== undefined) {
      // The first nonce not yet used: earlier generations were committed and since deleted.
      while ((await this.clientNonce(this.addNonce(ds.clientDataSetId, pieceCid, generation), 'put')) !== 0n) {
        if (++generation >= MAX_GENERATIONS)
          throw new StoreError(`piece committed ${MAX_GENERATIONS} times already ${this.where(piece.pieceCid)}`);
      }
    }
    const addExtra = await sdk.typedData.signAddPieces(this.client, {
      clientDataSetId: ds.clientDataSetId,
      nonce: this.addNonce(ds.clientDataSetId, pieceCid, generation),
      pieces: [{ pieceCid, metadata }],
    });
    let sent: { statusUrl: string; kind: 'create' | 'add' };
    try {
      if (ds.dataSetId !== undefined) {
        const r = await sdk.SP.addPiecesApiRequest({
          serviceURL,
          dataSetId: ds.dataSetId,
          pieces: [pieceCid],
          extraData: addExtra,
        });
        sent = { statusUrl: r.statusUrl, kind: 'add' };
      } else {
        const createExtra = await sdk.typedData.signCreateDataSet(this.client, {
          clientDataSetId: ds.clientDataSetId,
          payee: provider.serviceProvider,
          metadata: sdk.utils.datasetMetadataObjectToEntry({ provenant: this.cfg.dataSetLabel }, { cdn: false }),
        });
        const extraData = sdk.viem.encodeAbiParameters(sdk.typedData.signcreateDataSetAndAddPiecesAbiParameters, [
          createExtra,
          addExtra,
        ]);
        const r = await sdk.SP.createDataSetAndAddPiecesApiRequest({
          serviceURL,
          recordKeeper: this.chain.contracts.fwss.address,
          extraData,
          pieces: [pieceCid],
        });
        sent = { statusUrl: r.statusUrl, kind: 'create' };
      }
    } catch (err) {
      const e = this.typed(err, 'put', piece.pieceCid);
      if (/ClientDataSetAlreadyRegistered/.test(e.message)) {
        // The same commit (or the data set's creation) already landed: the next attempt sees it.
        this.dataSetRef = undefined;
        throw new CommitPendingError(`commit already on chain ${this.where(piece.pieceCid)}`, { cause: err });
      }
      throw e;
    }
    this.pending.set(piece.pieceCid, sent);
    const s = await this.commitState(sent, o);
    if (s.state === 'pending')
      throw new CommitPendingError(`stored; commit sent, not on chain yet ${this.where(piece.pieceCid)}`);
    this.pending.delete(piece.pieceCid);
    if (s.state === 'rejected') {
      this.dataSetRef = undefined;
      throw new StoreError(
        `commit rejected on chain; the piece stays parked at the provider and the next attempt commits it again ${this.where(piece.pieceCid)}`,
      );
    }
    return this.placed(piece, s.dataSetId, s.txHash);
  }

  private async placed(piece: PieceRef, dataSetId: bigint, txHash: Hex): Promise<Placement> {
    if (this.dataSetRef) this.dataSetRef.dataSetId = dataSetId;
    const commitment = await this.commitmentOf(txHash, dataSetId, this.parse(piece.pieceCid));
    return {
      providerId: this.id,
      pieceCid: piece.pieceCid,
      existed: false,
      storedAt: new Date().toISOString(),
      expiresAt: await this.expiry('put'),
      ...(commitment ? { commitment } : {}),
    };
  }

  // ---- the chain's record of a commit ---------------------------------------------------------
  /**
   * The network as the node names it: the configured one, labelled simulated when the node's
   * client version says it is (the test network's does). Asked once.
   */
  private network(): Promise<{ network: string; chainId: number }> {
    this.networkInfo ??= Promise.all([
      sdk.actions.getChainId(this.client),
      this.client.request({ method: 'web3_clientVersion' } as never).then(
        (v) => String(v),
        () => '',
      ),
    ]).then(
      ([chainId, version]) => ({
        network: /simulated/i.test(version) ? `${this.cfg.network} (simulated)` : this.cfg.network,
        chainId,
      }),
      (err: unknown) => {
        this.networkInfo = undefined;
        throw this.typed(err, 'put');
      },
    );
    return this.networkInfo;
  }

  /** The PiecesAdded event among `logs` that adds `pieceCid` to the data set, as a commitment. */
  private async commitmentIn(
    logs: readonly { address: string; blockNumber: bigint | null; transactionHash: Hex | null }[],
    dataSetId: bigint,
    pieceCid: PieceCID,
    pieceIds?: bigint[],
  ): Promise<ChainCommitment | undefined> {
    const want = sdk.viem.toHex(pieceCid.bytes);
    const pdp = this.chain.contracts.pdp.address.toLowerCase();
    const events = sdk.viem.parseEventLogs({
      abi: sdk.Abis.pdp,
      eventName: 'PiecesAdded',
      logs: logs.filter((l) => l.address.toLowerCase() === pdp) as never,
    });
    for (const e of events) {
      const {
        setId,
        pieceIds: ids,
        pieceCids,
      } = e.args as {
        setId: bigint;
        pieceIds: readonly bigint[];
        pieceCids: readonly { data: Hex }[];
      };
      if (setId !== dataSetId || e.blockNumber === null) continue;
      const i = pieceCids.findIndex(
        (c, j) => c.data.toLowerCase() === want && (!pieceIds || pieceIds.includes(ids[j]!)),
      );
      if (i < 0) continue;
      const { network, chainId } = await this.network();
      return {
        kind: 'pdp',
        providerId: this.id,
        pieceCid: pieceCid.toString(),
        epoch: Number(e.blockNumber),
        network,
        chainId,
        dataSetId: dataSetId.toString(),
        pieceId: ids[i]!.toString(),
        ...(e.transactionHash ? { txHash: e.transactionHash } : {}),
      };
    }
    return undefined;
  }

  /**
   * The commitment of a commit just confirmed: its transaction's PiecesAdded event. A receipt the
   * node cannot give (yet) leaves the placement without one: the piece is stored and committed,
   * and failing the put now would only send it again.
   */
  private async commitmentOf(txHash: Hex, dataSetId: bigint, pieceCid: PieceCID): Promise<ChainCommitment | undefined> {
    try {
      const receipt = await sdk.actions.getTransactionReceipt(this.client, { hash: txHash });
      return await this.commitmentIn(receipt.logs, dataSetId, pieceCid);
    } catch {
      return undefined;
    }
  }

  /** The commitment of a piece found committed already: its PiecesAdded event in the last day, if there. */
  private async findCommitment(
    dataSetId: bigint,
    pieceCid: PieceCID,
    liveIds: bigint[],
  ): Promise<ChainCommitment | undefined> {
    try {
      const head = await sdk.actions.getBlockNumber(this.client, { cacheTime: 0 });
      const logs = await sdk.actions.getContractEvents(this.client, {
        address: this.chain.contracts.pdp.address,
        abi: sdk.Abis.pdp,
        eventName: 'PiecesAdded',
        args: { setId: dataSetId },
        fromBlock: head > COMMIT_LOOKBACK_EPOCHS ? head - COMMIT_LOOKBACK_EPOCHS : 0n,
        toBlock: head,
      });
      return await this.commitmentIn(logs, dataSetId, pieceCid, liveIds);
    } catch {
      return undefined;
    }
  }

  /** One look at a commit's status on the provider (the SDK's waitFor… would poll). */
  private async commitState(
    { statusUrl, kind }: { statusUrl: string; kind: 'create' | 'add' },
    o: CallOptions,
  ): Promise<CommitState> {
    const read = async (url: string) => {
      const res = await this.request(url, { ...o, op: 'put' });
      if (!res.ok)
        throw httpStatusError(res.status, {
          side: 'provider',
          op: 'put',
          message: `commit status ${this.where()}: ${await res.text()}`,
        });
      return (await res.json()) as Record<string, unknown>;
    };
    let dataSetId: bigint;
    let addUrl = statusUrl;
    if (kind === 'create') {
      const c = await read(statusUrl);
      if (c.txStatus === 'rejected') return { state: 'rejected' };
      const created = sdk.SP.CreateDataSetSuccessSchema.safeParse(c);
      if (!created.success) return { state: 'pending' };
      dataSetId = created.data.dataSetId;
      addUrl = new URL(
        `/pdp/data-sets/${dataSetId}/pieces/added/${created.data.createMessageHash}`,
        statusUrl,
      ).toString();
    }
    const a = await read(addUrl);
    if (a.txStatus === 'rejected') return { state: 'rejected' };
    const added = sdk.SP.AddPiecesSuccessSchema.safeParse(a);
    if (!added.success) return { state: 'pending' };
    return { state: 'confirmed', dataSetId: added.data.dataSetId, txHash: added.data.txHash };
  }

  // ---- status ---------------------------------------------------------------------------------
  status(piece: Pick<PieceRef, 'pieceCid'>, o: StatusOptions = {}): Promise<ReplicaStatus> {
    return this.scoped(o, () => this.statusNow(piece, !!o.commitment));
  }

  private async statusNow(piece: Pick<PieceRef, 'pieceCid'>, withCommitment: boolean): Promise<ReplicaStatus> {
    const pieceCid = this.parse(piece.pieceCid);
    const base = { providerId: this.id, pieceCid: piece.pieceCid };
    const ds = await this.dataSet();
    if (ds.dataSetId === undefined) return { ...base, present: false, detail: 'no data set on this provider yet' };
    const dataSetId = ds.dataSetId;
    let live: boolean, info, head: bigint, lastProven: bigint;
    try {
      [live, info, head] = await Promise.all([
        sdk.PDPVerifier.dataSetLive(this.client, { dataSetId }),
        sdk.warm.getDataSet(this.client, { dataSetId }),
        sdk.actions.getBlockNumber(this.client, { cacheTime: 0 }),
      ]);
      if (!live || !info) return { ...base, present: false, detail: `data set ${dataSetId} is not live` };
      lastProven = await sdk.actions.readContract(this.client, {
        address: this.chain.contracts.pdp.address,
        abi: sdk.Abis.pdp,
        functionName: 'getDataSetLastProvenEpoch',
        args: [dataSetId],
      });
    } catch (err) {
      throw this.typed(err, 'status', piece.pieceCid);
    }
    const { ids, scheduled } = await this.livePieceIds(dataSetId, pieceCid, 'status');
    if (ids.length === 0)
      return { ...base, present: false, detail: scheduled ? 'scheduled for removal' : `not in data set ${dataSetId}` };
    const bytes = sdk.Piece.getSizeFromPieceCID(pieceCid);
    if (info.pdpEndEpoch !== 0n) {
      const expiresAt = this.dateOf(info.pdpEndEpoch, head);
      if (info.pdpEndEpoch <= head)
        return {
          ...base,
          present: false,
          bytes,
          expiresAt,
          detail: `storage service terminated; paid until epoch ${info.pdpEndEpoch}`,
        };
    }
    let faults;
    try {
      const since =
        lastProven + 1n > head - BigInt(this.cfg.faultLookbackEpochs)
          ? lastProven + 1n
          : head - BigInt(this.cfg.faultLookbackEpochs);
      faults = await sdk.actions.getContractEvents(this.client, {
        address: this.chain.contracts.fwss.address,
        abi: sdk.Abis.fwss,
        eventName: 'FaultRecord',
        args: { dataSetId },
        fromBlock: since > 0n ? since : 0n,
        toBlock: head,
      });
    } catch (err) {
      throw this.typed(err, 'status', piece.pieceCid);
    }
    const expiresAt = info.pdpEndEpoch !== 0n ? this.dateOf(info.pdpEndEpoch, head) : await this.expiry('status');
    const last = faults.at(-1);
    if (last) {
      const { periodsFaulted, deadline } = last.args as { periodsFaulted?: bigint; deadline?: bigint };
      return {
        ...base,
        present: false,
        bytes,
        expiresAt,
        detail: `proof fault: ${faults.length} fault record(s) since the last proof (epoch ${lastProven}); latest missed the deadline at epoch ${deadline} (${periodsFaulted} period(s))`,
      };
    }
    if (expiresAt && Date.parse(expiresAt) <= Date.now())
      return { ...base, present: false, bytes, expiresAt, detail: `payment runway ran out at ${expiresAt}` };
    // Asked for (a copy without one recorded): its PiecesAdded event, when still within the lookback.
    const commitment = withCommitment ? await this.findCommitment(dataSetId, pieceCid, ids) : undefined;
    return {
      ...base,
      present: true,
      bytes,
      expiresAt,
      detail: `data set ${dataSetId}, piece ${ids[0]}, last proven at epoch ${lastProven}`,
      ...(commitment ? { commitment } : {}),
    };
  }

  /** When the deposit runs out at the current lockup rate (undefined: nothing is being paid). */
  private async expiry(op: Op): Promise<string | undefined> {
    const { fundedUntil, head } = await this.runway(op);
    return fundedUntil === undefined ? undefined : this.dateOf(fundedUntil, head);
  }

  private async runway(op: Op): Promise<{ fundedUntil?: bigint; head: bigint; rate: bigint }> {
    try {
      const [a, head] = await Promise.all([
        sdk.Pay.accounts(this.client, { address: this.account.address }),
        sdk.actions.getBlockNumber(this.client, { cacheTime: 0 }),
      ]);
      if (a.lockupRate === 0n) return { head, rate: 0n };
      return {
        fundedUntil: a.lockupLastSettledAt + (a.funds - a.lockupCurrent) / a.lockupRate,
        head,
        rate: a.lockupRate,
      };
    } catch (err) {
      throw this.typed(err, op);
    }
  }

  private dateOf(epoch: bigint, head: bigint): string {
    const ms = Date.now() + Number(epoch - head) * EPOCH_MS;
    return new Date(Math.min(Math.max(ms, -8.64e15), 8.64e15)).toISOString();
  }

  // ---- read, locate, delete, renew ------------------------------------------------------------
  readRange(piece: Pick<PieceRef, 'pieceCid'>, o: RangeOptions = {}): Readable {
    const { offset = 0, length } = o;
    if (length === 0) return Readable.from([]);
    const self = this;
    return Readable.from(
      (async function* () {
        const serviceURL = await self.scoped(o, () => self.serviceUrl());
        const pieceCid = self.parse(piece.pieceCid);
        const size = sdk.Piece.getSizeFromPieceCID(pieceCid);
        if (offset >= size) return;
        const last = length === undefined ? size - 1 : Math.min(size, offset + length) - 1;
        yield* readPieceRange(new URL(`piece/${pieceCid.toString()}`, serviceURL), {
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

  locate(rootCid: string, o: CallOptions = {}): Promise<PieceRef | undefined> {
    return this.scoped(o, () => this.find(rootCid));
  }

  private async find(rootCid: string): Promise<PieceRef | undefined> {
    const ds = await this.dataSet();
    if (ds.dataSetId === undefined) return undefined;
    const dataSetId = ds.dataSetId;
    try {
      const scheduled = new Set(await sdk.PDPVerifier.getScheduledRemovals(this.client, { dataSetId }));
      for (let offset = 0n; ; offset += 100n) {
        const page = await sdk.PDPVerifier.getActivePieces(this.client, { dataSetId, offset, limit: 100n });
        const pieces = page.pieces.filter((p) => !scheduled.has(p.id));
        const metas = await sdk.actions.multicall(this.client, {
          allowFailure: false,
          contracts: pieces.map((p) =>
            sdk.warm.getAllPieceMetadataCall({ chain: this.chain, dataSetId, pieceId: p.id }),
          ),
        });
        for (let i = 0; i < pieces.length; i++) {
          const [keys, values] = metas[i] as readonly [readonly string[], readonly string[]];
          const meta = Object.fromEntries(keys.map((k, j) => [k, values[j]]));
          if (meta[META.root] === rootCid && meta[META.car] && meta[META.bytes]) {
            return {
              pieceCid: pieces[i]!.cid.toString(),
              carCid: meta[META.car]!,
              rootCid,
              bytes: Number(meta[META.bytes]),
            };
          }
        }
        if (!page.hasMore) return undefined;
      }
    } catch (err) {
      throw this.typed(err, 'locate');
    }
  }

  delete(piece: Pick<PieceRef, 'pieceCid'>, o: CallOptions = {}): Promise<void> {
    return this.scoped(o, () => this.remove(piece, o));
  }

  private async remove(piece: Pick<PieceRef, 'pieceCid'>, o: CallOptions): Promise<void> {
    const pieceCid = this.parse(piece.pieceCid);
    const ds = await this.dataSet();
    if (ds.dataSetId === undefined) return;
    const { ids } = await this.livePieceIds(ds.dataSetId, pieceCid, 'delete');
    const serviceURL = await this.serviceUrl();
    for (const pieceId of ids) {
      o.signal?.throwIfAborted();
      try {
        await sdk.SP.schedulePieceDeletion(this.client, {
          serviceURL,
          dataSetId: ds.dataSetId,
          pieceId,
          clientDataSetId: ds.clientDataSetId,
        });
      } catch (err) {
        throw this.typed(err, 'delete', piece.pieceCid);
      }
    }
  }

  renew(piece: Pick<PieceRef, 'pieceCid'>, o: CallOptions = {}): Promise<{ expiresAt?: string }> {
    return this.scoped(o, () => this.topUp(piece));
  }

  private async topUp(piece: Pick<PieceRef, 'pieceCid'>): Promise<{ expiresAt?: string }> {
    const pieceCid = this.parse(piece.pieceCid);
    const ds = await this.dataSet();
    if (ds.dataSetId === undefined || (await this.livePieceIds(ds.dataSetId, pieceCid, 'renew')).ids.length === 0) {
      throw new PieceNotFoundError(`cannot renew a piece that is not stored ${this.where(piece.pieceCid)}`);
    }
    const { fundedUntil, head, rate } = await this.runway('renew');
    if (fundedUntil === undefined) return {};
    const runway = fundedUntil - head;
    if (runway >= BigInt(this.cfg.minRunwayDays) * EPOCHS_PER_DAY) return { expiresAt: this.dateOf(fundedUntil, head) };
    // A deposit still in flight (ours, from an earlier attempt) would be paid twice: wait for it.
    const [latest, pendingCount] = await Promise.all([
      sdk.actions.getTransactionCount(this.client, { address: this.account.address, blockTag: 'latest' }),
      sdk.actions.getTransactionCount(this.client, { address: this.account.address, blockTag: 'pending' }),
    ]).catch((err: unknown) => {
      throw this.typed(err, 'renew');
    });
    if (pendingCount > latest)
      throw new RenewalPendingError(`a transaction of this wallet is not on chain yet ${this.where(piece.pieceCid)}`);
    const amount = rate * (BigInt(this.cfg.topUpRunwayDays) * EPOCHS_PER_DAY - (runway > 0n ? runway : 0n));
    let hash: Hex;
    try {
      hash = await sdk.Pay.depositWithPermit(this.client, { amount });
    } catch (err) {
      throw this.typed(err, 'renew', piece.pieceCid);
    }
    const receipt = await sdk.actions.getTransactionReceipt(this.client, { hash }).catch((err: unknown) => {
      if ((err as Error).name === 'TransactionReceiptNotFoundError') return undefined;
      throw this.typed(err, 'renew');
    });
    if (!receipt) throw new RenewalPendingError(`deposit ${hash} sent, not on chain yet ${this.where(piece.pieceCid)}`);
    if (receipt.status !== 'success') throw new StoreError(`deposit ${hash} reverted ${this.where(piece.pieceCid)}`);
    return { expiresAt: await this.expiry('renew') };
  }

  // ---- plumbing -------------------------------------------------------------------------------
  /** A GET to the provider, its body read whole within the request timeout. */
  private async request(url: URL | string, o: CallOptions & { op: Op }): Promise<Response> {
    try {
      return await fetchWithTimeout(url, { signal: o.signal }, this.cfg.requestTimeoutMs).then(async (res) => {
        const body = await res.arrayBuffer();
        return new Response(res.status === 204 || res.status === 304 ? null : body, {
          status: res.status,
          headers: res.headers,
        });
      });
    } catch (err) {
      if (o.signal?.aborted) throw err;
      throw this.typed(err, o.op);
    }
  }

  /** Map an SDK, viem, HTTP or network error onto the error hierarchy, keeping it as the cause. */
  private typed(err: unknown, op: Op, pieceCid?: string): ProvenantError {
    if (ProvenantError.is(err)) return err;
    const text = describe(err);
    const where = this.where(pieceCid);
    const status = httpStatusOf(err);
    if (/InsufficientLockupFunds|InsufficientBalance|ERC20InsufficientBalance|insufficient funds/i.test(text)) {
      return new InsufficientFundsError(`the wallet cannot pay for this storage ${where}: ${text}`, { cause: err });
    }
    if (/OperatorNotApproved|InvalidSignature|ERC2612InvalidSigner|not owned by/.test(text)) {
      return new ProviderAuthError(`the wallet is not authorised for this ${where}: ${text}`, { cause: err });
    }
    if (status !== undefined)
      return httpStatusError(status, {
        side: 'provider',
        op,
        message: `Filecoin provider or chain ${where}: ${text}`,
        cause: err,
      });
    if (
      isNetworkError(err) ||
      /TimeoutError|timed out|took too long|fetch failed|ECONNREFUSED|socket hang up/i.test(text)
    ) {
      return new ProviderUnavailableError(`Filecoin chain or provider unavailable ${where}: ${text}`, { cause: err });
    }
    return providerFailure(op, `${op} failed ${where}: ${text}`, err);
  }
}

/** Every message in an error's cause chain, viem's short message and details included. */
function describe(err: unknown): string {
  const parts: string[] = [];
  let e = err as
    { message?: string; shortMessage?: string; details?: string; name?: string; cause?: unknown } | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 8; depth++, e = e.cause as typeof e) {
    for (const s of [e.name, e.shortMessage, e.details, e.message])
      if (s && !parts.some((p) => p.includes(s))) parts.push(s);
  }
  if (parts.length === 0) parts.push(String(err));
  return parts.join(': ').replace(/\s+/g, ' ').slice(0, 2000);
}

/** An HTTP status from viem's HttpRequestError or iso-web's HttpError, anywhere in the chain. */
function httpStatusOf(err: unknown): number | undefined {
  let e = err as { status?: unknown; response?: { status?: unknown }; cause?: unknown } | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 8; depth++, e = e.cause as typeof e) {
    if (typeof e.status === 'number') return e.status;
    if (typeof e.response?.status === 'number') return e.response.status;
  }
  return undefined;
}
