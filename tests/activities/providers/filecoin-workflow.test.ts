/**
 * End to end on a real Temporal dev server with the Filecoin providers on the SIMULATED Filecoin
 * network (tests/sim): one dataset archived to Filecoin Onchain Cloud (Synapse/PDP) and to a
 * Lotus miner (deals), then a byte-identical restore from each alone, the wallet key and the
 * Lotus token never in the workflow history.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Config } from '../../../config/schema.js';
import { startArchive, startRestore } from '../../../workers/client.js';
import type { ArchiveSummary } from '../../../shared/types.js';
import { bytesOf, readTree, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../../helpers/env.js';
import { FilecoinSim } from '../../sim/filecoin-sim.js';
import { simWallet } from '../../sim/fixtures.js';

const MiB = 1024 * 1024;
const PROVIDERS = ['foc', 'lotus'] as const;
const KEY_ENV = 'PV_SIM_FOC_KEY';
const TOKEN_ENV = 'PV_SIM_LOTUS_TOKEN';

describe('one dataset on simulated Filecoin: Onchain Cloud (Synapse) and Lotus deals', () => {
  let env: TestWorkflowEnvironment | undefined;
  let sim: FilecoinSim;
  let data: string;
  let config: Config;
  let key: string;
  let summary: ArchiveSummary | undefined;
  const src = () => path.join(data, 'src');

  before(async (t) => {
    env = await startTemporal(t as never);
    sim = await FilecoinSim.start();
    data = tmpDir();
    writeTree(src(), {
      'weights/shard-0.bin': bytesOf(3 * MiB + 5, 'fw0'),
      'config.json': JSON.stringify({ layers: 2 }),
      'notes.txt': 'archived on a simulated Filecoin network',
    });
    // As an operator would: secrets in the environment, the config only names the variables.
    key = simWallet(sim).key;
    process.env[KEY_ENV] = key;
    process.env[TOKEN_ENV] = sim.lotus.token;
    config = testConfig(path.join(data, 'home'), {
      replication: { copies: 2 },
      providers: [
        {
          kind: 'synapse',
          id: 'foc',
          network: 'calibration',
          rpcUrl: sim.rpcUrl,
          privateKeyEnv: KEY_ENV,
          providerId: Number(sim.providerId),
        },
        {
          kind: 'lotus',
          id: 'lotus',
          apiUrl: sim.rpcUrl,
          tokenEnv: TOKEN_ENV,
          minerId: sim.lotus.minerId,
          retrievalUrl: sim.retrievalUrl,
        },
      ],
    });
  });
  after(async () => {
    await env?.teardown();
    await sim?.stop();
    delete process.env[KEY_ENV];
    delete process.env[TOKEN_ENV];
  });

  it('archives one copy on each, with no secret in the workflow history', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const e = env;
    const history = await withWorker(e, config, async () => {
      const { handle } = await startArchive(e.client, config, {
        dir: src(),
        datasetId: 'filecoin-sim',
        noSteward: true,
      });
      summary = await handle.result();
      return JSON.stringify(await handle.fetchHistory());
    });
    assert.ok(summary!.shards >= 2, `a 3 MiB file over 2 MiB shards needs several shards, got ${summary!.shards}`);
    assert.deepEqual(Object.keys(summary!.replicas).sort(), [...PROVIDERS].sort());
    for (const id of PROVIDERS) assert.equal(summary!.replicas[id], summary!.shards, `every shard on ${id}`);
    assert.deepEqual(summary!.failovers, []);
    assert.ok(
      sim.chain.dataSetIds().length >= 1 && sim.lotus.dealIds().length >= summary!.shards,
      'data set and deals on the simulated chain',
    );
    for (const secret of [key, key.slice(2), sim.lotus.token])
      assert.ok(!history.includes(secret), 'secrets never reach the workflow history');
  });

  for (const id of PROVIDERS) {
    it(`restores byte-identical from ${id} alone`, async (t) => {
      if (!env) return t.skip('no Temporal server');
      if (!summary) return t.skip('the archive test did not run');
      const e = env;
      const target = path.join(data, `restored-${id}`);
      const restored = await withWorker(e, config, async () =>
        (
          await startRestore(e.client, config, {
            manifestCid: summary!.manifestCid,
            target,
            force: false,
            providerIds: [id],
          })
        ).result(),
      );
      assert.deepEqual(Object.keys(restored.sources), [id]);
      assert.deepEqual(restored.badReplicas, []);
      assert.deepEqual(readTree(target), readTree(src()));
    });
  }
});
