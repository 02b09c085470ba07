/**
 * Anchoring, on the SIMULATED Filecoin network (tests/sim): a tree archived to Filecoin Onchain
 * Cloud (Synapse/PDP) and to a Lotus miner (deals) records each copy's chain commitment (the PDP
 * addPieces transaction and its epoch; the deal's sector activation), the evidence bundle lists
 * them as anchors, and verify-evidence, with the Temporal server and the simulated network both
 * stopped, rebuilds the manifest's piece from the bundle and states "contents fixed no later than
 * epoch E (simulated network)". A commitment edited to name another piece is caught and named; an
 * epoch edited consistently cannot be caught offline, and only the bundle's signature tells.
 * Also: an archive packed in units has its manifest signed at archive time, before any bundle.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import * as dagJson from '@ipld/dag-json';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { CID } from 'multiformats/cid';
import type { EvidenceIndex } from '../../activities/evidence/bundle.js';
import { checkEnvelope } from '../../activities/evidence/dsse.js';
import { loadVerifyingKey } from '../../activities/evidence/keys.js';
import { manifestStatementMismatch } from '../../activities/evidence/sign.js';
import type { EvidenceReport } from '../../activities/evidence/verify-evidence.js';
import { readReplicaTable } from '../../activities/steward/activities.js';
import { verifyReplica } from '../../activities/verify/verify.js';
import type { Config } from '../../config/schema.js';
import type { StewardReplica } from '../../shared/types.js';
import { startArchive } from '../../workers/client.js';
import { stewardStatusQuery } from '../../workflows/index.js';
import { runCli } from '../helpers/cli.js';
import { putBlock, readBundle, rewrite } from '../helpers/bundle.js';
import { bytesOf, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import { FilecoinSim } from '../sim/filecoin-sim.js';
import { lotusProvider, simWallet, synapseProvider } from '../sim/fixtures.js';
import { shardOf } from '../activities/providers/fixtures.js';
import { writeKeyPair } from './keypairs.js';

const MiB = 1024 * 1024;
const KEY_ENV = 'PV_ANCHOR_FOC_KEY';
const TOKEN_ENV = 'PV_ANCHOR_LOTUS_TOKEN';
const runCliIsolated = (args: string[]) => runCli(args, { isolated: true });

/** Edit the replicas of the table's pages, re-hashing each page and the root as a forger would. */
function editTable(
  index: EvidenceIndex,
  blocks: Map<string, Uint8Array>,
  edit: (r: StewardReplica) => StewardReplica,
): void {
  const renamed = new Map<string, string>();
  index.replicaTable.pages = index.replicaTable.pages.map((c) => {
    const page = dagJson.decode(blocks.get(c)!) as { replicas: StewardReplica[] };
    const next = putBlock(blocks, { ...page, replicas: page.replicas.map(edit) });
    renamed.set(c, next);
    return next;
  });
  const root = dagJson.decode(blocks.get(index.replicaTable.root!)!) as { pages: { cid: CID }[] };
  index.replicaTable.root = putBlock(blocks, {
    ...root,
    pages: root.pages.map((p) => ({ ...p, cid: CID.parse(renamed.get(p.cid.toString()) ?? p.cid.toString()) })),
  });
}

