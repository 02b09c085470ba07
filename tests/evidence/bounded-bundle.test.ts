/**
 * The evidence bundle is streamed, both ways: a manifest of 240,000 file records and 2,400 shards
 * (built by writeManifest from a staging of records only, with the production page sizes) and a
 * replica table of 4,802 replicas (one shard in eight with its chain commitment) make a bundle of tens of MiB,
 * yet writing it and verifying it each grow the heap and the buffers by less than half the bundle (stream buffers, not blocks). The
 * bundle round-trips: verify-evidence proves every part. The commitments are recorded in the table
 * as a Filecoin provider's put would record them, for a network named as a test's: no chain here.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { CarBlockIterator } from '@ipld/car/iterator';
import { writeEvidence } from '../../activities/evidence/bundle.js';
import { loadVerifyingKey, signingKeyOf } from '../../activities/evidence/keys.js';
import { verifyEvidence } from '../../activities/evidence/verify-evidence.js';
import { appendRecords } from '../../activities/audit/audit.js';
import { writeManifest, type ManifestHeader } from '../../activities/manifest/manifest.js';
import { blockIndexName } from '../../activities/pack/block-index.js';
import { cidOf, RAW_CODE } from '../../activities/pack/cids.js';
import type { FileRecord } from '../../activities/pack/packer.js';
import type { ShardInfo } from '../../activities/pack/shard-writer.js';
import type { PieceRef } from '../../activities/providers/provider.js';
import { ProviderSet } from '../../activities/providers/registry.js';
import { tableStoreOf } from '../../activities/steward/activities.js';
import type { StewardReplica } from '../../shared/types.js';
import { testConfig, tmpDir } from '../helpers/env.js';
import { writeKeyPair } from './keypairs.js';

const MiB = 1024 * 1024;
/** What writing or verifying may add to the heap and the buffers, whatever the bundle's size. */
const BOUND_BYTES = 32 * MiB;

// A full collection before each sample, so that garbage is not counted as held. Twice: V8 frees a
// dead array buffer's memory on a concurrent sweeper that a loaded machine leaves behind, and the
// next collection first finishes that sweep (one collection counted up to 18 MiB of freed buffers).
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const collect = () => {
  gc();
  gc();
};

/**
 * `fn`'s result and the most its run added to the heap and the array buffers, sampled whenever
 * the event loop turns, at most every 100 ms (a collection of this test's heap takes tens of ms:
 * more often, the run is mostly collections) and at the end.
 */
async function peakGrowth<T>(fn: () => Promise<T>): Promise<{ result: T; peak: number }> {
  const used = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  collect();
  const base = used();
  let peak = 0;
  const sample = () => {
    collect();
    peak = Math.max(peak, used() - base);
  };
  const timer = setInterval(sample, 100);
  try {
    const result = await fn();
    sample();
    return { result, peak };
  } finally {
    clearInterval(timer);
  }
}

const fakeCid = (seed: string) => cidOf(RAW_CODE, crypto.createHash('sha256').update(seed).digest()).toString();

