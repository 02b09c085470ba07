/**
 * Client-side encryption of shard data (issue 12, item 5), end to end on the real Temporal server
 * with a local directory and MinIO: the archive's shards reach the providers only as ciphertext
 * (a marker in the source is found nowhere in what they store, nor any run of a source file), the
 * manifest records the wrapped data key and the key id but no key, and no workflow history holds
 * a key or the wrapped key. A restore decrypts and checks the plaintext, byte-identical; a steward
 * round verifies the ciphertext replicas, finds a flipped bit (local) and a deleted object (MinIO),
 * and repairs both with the very ciphertext that was lost; a restore with another key-encryption
 * key, or none, fails with EncryptionKeyError and writes nothing. Packed in units by two worker
 * processes, each with its own staging and its own copy of the key: the units' shards and the tree
 * shards are ciphertext too, the root CID is the single pack's, and the restore is byte-identical.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadKek, unwrapDataKey } from '../../activities/encryption/keys.js';
import { ShardCipher } from '../../activities/providers/encrypted.js';
import { LocalProvider } from '../../activities/providers/local.js';
import { manifestShards } from '../../activities/manifest/manifest.js';
import { locateManifest } from '../../activities/restore/restore.js';
import { readAudit, readReplicaTable } from '../../activities/steward/activities.js';
import type { Config, ConfigInput, ProviderConfig } from '../../config/schema.js';
import type { ArchiveSummary, StewardStatus } from '../../shared/types.js';
import { startArchive, startRestore } from '../../workers/client.js';
import { verifyNowUpdate } from '../../workflows/index.js';
import { bytesOf, readTree, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import { recordReliability } from '../helpers/reliability.js';
import { MinioServer, serverOr, type Started } from '../helpers/servers.js';

const MiB = 1024 * 1024;
const MARKER = `PROVENANT-PLAINTEXT-MARKER-${crypto.randomBytes(6).toString('hex')}`;
const KEK_ENV = 'PV_ENC_TEST_KEK';
const OTHER_KEK_ENV = 'PV_ENC_TEST_OTHER_KEK';

/** The type of the ApplicationFailure at the root of a failed workflow. */
function failureType(err: unknown): string | undefined {
  let e: unknown = err;
  while (e instanceof WorkflowFailedError || e instanceof ActivityFailure) e = (e as Error).cause;
  return e instanceof ApplicationFailure ? (e.type ?? undefined) : undefined;
}

/** Every file below `dir`. */
function filesBelow(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).flatMap((d) => {
    const p = path.join(d.parentPath, d.name);
    return d.isFile() ? [p] : [];
  });
}

/** Every string and byte field of `v`, as text (payloads decoded). */
function texts(v: unknown, out: string[] = [], seen = new Set<object>()): string[] {
  if (typeof v === 'string') out.push(v);
  else if (v instanceof Uint8Array) out.push(Buffer.from(v).toString('latin1'));
  else if (v && typeof v === 'object' && !seen.has(v)) {
    seen.add(v);
    for (const x of Array.isArray(v) ? v : Object.values(v)) texts(x, out, seen);
  }
  return out;
}

/** No workflow history holds the key-encryption key, the data key or the wrapped key. */
async function assertNoKeyInHistory(e: TestWorkflowEnvironment, keys: Buffer[], wrappedKey: string): Promise<void> {
  const corpus: string[] = [];
  for await (const w of e.client.workflow.list())
    texts(await e.client.workflow.getHandle(w.workflowId, w.runId).fetchHistory(), corpus);
  const all = corpus.join('\n');
  for (const key of keys)
    for (const form of ['hex', 'base64', 'base64url'] as const)
      assert.ok(!all.includes(key.toString(form)), `a key (${form}) found in workflow history`);
  assert.ok(!all.includes(wrappedKey), 'the wrapped key found in workflow history');
}

