/**
 * The Lotus (Filecoin deals and DDO claims) provider against the SIMULATED Filecoin network of
 * tests/sim: deal and claim lifetimes, slashing, sector faults, claim extension and new deals
 * for renewal, retrieval of zero-padded pieces, piece CID conversions, auth and chain failures.
 * The provider contract suite runs on it too (contract.test.ts).
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Piece as DsPiece } from '@web3-storage/data-segment';
import { pieceCidV2, pieceInfo } from '../../../activities/pack/cids.js';
import type { PieceRef } from '../../../activities/providers/provider.js';
import { FilecoinSim } from '../../sim/filecoin-sim.js';
import { lotusProvider } from '../../sim/fixtures.js';
import { collect, isFailure, piece, shardOf } from './fixtures.js';

const DAY = 2880;
let sim: FilecoinSim;
before(async () => {
  sim = await FilecoinSim.start();
});
after(async () => {
  await sim.stop();
});

const shard = (seed: string, approxBytes = 40_000) => shardOf(seed, approxBytes);

const failure = isFailure;

const days = (iso?: string) => (Date.parse(iso!) - Date.now()) / 86_400_000;
/** The simulated chain's deal for a piece (the latest). */
function dealOf(ref: PieceRef) {
  const v1 = pieceInfo(ref.pieceCid).v1;
  const id = sim.lotus
    .dealIds()
    .filter((d) => sim.lotus.deal(d)!.Proposal.PieceCID['/'] === v1)
    .at(-1);
  assert.ok(id !== undefined, 'a deal was made');
  return { id, deal: sim.lotus.deal(id)! };
}

describe('lotus provider on the simulated network: deals and claims', () => {
  it('an active deal is present until its end epoch; once ended it is absent with expiresAt in the past', async () => {
    const p = lotusProvider(sim, { verifiedDeal: false, dealDurationEpochs: 180 * DAY, dealStartOffsetEpochs: DAY });
    const { bytes, ref } = await shard('deal-expiry');
    const placed = await p.put(ref, () => Readable.from([bytes]));
    assert.ok(Math.abs(days(placed.expiresAt) - 181) < 0.1, `ends 181 days out, got ${days(placed.expiresAt)}`);
    const { deal } = dealOf(ref);
    assert.equal(deal.Proposal.Label, ref.rootCid, 'the deal is labelled with the payload root');
    const active = await p.status(ref);
    assert.equal(active.present, true);
    assert.ok(Math.abs(days(active.expiresAt) - 181) < 0.1);
    assert.equal(active.bytes, bytes.length);
    sim.advance(181 * DAY + 1);
    const ended = await p.status(ref);
    assert.equal(ended.present, false);
    assert.ok(Date.parse(ended.expiresAt!) < Date.now(), 'expiresAt in the past');
    assert.match(ended.detail ?? '', /expired/);
  });

  it('a verified deal becomes a claim that keeps the piece after the deal ends, until the claim term ends', async () => {
    const p = lotusProvider(sim, { verifiedDeal: true, dealDurationEpochs: 180 * DAY, dealStartOffsetEpochs: 0 });
    const { bytes, ref } = await shard('claim');
    await p.put(ref, () => Readable.from([bytes]));
    const v1 = pieceInfo(ref.pieceCid).v1;
    const [, claim] = sim.lotus.claimList().find(([, c]) => c.Data['/'] === v1)!;
    const status = await p.status(ref);
    assert.equal(status.present, true);
    assert.ok(
      Math.abs(days(status.expiresAt) - (claim.TermStart + claim.TermMax - sim.lotus.head()) / DAY) < 0.1,
      'expires when the claim does',
    );
    sim.advance(200 * DAY); // past the deal, inside the claim's 90-day buffer
    assert.equal((await p.status(ref)).present, true);
    sim.advance(80 * DAY);
    assert.equal((await p.status(ref)).present, false);
  });

  it('a slashed deal is absent with the slash in the detail', async () => {
    const p = lotusProvider(sim, { verifiedDeal: false });
    const { bytes, ref } = await shard('slashed');
    await p.put(ref, () => Readable.from([bytes]));
    sim.lotus.slashDeal(dealOf(ref).id);
    const s = await p.status(ref);
    assert.equal(s.present, false);
    assert.match(s.detail ?? '', /slashed/);
  });

  it('a faulty sector makes the piece absent until it recovers', async () => {
    const p = lotusProvider(sim);
    const { bytes, ref } = await shard('faulty');
    await p.put(ref, () => Readable.from([bytes]));
    const sector = dealOf(ref).deal.State.SectorNumber;
    sim.lotus.faultSector(sector);
    const s = await p.status(ref);
    assert.equal(s.present, false);
    assert.match(s.detail ?? '', new RegExp(`sector ${sector} faulty`));
    sim.lotus.faultSector(sector, false);
    assert.equal((await p.status(ref)).present, true);
  });

  it('a deal whose sector is not sealed yet is not present', async () => {
    const p = lotusProvider(sim, { verifiedDeal: false });
    const { bytes, ref } = await shard('sealing');
    sim.lotus.sealDelayEpochs = 10;
    try {
      await p.put(ref, () => Readable.from([bytes]));
    } finally {
      sim.lotus.sealDelayEpochs = 0;
    }
    const s = await p.status(ref);
    assert.equal(s.present, false);
    assert.match(s.detail ?? '', /sealing/);
    sim.advance(10);
    assert.equal((await p.status(ref)).present, true);
  });
});

