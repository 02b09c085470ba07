/**
 * Secrets never enter workflow history (issue 12, item 5): one full run — archive from an HTTP
 * source that wants an Authorization header, to every provider kind that takes credentials (MinIO
 * with an access key and secret, Kubo with API authorization, Filecoin Onchain Cloud with a wallet
 * key and Lotus with an API token on the simulated network) plus a local directory, a steward
 * round, a restore — then the raw history of every workflow in the namespace is read, every
 * payload's bytes decoded, and no credential value is found in it: not as it is, not in base64.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ConfigInput } from '../../config/schema.js';
import type { StewardStatus } from '../../shared/types.js';
import { startArchive, startRestore } from '../../workers/client.js';
import { verifyNowUpdate } from '../../workflows/index.js';
import { bytesOf, readTree, startTemporal, testConfig, tmpDir, withWorker } from '../helpers/env.js';
import { recordReliability } from '../helpers/reliability.js';
import { KuboServer, MinioServer, serverOr, type Started } from '../helpers/servers.js';
import { FilecoinSim } from '../sim/filecoin-sim.js';
import { simWallet } from '../sim/fixtures.js';

const MiB = 1024 * 1024;
const tag = () => crypto.randomBytes(9).toString('hex');

/** Every string, and every byte field decoded as UTF-8 (payload data, memo, headers…), found in `v`. */
function texts(v: unknown, out: string[] = [], seen = new Set<object>()): string[] {
  if (typeof v === 'string') out.push(v);
  else if (v instanceof Uint8Array) out.push(Buffer.from(v).toString('utf8'), Buffer.from(v).toString('latin1'));
  else if (v && typeof v === 'object' && !seen.has(v)) {
    seen.add(v);
    for (const x of Array.isArray(v) ? v : Object.values(v)) texts(x, out, seen);
  }
  return out;
}