describe('chain commitments from the Filecoin providers (simulated network)', () => {
  it('a PDP put returns its addPieces transaction, block epoch and piece id; a put of a committed piece finds it again', async () => {
    const s = await FilecoinSim.start();
    try {
      const wallet = simWallet(s);
      const p = synapseProvider(s, {}, wallet);
      const { bytes, ref } = await shardOf('anchor-pdp', 30_000);
      const placed = await p.put(ref, () => Readable.from([bytes]));
      const c = placed.commitment!;
      assert.ok(c, 'a commitment');
      assert.equal(c.kind, 'pdp');
      assert.equal(c.pieceCid, ref.pieceCid);
      assert.equal(c.network, 'calibration (simulated)');
      assert.equal(Number(s.chain.receipt(c.txHash!)?.blockNumber), c.epoch);
      assert.ok(c.dataSetId !== undefined && c.pieceId !== undefined);
      const again = await synapseProvider(s, {}, wallet).put(ref, () => Readable.from([bytes]));
      assert.equal(again.existed, true);
      assert.deepEqual(again.commitment, c, 'found again from the PiecesAdded event');
    } finally {
      await s.stop();
    }
  });

  it('a PDP copy whose put recorded no commitment gets it from a verification that asks (what a steward round does)', async () => {
    const s = await FilecoinSim.start();
    try {
      const p = synapseProvider(s, {}, simWallet(s));
      const { bytes, ref } = await shardOf('anchor-pdp-late', 30_000);
      const placed = await p.put(ref, () => Readable.from([bytes]));
      assert.ok(placed.commitment, 'the put found it (the simulated network confirms with the put)');
      const plain = await p.status(ref);
      assert.equal(plain.present, true);
      assert.equal(plain.commitment, undefined, 'not looked up unless asked');
      assert.deepEqual((await p.status(ref, { commitment: true })).commitment, placed.commitment);
      // No block index: the piece is checked whole against its CAR CID.
      const index = { blocks: [] };
      const opts = { seed: 'late', probability: 0.99, lossFraction: 0.5, carCid: ref.carCid };
      const asked = await verifyReplica(p, ref.pieceCid, index, { ...opts, commitment: true });
      assert.equal(asked.state, 'healthy');
      assert.deepEqual(asked.commitment, placed.commitment);
      assert.equal((await verifyReplica(p, ref.pieceCid, index, opts)).commitment, undefined);
    } finally {
      await s.stop();
    }
  });

  it('a Lotus deal still sealing at put time has no commitment; a later status gives its activation epoch', async () => {
    const s = await FilecoinSim.start();
    try {
      s.lotus.sealDelayEpochs = 20;
      const p = lotusProvider(s, { verifiedDeal: false });
      const { bytes, ref } = await shardOf('anchor-lotus', 30_000);
      const placed = await p.put(ref, () => Readable.from([bytes]));
      assert.equal(placed.commitment, undefined, 'not on chain yet');
      s.advance(21);
      const st = await p.status(ref);
      assert.equal(st.present, true);
      const c = st.commitment!;
      assert.equal(c.kind, 'deal');
      assert.equal(c.pieceCid, ref.pieceCid);
      assert.equal(c.network, 'calibrationnet (simulated)');
      assert.equal(c.epoch, s.lotus.deal(c.dealId!)!.State.SectorStartEpoch);
    } finally {
      await s.stop();
    }
  });
});