describe('lotus provider on the simulated network: renewal', () => {
  it('renew extends the claim term with a verified registry message', async () => {
    const p = lotusProvider(sim, { verifiedDeal: true, dealDurationEpochs: 180 * DAY, dealStartOffsetEpochs: 0 });
    const { bytes, ref } = await shard('extend');
    await p.put(ref, () => Readable.from([bytes]));
    sim.advance(150 * DAY);
    const before = await p.status(ref);
    assert.ok(
      Math.abs(days(before.expiresAt) - 120) < 0.1,
      `the claim has 270 - 150 days left, got ${days(before.expiresAt)}`,
    );
    const renewed = await p.renew(ref);
    assert.ok(
      Math.abs(days(renewed.expiresAt) - 180) < 0.1,
      `a term ending 180 days from now, got ${days(renewed.expiresAt)}`,
    );
    const after = await p.status(ref);
    assert.equal(after.present, true);
    assert.ok(
      Math.abs(Date.parse(after.expiresAt!) - Date.parse(renewed.expiresAt!)) < 60_000,
      'the chain reports the new term',
    );
  });

  it('a claim extension not yet on chain is RenewalPendingError; the next call sees it landed', async () => {
    const p = lotusProvider(sim, { verifiedDeal: true, dealDurationEpochs: 180 * DAY, dealStartOffsetEpochs: 0 });
    const { bytes, ref } = await shard('extend-pending');
    await p.put(ref, () => Readable.from([bytes]));
    sim.advance(150 * DAY);
    sim.lotus.autoMine = false;
    try {
      await assert.rejects(p.renew(ref), failure('RenewalPendingError', true));
      sim.lotus.mine();
    } finally {
      sim.lotus.autoMine = true;
    }
    const calls = sim.stats.rpcCalls.get('Filecoin.MpoolPushMessage') ?? 0;
    const renewed = await p.renew(ref);
    assert.equal(sim.stats.rpcCalls.get('Filecoin.MpoolPushMessage') ?? 0, calls, 'no second message');
    assert.ok(Math.abs(days(renewed.expiresAt) - 180) < 0.1);
  });

  it('renew of an unverified deal makes a new deal for the piece the provider holds', async () => {
    const p = lotusProvider(sim, { verifiedDeal: false, dealDurationEpochs: 180 * DAY, dealStartOffsetEpochs: 0 });
    const { bytes, ref } = await shard('new-deal');
    await p.put(ref, () => Readable.from([bytes]));
    const first = dealOf(ref).id;
    sim.advance(150 * DAY);
    const uploads = sim.stats.lotusUploads;
    const renewed = await p.renew(ref);
    assert.notEqual(dealOf(ref).id, first, 'a second deal');
    assert.equal(sim.stats.lotusUploads, uploads, 'no new upload');
    assert.ok(Math.abs(days(renewed.expiresAt) - 180) < 0.1);
    sim.advance(40 * DAY); // past the first deal's end
    assert.equal((await p.status(ref)).present, true, 'kept by the new deal');
  });

  it('renew of a piece without a deal is PieceNotFoundError', async () => {
    const { ref } = await shard('never-stored');
    await assert.rejects(lotusProvider(sim).renew(ref), failure('PieceNotFoundError', false));
  });
});

