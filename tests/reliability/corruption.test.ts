/**
 * The corruption matrix (issue 12, item 3): at each provider kind — a local directory, MinIO (S3),
 * Kubo (IPFS), and the simulated Filecoin providers (Onchain Cloud through Synapse, Lotus deals) —
 * the stored bytes of one replica of a shard are bit-flipped, truncated, deleted, swapped for
 * another shard, or replaced by a stale copy (a piece of an earlier archive). One steward round
 * (verifyNowUpdate) on the real Temporal server must find each one (spot checks that read every
 * block: the achieved detection probability it records is 1), repair it from the good copy and
 * audit both; a second round finds everything healthy, and the repaired provider alone restores
 * the tree byte-identical. Then one replica of every shard is bit-flipped and a restore still
 * succeeds from the good ones, naming each bad replica.
 *
 * How each kind's stored bytes are reached:
 *   local   <path>/pieces/<pieceCid>.car on disk;
 *   s3      the object <prefix>pieces/<pieceCid>.car, put anew (with its metadata) with the AWS SDK;
 *   kubo    the piece's MFS index entry (<mfsDir>/pieces/<pieceCid>.json → file CID): other bytes
 *           are added and pinned and the entry pointed at them (deletion unpins the file);
 *   synapse the simulated PDP provider's parked bytes, lotus the simulated miner's piece bytes:
 *           the simulator keeps them in memory (tests/sim), found by their content.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { CarIndexer } from '@ipld/car/indexer';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readAudit, readReplicaTable } from '../../activities/steward/activities.js';
import type { Config, ConfigInput, ProviderConfig } from '../../config/schema.js';
import type { StewardReplica, StewardStatus } from '../../shared/types.js';
import { startArchive, startRestore } from '../../workers/client.js';
import { stewardStatusQuery, verifyNowUpdate } from '../../workflows/index.js';
import { bytesOf, readTree, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import { recordReliability } from '../helpers/reliability.js';
import { KuboServer, MinioServer, serverOr, type Started } from '../helpers/servers.js';
import { FilecoinSim } from '../sim/filecoin-sim.js';
import { simWallet } from '../sim/fixtures.js';

const MiB = 1024 * 1024;
/** The provider under test is 'x'; 'good' (a local directory) keeps the other copy. */
const X = 'x';

/** Reaches the bytes a provider stores for a piece, beneath the provider's own API. */
interface Bytes {
  read(pieceCid: string): Promise<Buffer>;
  write(pieceCid: string, bytes: Buffer): Promise<void>;
  remove(pieceCid: string): Promise<void>;
}

type Fault = 'bit flip' | 'truncation' | 'deletion' | 'swapped shard' | 'stale copy';
const FAULTS: Fault[] = ['bit flip', 'truncation', 'deletion', 'swapped shard', 'stale copy'];
/** What verification must call each fault. */
const EXPECTED: Record<Fault, string> = {
  'bit flip': 'corrupt',
  truncation: 'corrupt',
  deletion: 'missing',
  'swapped shard': 'corrupt',
  'stale copy': 'corrupt',
};

/** The CAR with one bit flipped inside its first data block larger than 1,000 bytes. */
async function flipBit(car: Buffer): Promise<Buffer> {
  const out = Buffer.from(car);
  const indexer = await CarIndexer.fromBytes(out);
  for await (const e of indexer) {
    if (e.blockLength > 1000) {
      out[e.blockOffset + 500]! ^= 0x10;
      return out;
    }
  }
  throw new Error('no data block in the CAR');
}

function localBytes(dir: string): Bytes {
  const file = (cid: string) => path.join(dir, 'pieces', `${cid}.car`);
  return {
    read: async (cid) => fs.readFileSync(file(cid)),
    write: async (cid, b) => fs.writeFileSync(file(cid), b),
    remove: async (cid) => fs.rmSync(file(cid)),
  };
}