/** A staging directory as the pack leaves it (shard records, block indexes, files.ndjson), without shard data. */
function staging(dir: string, shardCount: number, filesPerShard: number) {
  fs.mkdirSync(dir, { recursive: true });
  const shards: ShardInfo[] = [];
  const out = fs.openSync(path.join(dir, 'files.ndjson'), 'w');
  for (let s = 0; s < shardCount; s++) {
    const file = `shard-${s}.car`;
    // Two blocks per shard, in the shard writer's block-index format (block-index.ts).
    const records = [0, 1].map((b) => {
      const cid = cidOf(RAW_CODE, crypto.createHash('sha256').update(`${dir}/${s}/${b}`).digest());
      const rec = Buffer.alloc(1 + cid.bytes.length + 12);
      rec[0] = cid.bytes.length;
      rec.set(cid.bytes, 1);
      rec.writeUInt32LE(1000, rec.writeDoubleLE(59 + b * 1040, 1 + cid.bytes.length));
      return { rec, cid: cid.toString() };
    });
    fs.writeFileSync(path.join(dir, blockIndexName(file)), Buffer.concat(records.map((r) => r.rec)));
    shards.push({
      index: s,
      file,
      carCid: fakeCid(`car/${dir}/${s}`),
      pieceCid: `bafkzcibpiece${s}`,
      rootCid: records[0]!.cid,
      carBytes: 2139,
      paddedPieceBytes: 4096,
      blocks: 2,
    });
    let lines = '';
    for (let f = 0; f < filesPerShard; f++) {
      const n = s * filesPerShard + f;
      const rec: FileRecord = {
        path: `train/part-${String(s).padStart(5, '0')}/sample-${n}.jsonl`,
        size: 1000 + (n % 977),
        mtimeMs: 1_700_000_000_000 + n,
        sha256: crypto.createHash('sha256').update(`file ${n}`).digest('hex'),
        cid: fakeCid(`file/${dir}/${n}`),
        shards: [s, s],
      };
      lines += `${JSON.stringify(rec)}\n`;
    }
    fs.writeSync(out, lines);
  }
  fs.closeSync(out);
  return { shards, filesPath: path.join(dir, 'files.ndjson'), outPath: path.join(dir, 'manifest.car') };
}

const header = (datasetId: string, derivedFrom?: string[]): ManifestHeader => ({
  datasetId,
  root: fakeCid(`root/${datasetId}`),
  source: { kind: 'local', uri: `file:///data/${datasetId}` },
  meta: {},
  ...(derivedFrom ? { derivedFrom } : {}),
  tool: { name: 'provenant', version: 'test' },
  createdAt: '2026-01-01T00:00:00.000Z',
  layout: { chunkBytes: 1 << 20, fileWidth: 1024, shardBytes: 1 << 20 },
});