describe('lotus provider on the simulated network: retrieval and pieces', () => {
  it('reads ranges of the payload although the provider serves the piece zero-padded', async () => {
    const p = lotusProvider(sim);
    const { bytes, ref } = await shard('padded', 70_000);
    await p.put(ref, () => Readable.from([bytes]));
    const served = await fetch(`${sim.retrievalUrl}/piece/${pieceInfo(ref.pieceCid).v1}`);
    const raw = Buffer.from(await served.arrayBuffer());
    assert.ok(raw.length > bytes.length, 'the endpoint serves padding past the payload');
    assert.deepEqual(raw.subarray(0, bytes.length), bytes);
    assert.deepEqual(await collect(p.readRange(ref)), bytes);
    assert.deepEqual(
      await collect(p.readRange(ref, { offset: bytes.length - 5, length: 1000 })),
      bytes.subarray(bytes.length - 5),
    );
    assert.deepEqual(await collect(p.readRange(ref, { offset: bytes.length, length: 10 })), Buffer.alloc(0));
  });

  it('converts v2 piece CIDs to v1 CIDs and sizes and back, as data-segment does', async () => {
    for (const n of [127, 1000, 65_024, 70_000]) {
      const { bytes } = await shard(`cid-${n}`, n);
      const ref = piece(bytes);
      const theirs = DsPiece.fromPayload(bytes);
      const info = pieceInfo(ref.pieceCid);
      assert.equal(info.v1, theirs.toInfo().link.toString());
      assert.equal(BigInt(info.paddedBytes), theirs.size);
      assert.equal(info.rawBytes, bytes.length);
      assert.equal(pieceCidV2(info.v1, info.paddedBytes, info.rawBytes), ref.pieceCid);
    }
  });

  it('delete is refused with DeletionUnsupportedError and the deal stays', async () => {
    const p = lotusProvider(sim);
    const { bytes, ref } = await shard('undeletable');
    await p.put(ref, () => Readable.from([bytes]));
    await assert.rejects(p.delete(ref), failure('DeletionUnsupportedError', false));
    assert.equal((await p.status(ref)).present, true);
  });
});

describe('lotus provider on the simulated network: failures', () => {
  it('a wrong API token is a non-retryable ProviderAuthError', async () => {
    const p = lotusProvider(sim, {}, 'not-the-token');
    const { bytes, ref } = await shard('bad-token');
    await assert.rejects(p.status(ref), failure('ProviderAuthError', false));
    await assert.rejects(
      p.put(ref, () => Readable.from([bytes])),
      failure('ProviderAuthError', false),
    );
  });

  it('no token where deal making needs one is a non-retryable ProviderAuthError', async () => {
    const p = lotusProvider(sim, {}, null);
    const { bytes, ref } = await shard('no-token');
    await assert.rejects(
      p.put(ref, () => Readable.from([bytes])),
      failure('ProviderAuthError', false),
    );
  });

  it('a Lotus node that stalls or fails is a retryable ProviderUnavailableError', async () => {
    const p = lotusProvider(sim, { requestTimeoutMs: 300 });
    const { ref } = await shard('lotus-down');
    for (const fault of [{ kind: 'stall' }, { kind: 'error', status: 502 }, { kind: 'error' }] as const) {
      sim.faults.rpc = fault;
      try {
        await assert.rejects(p.status(ref), failure('ProviderUnavailableError', true));
      } finally {
        delete sim.faults.rpc;
      }
    }
  });

  it('a retrieval endpoint that stalls is a retryable ProviderUnavailableError', async () => {
    const p = lotusProvider(sim, { requestTimeoutMs: 300 });
    const { bytes, ref } = await shard('retrieval-down');
    await p.put(ref, () => Readable.from([bytes]));
    sim.faults.retrieval = { kind: 'stall', match: /^GET / };
    try {
      await assert.rejects(collect(p.readRange(ref, { length: 100 })), failure('ProviderUnavailableError', true));
    } finally {
      delete sim.faults.retrieval;
    }
  });

  it("a piece larger than the miner's sectors fails with PieceSizeExceededError before any upload or deal", async () => {
    const small = await FilecoinSim.start();
    small.lotus.sectorSize = 64 * 1024;
    try {
      const p = lotusProvider(small);
      const { bytes, ref } = await shard('too-big', 80_000);
      let opened = 0;
      await assert.rejects(
        p.put(ref, () => (opened++, Readable.from([bytes]))),
        failure('PieceSizeExceededError', false),
      );
      assert.equal(opened, 0);
      assert.equal(small.stats.lotusUploads, 0);
      assert.equal(small.stats.rpcCalls.get('Filecoin.ClientStartDeal') ?? 0, 0);
      const fits = await shard('fits', 30_000);
      assert.equal((await p.put(fits.ref, () => Readable.from([fits.bytes]))).existed, false);
    } finally {
      await small.stop();
    }
  });
});