function s3Bytes(minio: MinioServer, bucket: string): Bytes {
  const key = (cid: string) => `pieces/${cid}.car`;
  return {
    read: async (cid) => {
      const c = minio.client();
      try {
        const r = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key(cid) }));
        return Buffer.from(await r.Body!.transformToByteArray());
      } finally {
        c.destroy();
      }
    },
    // The object put anew, with the metadata Provenant gave it (as a faulty store would keep it).
    write: async (cid, b) => {
      const c = minio.client();
      try {
        const h = await c.send(new HeadObjectCommand({ Bucket: bucket, Key: key(cid) }));
        await c.send(new PutObjectCommand({ Bucket: bucket, Key: key(cid), Body: b, Metadata: h.Metadata }));
      } finally {
        c.destroy();
      }
    },
    remove: async (cid) => {
      const c = minio.client();
      try {
        await c.send(new DeleteObjectCommand({ Bucket: bucket, Key: key(cid) }));
      } finally {
        c.destroy();
      }
    },
  };
}

/** Kubo: the piece is whatever file its MFS index entry names (see activities/providers/kubo.ts). */
function kuboBytes(apiUrl: string, mfsDir = '/provenant'): Bytes {
  const rpc = async (cmd: string, params: Record<string, string>, body?: Buffer) => {
    let init: RequestInit = { method: 'POST' };
    if (body) {
      const form = new FormData();
      form.append('file', new Blob([new Uint8Array(body)]), 'data');
      init = { method: 'POST', body: form };
    }
    const res = await fetch(`${apiUrl}/api/v0/${cmd}?${new URLSearchParams(params)}`, init);
    const out = Buffer.from(await res.arrayBuffer());
    if (!res.ok) throw new Error(`kubo ${cmd}: ${res.status} ${out.toString()}`);
    return out;
  };
  const indexPath = (cid: string) => `${mfsDir}/pieces/${cid}.json`;
  const entry = async (cid: string) =>
    JSON.parse((await rpc('files/read', { arg: indexPath(cid) })).toString()) as { fileCid: string; bytes: number };
  return {
    read: async (cid) => rpc('cat', { arg: (await entry(cid)).fileCid }),
    write: async (cid, b) => {
      const e = await entry(cid);
      const added = (await rpc('add', { pin: 'true', 'raw-leaves': 'true', 'cid-version': '1', quieter: 'true' }, b))
        .toString()
        .trim()
        .split('\n')
        .pop()!;
      const fileCid = (JSON.parse(added) as { Hash: string }).Hash;
      const next = JSON.stringify({ ...e, fileCid, bytes: b.length });
      await rpc('files/write', { arg: indexPath(cid), create: 'true', truncate: 'true' }, Buffer.from(next));
    },
    remove: async (cid) => {
      await rpc('pin/rm', { arg: (await entry(cid)).fileCid });
      await rpc('repo/gc', {});
    },
  };
}

/**
 * The simulator's in-memory piece bytes (private fields of tests/sim, read with Reflect): the
 * PDP provider's `parked` (piece CID → bytes) and the Lotus miner's `pieces` (v1 piece CID →
 * bytes, served zero-padded). Pieces are found by their content, read from the good copy.
 */
function simBytes(kind: 'synapse' | 'lotus', sim: FilecoinSim, good: Bytes): Bytes {
  type Entry = Buffer | { bytes: Buffer; padded: bigint };
  const map = (kind === 'synapse' ? Reflect.get(sim, 'parked') : Reflect.get(sim.lotus, 'pieces')) as Map<
    string,
    Entry
  >;
  assert.ok(map instanceof Map, `the simulator keeps its ${kind} pieces in a Map`);
  const bytesOfEntry = (e: Entry) => (Buffer.isBuffer(e) ? e : e.bytes);
  // Found once per piece, before any fault: a swapped shard makes two entries hold the same bytes.
  const keys = new Map<string, string>();
  const keyOf = async (cid: string) => {
    const known = keys.get(cid);
    if (known) return known;
    const want = await good.read(cid);
    for (const [k, e] of map) {
      if (!bytesOfEntry(e).equals(want) || [...keys.values()].includes(k)) continue;
      keys.set(cid, k);
      return k;
    }
    throw new Error(`piece ${cid} not held by the simulated ${kind} provider`);
  };
  return {
    read: async (cid) => Buffer.from(bytesOfEntry(map.get(await keyOf(cid))!)),
    write: async (cid, b) => {
      const k = await keyOf(cid);
      const e = map.get(k)!;
      map.set(k, Buffer.isBuffer(e) ? b : { ...e, bytes: b });
    },
    remove: async (cid) => void map.delete(await keyOf(cid)),
  };
}

