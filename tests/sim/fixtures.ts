/** Providers wired to the simulated Filecoin network, configured through the schema as an operator would. */
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { LotusProvider } from '../../activities/providers/lotus.js';
import { SynapseProvider } from '../../activities/providers/synapse.js';
import {
  LotusProviderSchema,
  SynapseProviderSchema,
  type LotusProviderConfig,
  type SynapseProviderConfig,
} from '../../config/schema.js';
import type { FilecoinSim } from './filecoin-sim.js';

const USDFC = 10n ** 18n;

/** A fresh wallet on the simulated chain: USDFC in the wallet, some deposited, FWSS approved. */
export function simWallet(sim: FilecoinSim, o: { wallet?: bigint; deposit?: bigint; approveOperator?: boolean } = {}) {
  const key = generatePrivateKey();
  const account = privateKeyToAccount(key);
  sim.chain.fund(account.address, {
    wallet: o.wallet ?? 1000n * USDFC,
    deposit: o.deposit ?? 10n * USDFC,
    approveOperator: o.approveOperator,
  });
  return { key, address: account.address };
}

export function synapseProvider(
  sim: FilecoinSim,
  over: Partial<SynapseProviderConfig> = {},
  wallet: { key: string } = simWallet(sim),
): SynapseProvider {
  const env = { SIM_FOC_KEY: wallet.key };
  const cfg = SynapseProviderSchema.parse({
    kind: 'synapse',
    id: 'foc-sim',
    network: 'calibration',
    rpcUrl: sim.rpcUrl,
    privateKeyEnv: 'SIM_FOC_KEY',
    providerId: Number(sim.providerId),
    requestTimeoutMs: 5_000,
    ...over,
  });
  return new SynapseProvider(cfg, env);
}

/** A Lotus provider on the simulated node; `token: null` configures none. */
export function lotusProvider(
  sim: FilecoinSim,
  over: Partial<LotusProviderConfig> = {},
  token: string | null = sim.lotus.token,
): LotusProvider {
  const env: NodeJS.ProcessEnv = token === null ? {} : { SIM_LOTUS_TOKEN: token };
  const cfg = LotusProviderSchema.parse({
    kind: 'lotus',
    id: 'lotus-sim',
    apiUrl: sim.rpcUrl,
    minerId: sim.lotus.minerId,
    retrievalUrl: sim.retrievalUrl,
    requestTimeoutMs: 5_000,
    ...(token === null ? {} : { tokenEnv: 'SIM_LOTUS_TOKEN' }),
    ...over,
  });
  return new LotusProvider(cfg, env);
}