describe('secrets: no credential in the raw history of any workflow of a full run', () => {
  let env: TestWorkflowEnvironment | undefined;
  let minio: Started<MinioServer> | undefined;
  let kubo: Started<KuboServer> | undefined;
  let sim: FilecoinSim | undefined;
  let web: http.Server | undefined;
  const kuboSecret = `pv-kubo-secret-${tag()}`;
  const httpSecret = `pv-http-secret-${tag()}`;
  const FILES: Record<string, Buffer> = {
    'weights.bin': bytesOf(3 * MiB + 11, 'secrets-w'),
    'config.json': Buffer.from('{"secret":"none here"}'),
  };
  const names: string[] = [];

  before(async (t) => {
    env = await startTemporal(t as never);
    [minio, kubo, sim] = await Promise.all([
      MinioServer.start(),
      KuboServer.start({ authSecret: kuboSecret }),
      FilecoinSim.start(),
    ]);
    // The HTTP source answers only with the right Authorization header.
    web = http.createServer((req, res) => {
      if (req.headers.authorization !== `Bearer ${httpSecret}`) return void res.writeHead(401).end();
      const body = FILES[new URL(req.url ?? '/', 'http://x').pathname.slice(1)];
      if (!body) return void res.writeHead(404).end();
      const range = req.headers.range?.match(/^bytes=(\d+)-(\d*)$/);
      const start = range ? Number(range[1]) : 0;
      const end = range && range[2] ? Math.min(Number(range[2]), body.length - 1) : body.length - 1;
      res.writeHead(range ? 206 : 200, {
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
    await env?.teardown();
    if (minio?.ok) await minio.server.stop();
    if (kubo?.ok) await kubo.server.stop();
    await sim?.stop();
    await new Promise<void>((resolve) => (web ? web.close(() => resolve()) : resolve()));
    for (const n of names) delete process.env[n];
  });

  it('archives, stewards and restores with every credentialed provider kind; no secret in any history', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const m = serverOr(t, minio);
    const k = serverOr(t, kubo);
    if (!m || !k || !sim) return;
    const e = env;
    const data = tmpDir('pv-secrets-');
    const suffix = tag().toUpperCase();
    const envOf = (name: string, value: string) => {
      const n = `PV_SECRETS_${name}_${suffix}`;
      process.env[n] = value;
      names.push(n);
      return n;
    };
    const s3 = m.exportCredentials();
    names.push(s3.accessKeyIdEnv, s3.secretAccessKeyEnv);
    const wallet = simWallet(sim).key;
    const secrets: Record<string, string> = {
      's3 access key id': m.accessKeyId,
      's3 secret access key': m.secretAccessKey,
      'kubo authorization': `Bearer ${kuboSecret}`,
      'kubo secret': kuboSecret,
      'http authorization': `Bearer ${httpSecret}`,
      'http secret': httpSecret,
      'synapse private key': wallet,
      'synapse private key (hex)': wallet.slice(2),
      'lotus token': sim.lotus.token,
    };
    const config = testConfig(path.join(data, 'home'), {
      replication: { copies: 5 },
      steward: { verifyEvery: '1 hour' },
      providers: [
        { kind: 'local', id: 'local', path: path.join(data, 'local') },
        {
          kind: 's3',
          id: 'minio',
          endpoint: m.endpoint,
          bucket: await m.createBucket(),
          forcePathStyle: true,
          ...s3,
        },
        { kind: 'kubo', id: 'kubo', apiUrl: k.apiUrl, authorizationEnv: envOf('KUBO_AUTH', `Bearer ${kuboSecret}`) },
        {
          kind: 'synapse',
          id: 'foc',
          network: 'calibration',
          rpcUrl: sim.rpcUrl,
          privateKeyEnv: envOf('FOC_KEY', wallet),
          providerId: Number(sim.providerId),
        },
        {
          kind: 'lotus',
          id: 'lotus',
          apiUrl: sim.rpcUrl,
          tokenEnv: envOf('LOTUS_TOKEN', sim.lotus.token),
          minerId: sim.lotus.minerId,
          retrievalUrl: sim.retrievalUrl,
        },
      ],
    } as Partial<ConfigInput>);
    const base = `http://127.0.0.1:${(web!.address() as { port: number }).port}`;
    const httpAuthEnv = envOf('HTTP_AUTH', `Bearer ${httpSecret}`);
    const target = path.join(data, 'restored');
    const { summary, round, restored } = await withWorker(e, config, async () => {
      const { handle } = await startArchive(e.client, config, {
        source: { kind: 'http', urls: Object.keys(FILES).map((f) => `${base}/${f}`), authorizationEnv: httpAuthEnv },
        datasetId: 'secrets',
      });
      const summary = await handle.result();
      const steward = e.client.workflow.getHandle(summary.stewardWorkflowId!);
      const round = await steward.executeUpdate<StewardStatus, []>(verifyNowUpdate.name);
      const restored = await (
        await startRestore(e.client, config, { manifestCid: summary.manifestCid, target, force: false })
      ).result();
      return { summary, round, restored };
    });
    for (const id of ['local', 'minio', 'kubo', 'foc', 'lotus'])
      assert.equal(summary.replicas[id], summary.shards, `every shard on ${id}`);
    assert.equal(round.health, 'healthy', JSON.stringify(round.lastRoundError));
    assert.ok(round.rounds >= 1);
    const got = readTree(target);
    const lost = Object.entries(FILES).filter(([f, b]) => !got.get(f)?.equals(b)).length;
    assert.equal(lost, 0, 'restored byte-identical');
    assert.ok(Object.keys(restored.sources).length >= 1);

    // Every workflow in the namespace (archive, its children, the steward, the restore…), raw.
    const corpus: string[] = [];
    let histories = 0;
    for await (const w of e.client.workflow.list()) {
      const history = await e.client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
      texts(history, corpus);
      histories++;
    }
    assert.ok(histories >= 3, `${histories} workflow histories read`);
    const all = corpus.join('\n');
    // The histories were read and decoded: the variables' names are there (only the names).
    assert.ok(all.includes(httpAuthEnv), 'the HTTP source names its variable in the archive input');
    assert.ok(all.includes(summary.manifestCid), 'payloads decoded');
    const lower = all.toLowerCase();
    let checked = 0;
    for (const [what, value] of Object.entries(secrets)) {
      const v = Buffer.from(value);
      for (const [encoding, needle] of [
        ['as is', value],
        ['base64', v.toString('base64')],
        ['base64url', v.toString('base64url')],
        ['hex', v.toString('hex')],
      ] as const) {
        assert.ok(!lower.includes(needle.toLowerCase()), `${what} (${encoding}) found in workflow history`);
        checked++;
      }
    }
    recordReliability({
      suite: 'secrets (raw history)',
      trials: histories,
      faultsInjected: 0,
      faultsDetected: 0,
      dataLost: lost,
    });
    assert.ok(checked >= 36);
  });
});