describe('evidence bundles of large datasets', () => {
  it('are written and verified in bounded memory, and round-trip through verify-evidence', async () => {
    const data = tmpDir('pv-bounded-bundle-');
    const keys = writeKeyPair(data, 'bounded', 'ed25519');
    const config = testConfig(path.join(data, 'home'), { signing: { keyFile: keys.priv } });
    const set = new ProviderSet(config.providers);
    const [disk] = set.all();
    const store = async (piece: PieceRef, file: string) => {
      await disk!.put(piece, () => fs.createReadStream(file));
    };

    // A parent dataset (lineage), then the large one, each manifest stored on one provider.
    const p = staging(path.join(data, 'parent'), 3, 2);
    const parentPiece = await writeManifest(header('parent-ds'), p.shards, p.filesPath, p.outPath, 1 << 30);
    await store(parentPiece, p.outPath);
    const SHARDS = 2400;
    const FILES_PER_SHARD = 100;
    const st = staging(path.join(data, 'large'), SHARDS, FILES_PER_SHARD);
    const piece = await writeManifest(
      header('large-ds', [parentPiece.rootCid]),
      st.shards,
      st.filesPath,
      st.outPath,
      1 << 30,
    );
    await store(piece, st.outPath);
    const manifestCid = piece.rootCid;
    assert.ok(piece.bytes > 1.5 * BOUND_BYTES, `the manifest CAR is ${piece.bytes} bytes: larger than the bound`);

    // Two copies of every shard and of the manifest; the manifest's and one shard's in eight with the
    // commitment their put recorded.
    const replica = (shard: number, pieceCid: string, providerId: string, epoch: number): StewardReplica => ({
      shard,
      pieceCid,
      carCid: fakeCid(`car/${pieceCid}`),
      rootCid: fakeCid(`root/${pieceCid}`),
      bytes: 2139,
      providerId,
      state: 'healthy',
      ...(shard >= 0 && shard % 8 !== 0
        ? {}
        : {
            commitment: {
              kind: 'pdp',
              providerId,
              pieceCid,
              epoch,
              network: 'test network',
              dataSetId: '7',
              pieceId: String(epoch),
              txHash: `0x${crypto.createHash('sha256').update(`${providerId}/${pieceCid}`).digest('hex')}`,
            },
          }),
    });
    const committed = 2 * (1 + Math.ceil(SHARDS / 8));
    const replicas: StewardReplica[] = [];
    for (const id of ['foc-a', 'foc-b']) {
      replicas.push({ ...replica(-1, piece.pieceCid, id, 100), carCid: piece.carCid, rootCid: manifestCid });
      for (const s of st.shards) replicas.push(replica(s.index, s.pieceCid, id, 200 + s.index));
    }
    const table = await tableStoreOf({ config, providers: set }).build(
      { datasetId: 'large-ds', manifestCid, pageReplicas: 200 },
      replicas,
      [disk!],
    );
    const now = Date.parse('2026-01-02T00:00:00.000Z');
    const audit = await appendRecords(
      'large-ds',
      { cid: null, seq: 0 },
      ['archive', 'verify', 'verify'].map((kind, i) => ({
        kind: kind as 'archive' | 'verify',
        result: `${kind} ${i}`,
        time: new Date(now + i * 60_000).toISOString(),
      })),
      [disk!],
      { key: signingKeyOf(config) },
    );
    await set.close();

    const out = path.join(data, 'evidence.car');
    const written = await peakGrowth(() =>
      writeEvidence(config, { manifestCid, auditHead: audit.head, tableCid: table.tableCid, out }),
    );
    const summary = written.result;
    const file = fs.readFileSync(out);
    assert.equal(summary.bytes, file.length);
    assert.equal(summary.sha256, crypto.createHash('sha256').update(file).digest('hex'));
    assert.ok(summary.bytes > piece.bytes, `the bundle is ${summary.bytes} bytes`);
    assert.equal(summary.replicas, replicas.length);
    assert.equal(summary.anchors, committed);
    assert.equal(summary.auditRecords, 3);
    assert.ok(
      written.peak < BOUND_BYTES,
      `writing a ${summary.bytes}-byte bundle grew the heap and buffers by ${written.peak} bytes`,
    );

    // The CAR holds the index first, then every manifest block once, in the manifest CAR's order.
    const order = new Set<string>();
    for await (const b of await CarBlockIterator.fromIterable(fs.createReadStream(st.outPath)))
      order.add(b.cid.toString());
    const inBundle: string[] = [];
    const it = await CarBlockIterator.fromIterable(fs.createReadStream(out));
    const [root] = await it.getRoots();
    for await (const b of it) inBundle.push(b.cid.toString());
    assert.equal(inBundle[0], root!.toString());
    assert.deepEqual(inBundle.slice(1, 1 + order.size), [...order]);
    assert.ok(summary.manifestBlocks >= order.size);
    // Then the audit records, the table's root and pages, the parent's root, the signature.
    assert.equal(inBundle.length, 1 + order.size + 3 + 1 + table.pages + 1 + 1);

    const verified = await peakGrowth(() => verifyEvidence(out, { trusted: [loadVerifyingKey(keys.pub)] }));
    const report = verified.result;
    assert.equal(report.ok, true, JSON.stringify(report.broken.slice(0, 5)));
    assert.equal(report.signer, 'trusted');
    assert.equal(report.manifest?.files, SHARDS * FILES_PER_SHARD);
    assert.equal(report.manifest?.shards, SHARDS);
    assert.equal(report.audit?.records, 3);
    assert.equal(report.replicas?.count, replicas.length);
    assert.equal(report.anchors?.length, committed);
    assert.deepEqual(
      report.lineage?.map((l) => l.datasetId),
      ['parent-ds'],
    );
    assert.ok(
      verified.peak < BOUND_BYTES,
      `verifying a ${summary.bytes}-byte bundle grew the heap and buffers by ${verified.peak} bytes`,
    );
  });
});
