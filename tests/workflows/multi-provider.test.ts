/**
 * End to end on a real Temporal dev server with every kind of provider at once: a local
 * directory, S3 on a real MinIO, IPFS on a real Kubo daemon, and Filecoin Onchain Cloud (Synapse)
 * and Lotus deals on the local *simulated* Filecoin network. One dataset, five copies (one on
 * each), then a byte-identical restore from each provider alone.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Config } from '../../config/schema.js';
import { startArchive, startRestore } from '../../workers/client.js';
import type { ArchiveSummary } from '../../shared/types.js';
import { bytesOf, readTree, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import { KuboServer, MinioServer, serverOr, type Started } from '../helpers/servers.js';
import { FilecoinSim } from '../sim/filecoin-sim.js';
import { simWallet } from '../sim/fixtures.js';

const MiB = 1024 * 1024;
const PROVIDERS = ['nas', 'minio', 'kubo', 'foc', 'lotus'] as const;
const KEY_ENV = 'PV_MULTI_FOC_KEY';
const TOKEN_ENV = 'PV_MULTI_LOTUS_TOKEN';

describe('one dataset on local, S3 (MinIO), IPFS (Kubo) and simulated Filecoin (Synapse PDP + Lotus)', () => {
  let sim: FilecoinSim | undefined;
  let simKey = '';
  let env: TestWorkflowEnvironment | undefined;
  let minio: Started<MinioServer> | undefined;
  let kubo: Started<KuboServer> | undefined;
  let data: string;
  let config: Config | undefined;
  let summary: ArchiveSummary | undefined;
  const src = () => path.join(data, 'src');

  before(async (t) => {
    env = await startTemporal(t as never);
    [minio, kubo] = await Promise.all([MinioServer.start(), KuboServer.start()]);
    sim = await FilecoinSim.start();
    data = tmpDir();
    writeTree(src(), {
      'empty.bin': Buffer.alloc(0),
      'weights/shard-0.bin': bytesOf(5 * MiB + 3, 'w0'),
      'weights/shard-1.bin': bytesOf(MiB, 'w1'),
      'config.json': JSON.stringify({ layers: 2 }),
      'ünïcödé/名前.txt': 'names survive',
    });
    if (!minio.ok || !kubo.ok) return;
    const bucket = await minio.server.createBucket();
    // As an operator would: credentials in the environment, the config only names the variables.
    const credentials = minio.server.exportCredentials();
    simKey = simWallet(sim).key;
    process.env[KEY_ENV] = simKey;
    process.env[TOKEN_ENV] = sim.lotus.token;
    config = testConfig(path.join(data, 'home'), {
      replication: { copies: PROVIDERS.length },
      providers: [
        { kind: 'local', id: 'nas', path: path.join(data, 'nas') },
        {
          kind: 's3',
          id: 'minio',
          endpoint: minio.server.endpoint,
          bucket,
          prefix: 'archive/',
          forcePathStyle: true,
          ...credentials,
        },
        { kind: 'kubo', id: 'kubo', apiUrl: kubo.server.apiUrl },
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
    if (minio?.ok) await minio.server.stop();
    if (kubo?.ok) await kubo.server.stop();
    await sim?.stop();
    delete process.env[KEY_ENV];
    delete process.env[TOKEN_ENV];
  });

  /** Everything the tests need, or undefined after skipping (failing under PROVENANT_REQUIRE_ALL=1). */
  function ready(t: { skip(m: string): void }) {
    if (!env) {
      t.skip('no Temporal server');
      return undefined;
    }
    const m = serverOr(t, minio);
    const k = m && serverOr(t, kubo);
    return k && config ? { env, config, minio: m } : undefined;
  }

  it('archives five copies, one on each provider, with no credentials in the workflow history', async (t) => {
    const r = ready(t);
    if (!r) return;
    const { handle, history } = await withWorker(r.env, r.config, async () => {
      const { handle } = await startArchive(r.env.client, r.config, {
        dir: src(),
        datasetId: 'multi',
        noSteward: true,
      });
      summary = await handle.result();
      return { handle, history: JSON.stringify(await handle.fetchHistory()) };
    });
    assert.ok(handle.workflowId);
    assert.ok(summary!.shards >= 3, `a 5 MiB file over 2 MiB shards needs several shards, got ${summary!.shards}`);
    assert.equal(summary!.copies, PROVIDERS.length);
    assert.deepEqual(Object.keys(summary!.replicas).sort(), [...PROVIDERS].sort());
    for (const id of PROVIDERS) assert.equal(summary!.replicas[id], summary!.shards, `every shard on ${id}`);
    assert.deepEqual([...summary!.manifestProviders].sort(), [...PROVIDERS].sort());
    assert.deepEqual(summary!.failovers, []);
    for (const secret of [r.minio.accessKeyId, r.minio.secretAccessKey, simKey, simKey.slice(2), sim!.lotus.token]) {
      assert.ok(!history.includes(secret), 'credentials never reach the workflow history');
    }
  });

  for (const id of PROVIDERS) {
    it(`restores byte-identical from ${id} alone`, async (t) => {
      const r = ready(t);
      if (!r) return;
      if (!summary) return t.skip('the archive test did not run');
      const target = path.join(data, `restored-${id}`);
      const restored = await withWorker(r.env, r.config, async () =>
        (
          await startRestore(r.env.client, r.config, {
            manifestCid: summary!.manifestCid,
            target,
            force: false,
            providerIds: [id],
          })
        ).result(),
      );
      assert.deepEqual(Object.keys(restored.sources), [id], 'every shard came from that provider');
      assert.deepEqual(restored.badReplicas, []);
      assert.equal(restored.shards, summary!.shards);
      assert.deepEqual(readTree(target), readTree(src()));
    });
  }
});