describe('client-side encryption: providers only see ciphertext; verify, repair and restore work', () => {
  let env: TestWorkflowEnvironment | undefined;
  let minio: Started<MinioServer> | undefined;
  let data: string;
  let config: Config;
  let bucket: string;
  let summary: ArchiveSummary | undefined;
  const kek = crypto.randomBytes(32);
  const tally = { trials: 0, injected: 0, detected: 0, lost: 0 };
  const src = () => path.join(data, 'src');
  const localRoot = () => path.join(data, 'lx');

  before(async (t) => {
    env = await startTemporal(t as never);
    minio = await MinioServer.start();
    data = tmpDir('pv-encryption-');
    process.env[KEK_ENV] = kek.toString('hex');
    process.env[OTHER_KEK_ENV] = crypto.randomBytes(32).toString('base64');
    const text = `${MARKER}\n`.repeat(5000);
    writeTree(src(), {
      'weights/a.bin': Buffer.concat([bytesOf(3 * MiB + 7, 'enc-a'), Buffer.from(MARKER), bytesOf(MiB, 'enc-a2')]),
      'weights/b.bin': bytesOf(2 * MiB + 5, 'enc-b'),
      'notes.txt': text,
      'small.json': JSON.stringify({ marker: MARKER }),
    });
  });
  after(async () => {
    await env?.teardown();
    if (minio?.ok) await minio.server.stop();
    delete process.env[KEK_ENV];
    delete process.env[OTHER_KEK_ENV];
    if (tally.trials > 0)
      recordReliability({
        suite: 'encryption (local, MinIO)',
        trials: tally.trials,
        faultsInjected: tally.injected,
        faultsDetected: tally.detected,
        dataLost: tally.lost,
      });
  });

  const configWith = (over: Partial<ConfigInput>, s3: ProviderConfig) =>
    testConfig(path.join(data, 'home'), {
      providers: [{ kind: 'local', id: 'lx', path: localRoot() } as ProviderConfig, s3],
      replication: { copies: 2 },
      // Every block of a 2 MiB shard is read by each check.
      steward: { verifyEvery: '1 hour', detectionProbability: 0.999, lossFraction: 0.5 },
      ...over,
    } as Partial<ConfigInput>);

  let s3cfg: ProviderConfig;
  const s3Objects = async (from = bucket): Promise<Map<string, Buffer>> => {
    const c = minio?.ok ? minio.server.client() : undefined;
    const out = new Map<string, Buffer>();
    try {
      let token: string | undefined;
      do {
        const page = await c!.send(new ListObjectsV2Command({ Bucket: from, ContinuationToken: token }));
        for (const o of page.Contents ?? []) {
          const r = await c!.send(new GetObjectCommand({ Bucket: from, Key: o.Key! }));
          out.set(o.Key!, Buffer.from(await r.Body!.transformToByteArray()));
        }
        token = page.NextContinuationToken;
      } while (token);
    } finally {
      c?.destroy();
    }
    return out;
  };

  it('archives to a local directory and MinIO as ciphertext only; the manifest records no key', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const server = serverOr(t, minio);
    if (!server) return;
    bucket = await server.createBucket();
    s3cfg = {
      kind: 's3',
      id: 'sx',
      endpoint: server.endpoint,
      bucket,
      forcePathStyle: true,
      ...server.exportCredentials(),
    } as ProviderConfig;
    config = configWith({ encryption: { keyEnv: KEK_ENV, chunkBytes: 64 * 1024 } } as Partial<ConfigInput>, s3cfg);
    const e = env;
    summary = await withWorker(e, config, async () =>
      (await startArchive(e.client, config, { dir: src(), datasetId: 'encrypted' })).handle.result(),
    );
    tally.trials++;
    assert.ok(summary.shards >= 3, `${summary.shards} shards`);
    assert.equal(summary.replicas.lx, summary.shards);
    assert.equal(summary.replicas.sx, summary.shards);

    // Nothing any provider stores holds the marker, or a run of a source file.
    const a = fs.readFileSync(path.join(src(), 'weights/a.bin'));
    const needles = [Buffer.from(MARKER), a.subarray(MiB, MiB + 64), a.subarray(3 * MiB, 3 * MiB + 64)];
    const stored: [string, Buffer][] = [
      ...filesBelow(localRoot()).map((f): [string, Buffer] => [f, fs.readFileSync(f)]),
      ...(await s3Objects()),
    ];
    assert.ok(stored.length > 2 * summary.shards, `${stored.length} stored files and objects`);
    for (const [name, bytes] of stored)
      for (const n of needles) assert.ok(!bytes.includes(n), `plaintext found in ${name}`);
    // The manifest (stored as it is) records what a restore needs, and no key.
    const work = tmpDir('pv-encryption-manifest-');
    const m = await locateManifest(summary.manifestCid, [new LocalProvider('lx', localRoot())], work);
    const enc = m.manifest.encryption;
    assert.ok(enc, 'the manifest records the encryption');
    assert.equal(enc.keyId, loadKek({ keyEnv: KEK_ENV })!.keyId);
    assert.equal(enc.chunkBytes, 64 * 1024);
    const dataKey = unwrapDataKey(enc, loadKek({ keyEnv: KEK_ENV }));
    const manifestBytes = fs.readFileSync(path.join(work, 'manifest.car'));
    for (const key of [kek, dataKey])
      for (const form of ['hex', 'base64', 'base64url'] as const)
        assert.ok(!manifestBytes.includes(Buffer.from(key.toString(form))), `no key in the manifest (${form})`);
    // Each shard is stored under an id of the data key's, not under its piece CID: a provider
    // cannot tell which shard it holds, nor find one by its CID.
    const cipher = new ShardCipher(dataKey, enc.chunkBytes);
    const pieces = new Set(fs.readdirSync(path.join(localRoot(), 'pieces')));
    const shards = [...manifestShards(m.manifest, m.pages)];
    assert.equal(shards.length, summary.shards);
    for (const sh of shards) {
      assert.ok(!pieces.has(`${sh.pieceCid}.car`), `shard ${sh.index} is not stored under its piece CID`);
      assert.ok(pieces.has(`${cipher.storedId(sh.pieceCid)}.car`), `shard ${sh.index} is stored under its id`);
    }

    await assertNoKeyInHistory(e, [kek, dataKey], enc.wrappedKey);
  });

  it('restores byte-identical, every chunk authenticated and every block checked as plaintext', async (t) => {
    if (!env || !summary) return t.skip('no encrypted archive');
    const e = env;
    const target = path.join(data, 'restored');
    await withWorker(e, config, async () =>
      (await startRestore(e.client, config, { manifestCid: summary!.manifestCid, target, force: false })).result(),
    );
    tally.trials++;
    const want = readTree(src());
    const got = readTree(target);
    tally.lost += [...want].filter(([f, b]) => !got.get(f)?.equals(b)).length;
    assert.deepEqual(got, want);
    // Each provider alone, too.
    for (const id of ['lx', 'sx']) {
      const one = path.join(data, `restored-${id}`);
      await withWorker(e, config, async () =>
        (
          await startRestore(e.client, config, {
            manifestCid: summary!.manifestCid,
            target: one,
            force: false,
            providerIds: [id],
          })
        ).result(),
      );
      tally.trials++;
      assert.deepEqual(readTree(one), want, `restored from ${id} alone`);
    }
  });

  it('verifies the ciphertext replicas, and repairs a flipped bit (local) and a deleted object (MinIO) exactly', async (t) => {
    if (!env || !summary) return t.skip('no encrypted archive');
    const e = env;
    const steward = e.client.workflow.getHandle(summary.stewardWorkflowId!);
    const enc = (
      await locateManifest(summary.manifestCid, [new LocalProvider('lx', localRoot())], tmpDir('pv-encryption-m-'))
    ).manifest.encryption!;
    const cipher = new ShardCipher(unwrapDataKey(enc, loadKek({ keyEnv: KEK_ENV })), enc.chunkBytes);
    const { flipped, deleted, first, repaired, again, localBefore, s3Before } = await withWorker(
      e,
      config,
      async () => {
        const first = await steward.executeUpdate<StewardStatus, []>(verifyNowUpdate.name);
        const reps = (await readReplicaTable(config, first.replicaTable!.tableCid)).replicas.filter(
          (r) => r.shard >= 0,
        );
        const flipped = reps.find((r) => r.providerId === 'lx')!;
        const deleted = reps.find((r) => r.providerId === 'sx' && r.shard !== flipped.shard)!;
        const localFile = path.join(localRoot(), 'pieces', `${cipher.storedId(flipped.pieceCid)}.car`);
        const key = `pieces/${cipher.storedId(deleted.pieceCid)}.car`;
        const localBefore = fs.readFileSync(localFile);
        const s3Before = (await s3Objects()).get(key);
        assert.ok(s3Before, `the ciphertext object ${key} is in the bucket`);
        const bad = Buffer.from(localBefore);
        bad[Math.floor(bad.length / 2)]! ^= 0x20;
        fs.writeFileSync(localFile, bad);
        const c = minio?.ok ? minio.server.client() : undefined;
        await c!.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
        c!.destroy();
        tally.injected += 2;
        const repaired = await steward.executeUpdate<StewardStatus, []>(verifyNowUpdate.name);
        const again = await steward.executeUpdate<StewardStatus, []>(verifyNowUpdate.name);
        return { flipped, deleted, first, repaired, again, localBefore, s3Before };
      },
    );
    tally.trials += 3;
    assert.equal(first.health, 'healthy', 'the ciphertext replicas verify');
    assert.equal(first.counters.repairs, 0);
    const audit = await readAudit(config, repaired.auditHead!);
    assert.deepEqual(audit.problems, []);
    const trace = JSON.stringify(audit.records.map((r) => [r.kind, r.result, r.providerId, r.pieceCid?.slice(-8)]));
    for (const [rep, state] of [
      [flipped, 'corrupt'],
      [deleted, 'missing'],
    ] as const) {
      const found = audit.records.some(
        (r) =>
          r.kind === 'verify' && r.providerId === rep.providerId && r.pieceCid === rep.pieceCid && r.result === state,
      );
      assert.ok(found, `${rep.providerId} ${state}: ${trace}`);
      assert.ok(
        audit.records.some(
          (r) => r.kind === 'repair' && r.pieceCid === rep.pieceCid && r.result.startsWith('new copy'),
        ),
        `repaired: ${trace}`,
      );
      tally.detected++;
    }
    assert.equal(repaired.health, 'healthy');
    assert.equal(again.counters.repairs, repaired.counters.repairs, 'nothing more to repair');
    // The repair wrote back the very ciphertext that was lost (encryption is deterministic).
    const localFile = path.join(localRoot(), 'pieces', `${cipher.storedId(flipped.pieceCid)}.car`);
    assert.ok(fs.readFileSync(localFile).equals(localBefore), 'the local copy is the same ciphertext');
    const restoredObject = (await s3Objects()).get(`pieces/${cipher.storedId(deleted.pieceCid)}.car`);
    assert.ok(restoredObject?.equals(s3Before!), 'the MinIO object is the same ciphertext');
  });

  it('fails a restore with another key-encryption key, or none, with EncryptionKeyError and writes nothing', async (t) => {
    if (!env || !summary) return t.skip('no encrypted archive');
    const e = env;
    for (const [what, over] of [
      ['another key', { encryption: { keyEnv: OTHER_KEK_ENV } }],
      ['no key', {}],
    ] as const) {
      const c = configWith(over as Partial<ConfigInput>, s3cfg);
      const target = path.join(data, `refused-${what.replace(' ', '-')}`);
      const type = await withWorker(e, c, async () =>
        (await startRestore(e.client, c, { manifestCid: summary!.manifestCid, target, force: false })).result().then(
          () => 'restored',
          (err: unknown) => failureType(err),
        ),
      );
      tally.trials++;
      tally.injected++;
      assert.equal(type, 'EncryptionKeyError', what);
      tally.detected++;
      assert.equal(readTree(target).size, 0, `nothing restored with ${what}`);
    }
  });
  it('packs in units on two worker processes, each unwrapping the plan’s data key with its own key: ciphertext only, the same root CID, restored byte-identical', async (t) => {
    if (!env || !summary) return t.skip('no encrypted archive');
    const server = serverOr(t, minio);
    if (!server) return;
    const e = env;
    const unitBucket = await server.createBucket();
    const unitLocal = path.join(data, 'ux');
    const providers = [
      { kind: 'local', id: 'ux', path: unitLocal },
      {
        kind: 's3',
        id: 'su',
        endpoint: server.endpoint,
        bucket: unitBucket,
        forcePathStyle: true,
        ...server.exportCredentials(),
      },
    ];
    // 2 MiB shards of 1 MiB leaves: a unit a shard, several units.
    const base = {
      dataDir: path.join(data, 'home-units'),
      providers,
      replication: { copies: 2 },
      pack: { shardBytes: 2 * MiB, unitShards: 1 },
      encryption: { keyEnv: KEK_ENV, chunkBytes: 64 * 1024 },
    };
    const units = testConfig(base.dataDir, { ...base, stagingDir: path.join(data, 'staging-units') } as never);
    const workers: ChildProcess[] = [];
    const worker = (name: string) => {
      const file = path.join(data, `config-${name}.json`);
      fs.writeFileSync(
        file,
        JSON.stringify({
          ...base,
          stagingDir: path.join(data, name),
          temporal: { taskQueue: units.temporal.taskQueue, heartbeatTimeout: '3 seconds' },
        }),
      );
      // Each process reads the key from its own environment (the same variable, the same key).
      const w = spawn(process.execPath, [path.resolve('dist/workers/main.js')], {
        env: {
          ...process.env,
          PROVENANT_CONFIG: file,
          TEMPORAL_ADDRESS: e.address,
          TEMPORAL_NAMESPACE: e.namespace ?? 'default',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      workers.push(w);
    };
    let s: ArchiveSummary;
    try {
      worker('staging-ua');
      worker('staging-ub');
      const { handle } = await startArchive(e.client, units, {
        dir: src(),
        datasetId: 'encrypted-units',
        workflowId: 'encrypted-units',
        noSteward: true,
      });
      s = await handle.result();
      const identities = new Set<string>();
      for (const ev of (await e.client.workflow.getHandle('encrypted-units/units-0').fetchHistory()).events ?? [])
        if (ev.activityTaskStartedEventAttributes) identities.add(ev.activityTaskStartedEventAttributes.identity ?? '');
      assert.ok(identities.size >= 2, `units ran on ${identities.size} workers: ${[...identities].join(', ')}`);
    } finally {
      for (const w of workers) {
        if (w.exitCode !== null || w.signalCode !== null) continue;
        w.kill('SIGTERM');
        await new Promise((r) => w.once('exit', r));
      }
    }
    tally.trials++;
    assert.equal(s.rootCid, summary.rootCid, 'the units’ DAG is the single pack’s');
    assert.equal(s.replicas.ux, s.shards);
    assert.equal(s.replicas.su, s.shards);

    // Every data and tree shard is stored as ciphertext under its id; nothing stored holds plaintext.
    const m = await locateManifest(s.manifestCid, [new LocalProvider('ux', unitLocal)], tmpDir('pv-encryption-um-'));
    const enc = m.manifest.encryption;
    assert.ok(enc, 'the stitched manifest records the encryption');
    assert.equal(enc.keyId, loadKek({ keyEnv: KEK_ENV })!.keyId);
    const dataKey = unwrapDataKey(enc, loadKek({ keyEnv: KEK_ENV }));
    const cipher = new ShardCipher(dataKey, enc.chunkBytes);
    const pieces = new Set(fs.readdirSync(path.join(unitLocal, 'pieces')));
    const shards = [...manifestShards(m.manifest, m.pages)];
    assert.equal(shards.length, s.shards);
    for (const sh of shards) {
      assert.ok(!pieces.has(`${sh.pieceCid}.car`), `shard ${sh.index} is not stored under its piece CID`);
      assert.ok(pieces.has(`${cipher.storedId(sh.pieceCid)}.car`), `shard ${sh.index} is stored under its id`);
    }
    const a = fs.readFileSync(path.join(src(), 'weights/a.bin'));
    const needles = [Buffer.from(MARKER), a.subarray(MiB, MiB + 64), a.subarray(3 * MiB, 3 * MiB + 64)];
    const stored: [string, Buffer][] = [
      ...filesBelow(unitLocal).map((f): [string, Buffer] => [f, fs.readFileSync(f)]),
      ...(await s3Objects(unitBucket)),
    ];
    assert.ok(stored.length > 2 * s.shards, `${stored.length} stored files and objects`);
    for (const [name, bytes] of stored)
      for (const n of needles) assert.ok(!bytes.includes(n), `plaintext found in ${name}`);
    // The wrapped key went to the units through the plan's pages, not through workflow history.
    await assertNoKeyInHistory(e, [kek, dataKey], enc.wrappedKey);

    const target = path.join(data, 'restored-units');
    await withWorker(e, units, async () =>
      (await startRestore(e.client, units, { manifestCid: s.manifestCid, target, force: false })).result(),
    );
    tally.trials++;
    assert.deepEqual(readTree(target), readTree(src()));
  });
});