describe('anchoring: chain commitments in the evidence bundle (simulated Filecoin)', () => {
  let env: TestWorkflowEnvironment | undefined;
  let sim: FilecoinSim | undefined;
  before(async (t) => {
    env = await startTemporal(t as never);
  });
  after(async () => {
    await env?.teardown();
    await sim?.stop();
    delete process.env[KEY_ENV];
    delete process.env[TOKEN_ENV];
  });

  it('states when the contents were fixed, offline; a commitment for another piece is caught', async (t) => {
    if (!env) return t.skip('no Temporal server');
    sim = await FilecoinSim.start();
    const data = tmpDir('pv-anchor-');
    const src = path.join(data, 'src');
    writeTree(src, {
      'weights.bin': bytesOf(3 * MiB + 11, 'anchor'),
      'card.md': '# a model anchored on a simulated network',
    });
    process.env[KEY_ENV] = simWallet(sim).key;
    process.env[TOKEN_ENV] = sim.lotus.token;
    const keys = writeKeyPair(data, 'anchor', 'ed25519');
    const providers = [
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
    ];
    const home = path.join(data, 'home');
    const config = testConfig(home, {
      replication: { copies: 2 },
      signing: { keyFile: keys.priv },
      providers,
    } as never);
    const cliConfig = path.join(data, 'cli.json');
    fs.writeFileSync(
      cliConfig,
      JSON.stringify({
        dataDir: home,
        temporal: { address: env.address, taskQueue: config.temporal.taskQueue, embedded: 'never' },
        signing: { keyFile: keys.priv },
        providers,
      }),
    );
    const bundle = path.join(data, 'evidence.car');

    const e = env;
    await withWorker(e, config, async () => {
      const summary = await (
        await startArchive(e.client, config, { dir: src, datasetId: 'anchor-ds' })
      ).handle.result();
      const steward = e.client.workflow.getHandle(summary.stewardWorkflowId!);
      for (let i = 0; i < 200 && (await steward.query(stewardStatusQuery)).auditRecords < 1; i++)
        await new Promise((r) => setTimeout(r, 50));
      const r = await runCliIsolated(['evidence', 'anchor-ds', '--out', bundle, '--config', cliConfig, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const s = JSON.parse(r.stdout) as { anchors: number; replicas: number };
      assert.equal(s.anchors, s.replicas, 'every copy on either network has its commitment');
    });

    // The anchors say what the simulated chain recorded.
    const { index: index0 } = await readBundle(bundle);
    const anchors = index0.anchors ?? [];
    const pdp = anchors.find((a) => a.shard === -1 && a.providerId === 'foc')!;
    const deal = anchors.find((a) => a.shard === -1 && a.providerId === 'lotus')!;
    assert.ok(pdp && deal, JSON.stringify(anchors));
    assert.equal(pdp.commitment.kind, 'pdp');
    assert.equal(pdp.commitment.network, 'calibration (simulated)');
    assert.equal(pdp.commitment.pieceCid, index0.manifest.pieceCid);
    const receipt = sim.chain.receipt(pdp.commitment.txHash!);
    assert.equal(Number(receipt?.blockNumber), pdp.commitment.epoch, 'the epoch is the addPieces block');
    assert.equal(deal.commitment.kind, 'deal');
    assert.match(deal.commitment.network, /\(simulated\)$/);
    assert.ok(deal.commitment.epoch > 0 && deal.commitment.dealId! > 0, JSON.stringify(deal.commitment));

    // No server and no network from here on.
    await env.teardown();
    env = undefined;
    await sim.stop();
    sim = undefined;

    const verify = async (file: string, trust = true) => {
      const args = [file, ...(trust ? ['--trust', keys.pub] : [])];
      const r = await runCliIsolated(['verify-evidence', ...args, '--json']);
      const human = await runCliIsolated(['verify-evidence', ...args]);
      assert.equal(human.code, r.code);
      return { code: r.code, report: JSON.parse(r.stdout) as EvidenceReport, text: human.stdout + human.stderr };
    };
    const ok = await verify(bundle);
    t.diagnostic(ok.text);
    assert.equal(ok.code, 0, ok.text);
    assert.equal(ok.report.anchors?.length, anchors.length);
    assert.ok(ok.report.anchors!.every((a) => a.simulated));
    assert.match(
      ok.text,
      new RegExp(`contents fixed no later than epoch ${pdp.commitment.epoch} \\(simulated network\\)`),
    );
    assert.match(ok.text, /ANCHORED: the manifest's contents were fixed no later than epoch \d+ \(simulated network/);

    const anchorFinding = (r: { report: EvidenceReport }) => r.report.broken.find((b) => b.part === 'anchor');
    const manifestAt = anchors.findIndex((a) => a.shard === -1 && a.providerId === 'foc');
    const shardAnchor = anchors.find((a) => a.shard >= 0 && a.providerId === 'foc')!;

    // 1. The anchor's piece CID changed in the index: the table holds no such commitment.
    const changedPiece = await rewrite(bundle, path.join(data, 'changed-piece.car'), (index) => {
      const a = index.anchors![manifestAt]!;
      a.commitment = { ...a.commitment, pieceCid: shardAnchor.pieceCid };
    });
    const r1 = await verify(changedPiece, false);
    assert.equal(r1.code, 1, r1.text);
    assert.match(
      `${anchorFinding(r1)?.ref} ${anchorFinding(r1)?.detail}`,
      /anchor #\d+ \(manifest on foc\).*no such commitment/,
    );
    assert.match(r1.text, /BROKEN[\s\S]*anchor: anchor #\d+ \(manifest on foc\)/);

    // 2. A commitment for another piece, forged consistently into the table and the index: the
    //    manifest's blocks rebuild another piece than the one committed.
    const otherPiece = await rewrite(bundle, path.join(data, 'other-piece.car'), (index, blocks) => {
      const forge = <T extends { shard: number; providerId: string; pieceCid: string }>(x: T): T =>
        x.shard === -1 && x.providerId === 'foc'
          ? { ...x, pieceCid: shardAnchor.pieceCid, commitment: shardAnchor.commitment }
          : x;
      editTable(index, blocks, forge);
      index.anchors = index.anchors!.map(forge);
    });
    const r2 = await verify(otherPiece, false);
    assert.equal(r2.code, 1, r2.text);
    const f2 = anchorFinding(r2);
    assert.ok(f2, JSON.stringify(r2.report.broken));
    assert.match(`${f2.ref} ${f2.detail}`, /manifest on foc.*manifest's blocks rebuild piece/);

    // 3. An epoch changed in the index alone: not the table's commitment.
    const earlier = await rewrite(bundle, path.join(data, 'earlier.car'), (index) => {
      const a = index.anchors![manifestAt]!;
      a.commitment = { ...a.commitment, epoch: 1 };
    });
    const r3 = await verify(earlier, false);
    assert.equal(r3.code, 1, r3.text);
    assert.match(anchorFinding(r3)?.detail ?? '', /no such commitment/);

    // 4. An epoch changed consistently (table and index): nothing offline can tell the epoch is
    //    wrong, so no anchor finding; the bundle's signature over the table is what breaks.
    const rewritten = await rewrite(bundle, path.join(data, 'epoch-forged.car'), (index, blocks) => {
      const forge = <T extends { shard: number; providerId: string; commitment?: { epoch: number } }>(x: T): T =>
        x.shard === -1 && x.providerId === 'foc' && x.commitment
          ? { ...x, commitment: { ...x.commitment, epoch: 1 } }
          : x;
      editTable(index, blocks, forge);
      index.anchors = index.anchors!.map(forge);
    });
    const r4 = await verify(rewritten);
    assert.equal(r4.code, 1, r4.text);
    assert.equal(anchorFinding(r4), undefined, 'the epoch is as recorded: not claimed as checked');
    assert.ok(
      r4.report.broken.some((b) => b.part === 'signature' && /names other parts/.test(b.detail)),
      JSON.stringify(r4.report.broken),
    );
  });

  it('signs the manifest of an archive packed in units at archive time', async (t) => {
    if (!env) {
      env = await startTemporal(t as never);
      if (!env) return t.skip('no Temporal server');
    }
    const data = tmpDir('pv-anchor-units-');
    const src = path.join(data, 'src');
    const files: Record<string, Buffer | string> = { 'big.bin': bytesOf(2 * MiB + 3, 'units-signed') };
    for (let i = 0; i < 8; i++) files[`small/${i}.txt`] = `file ${i}`;
    writeTree(src, files);
    const keys = writeKeyPair(data, 'units', 'ec');
    const config: Config = testConfig(path.join(data, 'home'), {
      pack: { shardBytes: 512 * 1024, chunkBytes: 64 * 1024, unitShards: 2 },
      replication: { copies: 2 },
      signing: { keyFile: keys.priv },
      providers: [0, 1].map((i) => ({ kind: 'local', id: `disk-${i}`, path: path.join(data, 'providers', `${i}`) })),
    } as never);
    const e = env;
    const tableCid = await withWorker(e, config, async () => {
      const summary = await (await startArchive(e.client, config, { dir: src, datasetId: 'units-ds' })).handle.result();
      const st = await e.client.workflow.getHandle(summary.stewardWorkflowId!).query(stewardStatusQuery);
      return st.replicaTable!.tableCid!;
    });
    // Read straight from the providers: no `evidence` command has run.
    const { root } = await readReplicaTable(config, tableCid);
    const sig = (root as { manifestSignature?: Parameters<typeof checkEnvelope>[0] } | undefined)?.manifestSignature;
    assert.ok(sig, 'the units archive signed its manifest in the table root');
    assert.equal(manifestStatementMismatch(sig, root!.manifestCid), undefined);
    assert.equal(checkEnvelope(sig, [loadVerifyingKey(keys.pub)], []).state, 'trusted');
  });
});