/** A workflow's result, or its failure with the causes spelled out. */
async function resultOf<T>(h: { result(): Promise<T> }): Promise<T> {
  return h.result().catch((err: Error) => {
    const why: string[] = [];
    for (let e: Error | undefined = err; e; e = e.cause as Error | undefined) why.push(e.message);
    throw new Error(why.join(': '), { cause: err });
  });
}

async function replicasOf(config: Config, s: StewardStatus): Promise<StewardReplica[]> {
  assert.ok(s.replicaTable?.tableCid, 'the status names the replica table');
  return (await readReplicaTable(config, s.replicaTable.tableCid)).replicas;
}

interface Kind {
  name: 'local' | 's3' | 'kubo' | 'synapse' | 'lotus';
  /** The provider config of 'x' and the way to its bytes, or undefined when its server is missing. */
  setup(
    t: { skip(m: string): void },
    dir: string,
    good: Bytes,
  ): Promise<{ cfg: ProviderConfig; bytes: Bytes } | undefined>;
}

describe('corruption matrix: every fault at every provider kind is detected, repaired, audited', () => {
  let env: TestWorkflowEnvironment | undefined;
  let minio: Started<MinioServer> | undefined;
  let kubo: Started<KuboServer> | undefined;
  let sim: FilecoinSim | undefined;
  let data: string;
  const KEY_ENV = 'PV_CORRUPTION_FOC_KEY';
  const TOKEN_ENV = 'PV_CORRUPTION_LOTUS_TOKEN';

  before(async (t) => {
    env = await startTemporal(t as never);
    [minio, kubo, sim] = await Promise.all([MinioServer.start(), KuboServer.start(), FilecoinSim.start()]);
    data = tmpDir('pv-corruption-');
    // Same paths, other contents: the earlier archive whose pieces are the stale copies.
    const tree = (tag: string) => ({
      'weights/a.bin': bytesOf(7 * MiB + 17, `corr-a-${tag}`),
      'weights/b.bin': bytesOf(3 * MiB + 5, `corr-b-${tag}`),
      'config.json': JSON.stringify({ tag }),
    });
    writeTree(path.join(data, 'src'), tree('new'));
    writeTree(path.join(data, 'src-old'), tree('old'));
    // Its own pieces: the simulated providers are shared by the tests of this file.
    writeTree(path.join(data, 'src-kept'), { 'a.bin': bytesOf(3 * MiB, 'corr-kept') });
  });
  after(async () => {
    await env?.teardown();
    if (minio?.ok) await minio.server.stop();
    if (kubo?.ok) await kubo.server.stop();
    await sim?.stop();
    delete process.env[KEY_ENV];
    delete process.env[TOKEN_ENV];
  });

  const kinds: Kind[] = [
    {
      name: 'local',
      setup: async (_t, dir) => {
        const p = path.join(dir, 'x');
        return { cfg: { kind: 'local', id: X, path: p } as ProviderConfig, bytes: localBytes(p) };
      },
    },
    {
      name: 's3',
      setup: async (t) => {
        const server = serverOr(t, minio);
        if (!server) return undefined;
        const bucket = await server.createBucket();
        const cfg = {
          kind: 's3',
          id: X,
          endpoint: server.endpoint,
          bucket,
          forcePathStyle: true,
          ...server.exportCredentials(),
        } as ProviderConfig;
        return { cfg, bytes: s3Bytes(server, bucket) };
      },
    },
    {
      name: 'kubo',
      setup: async (t, dir) => {
        const server = serverOr(t, kubo);
        if (!server) return undefined;
        const mfsDir = `/pv-${path.basename(dir)}`;
        const cfg = { kind: 'kubo', id: X, apiUrl: server.apiUrl, mfsDir } as ProviderConfig;
        return { cfg, bytes: kuboBytes(server.apiUrl, mfsDir) };
      },
    },
    {
      name: 'synapse',
      setup: async (_t, _dir, good) => {
        process.env[KEY_ENV] = simWallet(sim!).key;
        const cfg = {
          kind: 'synapse',
          id: X,
          network: 'calibration',
          rpcUrl: sim!.rpcUrl,
          privateKeyEnv: KEY_ENV,
          providerId: Number(sim!.providerId),
          dataSetLabel: 'corruption',
        } as ProviderConfig;
        return { cfg, bytes: simBytes('synapse', sim!, good) };
      },
    },
    {
      name: 'lotus',
      setup: async (_t, _dir, good) => {
        process.env[TOKEN_ENV] = sim!.lotus.token;
        const cfg = {
          kind: 'lotus',
          id: X,
          apiUrl: sim!.rpcUrl,
          tokenEnv: TOKEN_ENV,
          minerId: sim!.lotus.minerId,
          retrievalUrl: sim!.retrievalUrl,
        } as ProviderConfig;
        return { cfg, bytes: simBytes('lotus', sim!, good) };
      },
    },
  ];

  for (const kind of kinds) {
    it(`${kind.name}: bit flip, truncation, deletion, a swapped shard and a stale copy`, async (t) => {
      if (!env) return t.skip('no Temporal server');
      const e = env;
      const dir = path.join(data, kind.name);
      const goodPath = path.join(dir, 'good');
      const good = localBytes(goodPath);
      const x = await kind.setup(t, dir, good);
      if (!x) return;
      // A Filecoin deal or data-set entry outlives a delete: the provider keeps its copy, so the
      // repair needs another provider ('spare'). Elsewhere the bad copy is replaced where it was.
      const filecoin = kind.name === 'synapse' || kind.name === 'lotus';
      // Dearer, so the archive's copies go to 'x' and 'good' (cheaper first under a price ceiling).
      const spare = {
        kind: 'local',
        id: 'spare',
        path: path.join(dir, 'spare'),
        pricePerTiBMonth: 5,
      } as ProviderConfig;
      const config = testConfig(path.join(dir, 'home'), {
        // 'x' first: restore reads it first; without a spare, repair of its copies can only go back to it.
        providers: [x.cfg, { kind: 'local', id: 'good', path: goodPath }, ...(filecoin ? [spare] : [])],
        replication: { copies: 2, ...(filecoin ? { policy: { maxPricePerTiBMonth: 10, cooldown: '0 seconds' } } : {}) },
        // Every block of a shard is read (k = 10 challenges ≥ the blocks of a 2 MiB shard of
        // 1 MiB leaves): a flipped bit in one block is caught for certain, and the achieved
        // probability each check reports is 1.
        steward: { verifyEvery: '1 hour', detectionProbability: 0.999, lossFraction: 0.5 },
      } as Partial<ConfigInput>);
      const injected: { fault: Fault; pieceCid: string }[] = [];
      let lost = 0;
      const finished = await withWorker(e, config, async () => {
        // The earlier archive: its pieces are the stale copies.
        const onGood = () => new Set(fs.readdirSync(path.join(goodPath, 'pieces')).filter((f) => f.endsWith('.car')));
        await resultOf(
          (
            await startArchive(e.client, config, {
              dir: path.join(data, 'src-old'),
              datasetId: `old-${kind.name}`,
              noSteward: true,
            })
          ).handle,
        );
        const oldPieces = [...onGood()];
        const summary = await resultOf(
          (await startArchive(e.client, config, { dir: path.join(data, 'src'), datasetId: `corrupt-${kind.name}` }))
            .handle,
        );
        assert.equal(summary.replicas[X], summary.shards, `every shard on ${X}: ${JSON.stringify(summary)}`);
        const steward = e.client.workflow.getHandle(summary.stewardWorkflowId!);
        const before = await steward.query(stewardStatusQuery);
        const onX = (await replicasOf(config, before))
          .filter((r) => r.providerId === X && r.shard >= 0)
          .sort((a, b) => a.shard - b.shard);
        assert.ok(onX.length > FAULTS.length, `${onX.length} shards on ${X}: one per fault and one more`);
        const stale = oldPieces
          .map((f) => fs.readFileSync(path.join(goodPath, 'pieces', f)))
          .sort((a, b) => b.length - a.length)[0]!;
        for (const [i, fault] of FAULTS.entries()) {
          const { pieceCid } = onX[i]!;
          const original = await x.bytes.read(pieceCid);
          assert.ok(original.equals(await good.read(pieceCid)), 'the replica held the right bytes before the fault');
          if (fault === 'bit flip') await x.bytes.write(pieceCid, await flipBit(original));
          if (fault === 'truncation') await x.bytes.write(pieceCid, original.subarray(0, original.length - 300_000));
          if (fault === 'deletion') await x.bytes.remove(pieceCid);
          if (fault === 'swapped shard') await x.bytes.write(pieceCid, await good.read(onX[onX.length - 1]!.pieceCid));
          if (fault === 'stale copy') await x.bytes.write(pieceCid, stale);
          injected.push({ fault, pieceCid });
        }
        const repaired = await steward.executeUpdate<StewardStatus, []>(verifyNowUpdate.name);
        const again = await steward.executeUpdate<StewardStatus, []>(verifyNowUpdate.name);
        return { summary, repaired, again, onX };
      });
      const { summary, repaired, again, onX } = finished;

      // Detected, at the stated probability, and audited.
      const audit = await readAudit(config, repaired.auditHead!);
      assert.deepEqual(audit.problems, []);
      const trace = JSON.stringify(audit.records.map((r) => [r.kind, r.result, r.providerId, r.pieceCid?.slice(-8)]));
      let detected = 0;
      for (const { fault, pieceCid } of injected) {
        const found = audit.records.find(
          (r) => r.kind === 'verify' && r.providerId === X && r.pieceCid === pieceCid && r.result === EXPECTED[fault],
        );
        assert.ok(found, `${fault} on ${kind.name} found as ${EXPECTED[fault]}: ${trace}`);
        if (EXPECTED[fault] === 'corrupt')
          assert.equal(found.detectionProbability, 1, `${fault}: every block read (${found.evidence})`);
        assert.ok(
          audit.records.some((r) => r.kind === 'repair' && r.pieceCid === pieceCid && r.result.startsWith('new copy')),
          `${fault} on ${kind.name} repaired: ${trace}`,
        );
        detected++;
      }
      assert.ok(repaired.counters.repairs >= FAULTS.length, `${repaired.counters.repairs} repairs`);
      assert.equal(repaired.health, 'healthy');

      // The repaired copies hold the right bytes: a second round finds everything healthy…
      const later = (await readAudit(config, again.auditHead!)).records.filter((r) => r.seq > audit.records.length);
      assert.equal(
        again.counters.repairs,
        repaired.counters.repairs,
        `nothing more to repair: ${JSON.stringify(later.map((r) => [r.kind, r.result, r.providerId, r.pieceCid?.slice(-8), r.evidence]))}`,
      );
      const reps = await replicasOf(config, again);
      assert.ok(
        reps.every((r) => r.state === 'healthy'),
        JSON.stringify(reps.filter((r) => r.state !== 'healthy')),
      );
      const repairedOn = filecoin ? localBytes(path.join(dir, 'spare')) : x.bytes;
      for (const { pieceCid } of injected)
        assert.ok((await repairedOn.read(pieceCid)).equals(await good.read(pieceCid)), 'the repaired replica is exact');

      // …and the repaired provider alone restores the tree (on Filecoin: the spare, the manifest from 'good').
      const src = readTree(path.join(data, 'src'));
      const restore = (target: string, providerIds?: string[]) =>
        withWorker(e, config, async () =>
          resultOf(
            await startRestore(e.client, config, {
              manifestCid: summary.manifestCid,
              target,
              force: false,
              ...(providerIds ? { providerIds } : {}),
            }),
          ),
        );
      const fromX = path.join(dir, 'restored-repaired');
      await restore(fromX, filecoin ? ['spare', 'good'] : [X]);
      const countLost = (target: string) => {
        const got = readTree(target);
        return [...src].filter(([f, b]) => !got.get(f)?.equals(b)).length + (got.size === src.size ? 0 : 1);
      };
      lost += countLost(fromX);
      assert.deepEqual(readTree(fromX), src);

      // One corrupt replica of every shard ('x', read first): restore takes the good ones.
      // (On Filecoin the faulted copies left the table, and only the others are flipped.)
      const flipped = filecoin ? onX.slice(FAULTS.length) : onX;
      for (const r of flipped) await x.bytes.write(r.pieceCid, await flipBit(await x.bytes.read(r.pieceCid)));
      const mixed = path.join(dir, 'restored-mixed');
      const summaryMixed = await restore(mixed);
      lost += countLost(mixed);
      assert.deepEqual(readTree(mixed), src);
      const bad = new Set(summaryMixed.badReplicas.filter((b) => b.providerId === X).map((b) => b.pieceCid));
      assert.deepEqual(
        [...bad].filter((c) => flipped.some((r) => r.pieceCid === c)).sort(),
        flipped.map((r) => r.pieceCid).sort(),
        `every corrupt replica caught on restore: ${JSON.stringify(summaryMixed.badReplicas)}`,
      );
      detected += flipped.length;
      recordReliability({
        suite: `corruption (${kind.name})`,
        trials: FAULTS.length + 1,
        faultsInjected: FAULTS.length + flipped.length,
        faultsDetected: detected,
        dataLost: lost,
      });
    });
  }

  // A Filecoin provider keeps its copy through a delete (a deal runs to its end; a data-set
  // entry waits for the next proving period), so a repair that puts the piece back there stores
  // nothing. Before the fix, copyPiece took the provider's "already stored" for a new copy: the
  // round reported the piece repaired and healthy while the provider still served the bad bytes.
  for (const name of ['synapse', 'lotus'] as const) {
    it(`${name}: a repair onto a provider that keeps its corrupt copy is not reported as a repair`, async (t) => {
      if (!env) return t.skip('no Temporal server');
      const e = env;
      const dir = path.join(data, `kept-${name}`);
      const goodPath = path.join(dir, 'good');
      const good = localBytes(goodPath);
      const x = (await kinds.find((k) => k.name === name)!.setup(t, dir, good))!;
      const config = testConfig(path.join(dir, 'home'), {
        providers: [x.cfg, { kind: 'local', id: 'good', path: goodPath }],
        replication: { copies: 2 },
        steward: { verifyEvery: '1 hour', detectionProbability: 0.999, lossFraction: 0.5 },
      } as Partial<ConfigInput>);
      const { victim, after } = await withWorker(e, config, async () => {
        const summary = await resultOf(
          (await startArchive(e.client, config, { dir: path.join(data, 'src-kept'), datasetId: `kept-${name}` }))
            .handle,
        );
        const steward = e.client.workflow.getHandle(summary.stewardWorkflowId!);
        const victim = (await replicasOf(config, await steward.query(stewardStatusQuery))).find(
          (r) => r.providerId === X && r.shard >= 0,
        )!.pieceCid;
        await x.bytes.write(victim, await flipBit(await x.bytes.read(victim)));
        return { victim, after: await steward.executeUpdate<StewardStatus, []>(verifyNowUpdate.name) };
      });
      const records = (await readAudit(config, after.auditHead!)).records.filter((r) => r.pieceCid === victim);
      const trace = JSON.stringify(records.map((r) => [r.kind, r.result, r.providerId, r.evidence]));
      assert.ok(
        records.some((r) => r.kind === 'verify' && r.result === 'corrupt'),
        trace,
      );
      assert.ok(
        !records.some((r) => r.kind === 'repair' && r.result.startsWith('new copy')),
        `no repair claimed: ${trace}`,
      );
      assert.ok(
        records.some((r) => r.kind === 'repair' && r.result === 'failed' && /holds a copy/.test(r.evidence ?? '')),
        trace,
      );
      assert.notEqual(after.health, 'healthy', 'one good copy of two is not healthy');
      const reps = (await replicasOf(config, after)).filter((r) => r.pieceCid === victim);
      assert.deepEqual(
        reps.map((r) => [r.providerId, r.state]),
        [['good', 'healthy']],
        'the bad copy is not counted',
      );
      recordReliability({
        suite: `corruption (${name}, copy kept)`,
        trials: 1,
        faultsInjected: 1,
        faultsDetected: 1,
        dataLost: 0,
      });
    });
  }
});
