/** Configuring the Filecoin providers: defaults, refused secrets and values, building from config. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LotusProvider } from '../../../activities/providers/lotus.js';
import { createProvider } from '../../../activities/providers/registry.js';
import { SynapseProvider } from '../../../activities/providers/synapse.js';
import { ProviderSchema } from '../../../config/schema.js';

const synapse = {
  kind: 'synapse',
  id: 'foc',
  rpcUrl: 'http://127.0.0.1:1/rpc/v1',
  privateKeyEnv: 'PV_TEST_FOC_KEY',
  providerId: 4,
};
const lotus = {
  kind: 'lotus',
  id: 'sp',
  apiUrl: 'http://127.0.0.1:1/rpc/v1',
  minerId: 'f01234',
  retrievalUrl: 'http://127.0.0.1:2',
};
const KEY = `0x${'ab'.repeat(32)}`;

describe('filecoin provider config', () => {
  it('fills the synapse defaults in the schema', () => {
    const c = ProviderSchema.parse(synapse);
    assert.equal(c.kind, 'synapse');
    if (c.kind !== 'synapse') return;
    assert.equal(c.network, 'mainnet');
    assert.equal(c.minRunwayDays, 45);
    assert.equal(c.topUpRunwayDays, 180);
    assert.equal(c.maxPieceBytes, 1_065_353_216);
    assert.equal(c.dataSetLabel, 'provenant');
  });

  it('refuses a private key written into the config, and a top-up below the minimum runway', () => {
    assert.equal(ProviderSchema.safeParse({ ...synapse, privateKey: KEY }).success, false);
    assert.equal(
      ProviderSchema.safeParse({ ...synapse, privateKeyEnv: KEY }).success,
      false,
      'the name of a variable, not a key',
    );
    assert.equal(ProviderSchema.safeParse({ ...synapse, minRunwayDays: 60, topUpRunwayDays: 30 }).success, false);
  });

  it('fills the lotus defaults and refuses a token in the config or a miner that is not an ID address', () => {
    const c = ProviderSchema.parse(lotus);
    if (c.kind !== 'lotus') return assert.fail('not lotus');
    assert.equal(c.dealDurationEpochs, 540 * 2880);
    assert.equal(c.verifiedDeal, true);
    assert.equal(ProviderSchema.safeParse({ ...lotus, token: 'eyJhbGciOi' }).success, false);
    assert.equal(ProviderSchema.safeParse({ ...lotus, minerId: 't3abc' }).success, false);
    assert.equal(
      ProviderSchema.safeParse({ ...lotus, dealDurationEpochs: 2880 }).success,
      false,
      'shorter than the market allows',
    );
  });

  it('builds both providers from config, reading secrets from the environment named there', () => {
    assert.ok(createProvider(ProviderSchema.parse(synapse), { PV_TEST_FOC_KEY: KEY }) instanceof SynapseProvider);
    assert.ok(createProvider(ProviderSchema.parse(lotus), {}) instanceof LotusProvider);
    assert.ok(
      createProvider(ProviderSchema.parse({ ...lotus, tokenEnv: 'PV_TEST_TOKEN' }), { PV_TEST_TOKEN: 't' }) instanceof
        LotusProvider,
    );
    assert.throws(
      () => createProvider(ProviderSchema.parse(synapse), {}),
      (e: Error) => e.name === 'ConfigError',
    );
    assert.throws(
      () => createProvider(ProviderSchema.parse({ ...lotus, tokenEnv: 'PV_TEST_TOKEN' }), {}),
      (e: Error) => e.name === 'ConfigError',
    );
  });
});
