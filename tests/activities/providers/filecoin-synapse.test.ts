/**
 * The Synapse (Filecoin Onchain Cloud / PDP) provider against the SIMULATED Filecoin network of
 * tests/sim: split store → commit, chain-checked idempotency, proof faults, the payment runway
 * and its top-up, chain and provider failures, wallet authorisation and piece size limits.
 * The provider contract suite runs on it too (contract.test.ts).
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { FilecoinSim } from '../../sim/filecoin-sim.js';
import { simWallet, synapseProvider } from '../../sim/fixtures.js';
import { collect, isFailure, shardOf } from './fixtures.js';

const USDFC = 10n ** 18n;
const DAY = 2880;
let sim: FilecoinSim;
before(async () => {
  sim = await FilecoinSim.start();
});
after(async () => {
  await sim.stop();
});

const shard = (seed: string, approxBytes = 50_000) => shardOf(seed, approxBytes);

const failure = isFailure;

describe('synapse provider on the simulated network: store and commit', () => {
  it('a commit not yet on chain is reported as CommitPendingError and never re-uploaded or re-sent', async () => {
    const p = synapseProvider(sim);
    const { bytes, ref } = await shard('pending');
    const uploads = sim.stats.pdpUploads;
    const commits = sim.stats.pdpCommits;
    sim.chain.autoMine = false;
    try {
      await assert.rejects(
        p.put(ref, () => Readable.from([bytes])),
        failure('CommitPendingError', true),
      );
      let opened = 0;
      await assert.rejects(
        p.put(ref, () => (opened++, Readable.from([bytes]))),
        failure('CommitPendingError', true),
      );
      assert.equal(opened, 0, 'the retry did not read the shard again');
      assert.equal(sim.stats.pdpUploads - uploads, 1, 'uploaded once');
      assert.equal(sim.stats.pdpCommits - commits, 1, 'commit sent once');
      sim.chain.mine();
    } finally {
      sim.chain.autoMine = true;
    }
    const placed = await p.put(ref, () => Readable.from([bytes]));
    assert.equal(placed.existed, false, 'this put is the one that stored it');
    assert.equal((await p.status(ref)).present, true);
    assert.equal(sim.stats.pdpUploads - uploads, 1);
  });

  it('an upload the provider is still processing is CommitPendingError, and the retry commits without uploading again', async () => {
    const p = synapseProvider(sim);
    const { bytes, ref } = await shard('processing');
    const uploads = sim.stats.pdpUploads;
    sim.holdProcessing = true;
    try {
      await assert.rejects(
        p.put(ref, () => Readable.from([bytes])),
        failure('CommitPendingError', true),
      );
    } finally {
      sim.holdProcessing = false;
    }
    sim.finishProcessing();
    assert.equal((await p.put(ref, () => Readable.from([bytes]))).existed, false);
    assert.equal(sim.stats.pdpUploads - uploads, 1, 'uploaded once');
    assert.equal((await p.status(ref)).present, true);
  });

  it('a commit sent again by another worker (response lost) lands once: the chain refuses the replayed nonce', async () => {
    const wallet = simWallet(sim);
    const first = synapseProvider(sim, {}, wallet);
    const { bytes, ref } = await shard('replayed');
    const seed = await shard('replayed-seed');
    await first.put(seed.ref, () => Readable.from([seed.bytes])); // the data set exists: the piece goes through addPieces
    const uploads = sim.stats.pdpUploads;
    sim.chain.autoMine = false;
    try {
      await assert.rejects(
        first.put(ref, () => Readable.from([bytes])),
        failure('CommitPendingError', true),
      );
      // A worker without the first one's memory: the bytes are parked, so no upload; the commit is sent again.
      const second = synapseProvider(sim, {}, wallet);
      await assert.rejects(
        second.put(ref, () => Readable.from([bytes])),
        failure('CommitPendingError', true),
      );
      assert.equal(sim.stats.pdpUploads - uploads, 1, 'bytes uploaded once');
      sim.chain.mine();
      const placed = await second.put(ref, () => Readable.from([bytes]));
      assert.equal(placed.existed, true);
    } finally {
      sim.chain.autoMine = true;
    }
    const [dataSetId] = sim.chain.dataSetsOf(wallet.address as `0x${string}`);
    const copies = sim.chain.piecesOf(dataSetId!).filter((x) => x.pieceCid === ref.pieceCid);
    assert.equal(copies.length, 1, 'exactly one copy of the piece is in the data set');
  });

  it('keeps its data set across instances and finds pieces by root CID with their CAR CID', async () => {
    const wallet = simWallet(sim);
    const a = await shard('locate-a');
    const b = await shard('locate-b');
    await synapseProvider(sim, {}, wallet).put(a.ref, () => Readable.from([a.bytes]));
    await synapseProvider(sim, {}, wallet).put(b.ref, () => Readable.from([b.bytes]));
    assert.equal(
      sim.chain.dataSetsOf(wallet.address as `0x${string}`).length,
      1,
      'one data set for the wallet and provider',
    );
    const fresh = synapseProvider(sim, {}, wallet);
    assert.deepEqual(await fresh.locate(b.ref.rootCid), b.ref);
    assert.deepEqual(await fresh.locate(a.ref.rootCid), a.ref);
    assert.equal(await fresh.locate('bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'), undefined);
  });

  it('a piece the provider lost is reported missing by readRange', async () => {
    const p = synapseProvider(sim);
    const { bytes, ref } = await shard('lost');
    await p.put(ref, () => Readable.from([bytes]));
    sim.pdpDrop(ref.pieceCid);
    await assert.rejects(collect(p.readRange(ref, { length: 100 })), failure('PieceNotFoundError', false));
  });
});

describe('synapse provider on the simulated network: proofs and payment', () => {
  it('a proof fault makes the piece absent with the fault in the detail, until it is proven again', async () => {
    const wallet = simWallet(sim);
    const p = synapseProvider(sim, {}, wallet);
    const { bytes, ref } = await shard('fault');
    await p.put(ref, () => Readable.from([bytes]));
    const [dataSetId] = sim.chain.dataSetsOf(wallet.address as `0x${string}`);
    assert.equal((await p.status(ref)).present, true);
    sim.chain.failProofs(dataSetId!);
    sim.advance(DAY + 1); // the proving deadline passes without a proof
    const faulted = await p.status(ref);
    assert.equal(faulted.present, false);
    assert.match(faulted.detail ?? '', /proof fault/);
    sim.chain.failProofs(dataSetId!, false);
    sim.advance(DAY + 1);
    assert.equal((await p.status(ref)).present, true, 'proven again');
  });

  it('the payment runway drains as epochs pass, renew tops it up, and an exhausted runway is an expiry', async () => {
    const wallet = simWallet(sim, { deposit: USDFC / 10n }); // 0.1 USDFC: 30 days locked, ~20 days of runway
    const p = synapseProvider(sim, { minRunwayDays: 30, topUpRunwayDays: 90 }, wallet);
    const { bytes, ref } = await shard('runway');
    await p.put(ref, () => Readable.from([bytes]));
    const days = (iso?: string) => (Date.parse(iso!) - Date.now()) / 86_400_000;
    const before = await p.status(ref);
    assert.ok(
      days(before.expiresAt) > 15 && days(before.expiresAt) < 25,
      `runway of ~20 days, got ${days(before.expiresAt)}`,
    );
    sim.advance(5 * DAY);
    const drained = await p.status(ref);
    assert.ok(Math.abs(days(before.expiresAt) - days(drained.expiresAt) - 5) < 0.1, 'five days less runway');

    const funds = sim.chain.accountOf(wallet.address as `0x${string}`).funds;
    const renewed = await p.renew(ref);
    assert.ok(sim.chain.accountOf(wallet.address as `0x${string}`).funds > funds, 'deposited');
    assert.ok(
      Math.abs(days(renewed.expiresAt) - 90) < 0.5,
      `runway topped up to 90 days, got ${days(renewed.expiresAt)}`,
    );
    assert.ok(Math.abs(days((await p.status(ref)).expiresAt) - 90) < 0.5);
    const toppedUp = sim.chain.accountOf(wallet.address as `0x${string}`).funds;
    const again = await p.renew(ref);
    assert.equal(sim.chain.accountOf(wallet.address as `0x${string}`).funds, toppedUp, 'no second deposit');
    assert.ok(Math.abs(days(again.expiresAt) - 90) < 0.5, 'a runway above the minimum is left alone');

    sim.advance(91 * DAY);
    const lapsed = await p.status(ref);
    assert.equal(lapsed.present, false);
    assert.ok(Date.parse(lapsed.expiresAt!) < Date.now(), 'expiresAt in the past');
  });

  it('a deposit not yet on chain is RenewalPendingError, and renewing again does not pay twice', async () => {
    const wallet = simWallet(sim, { deposit: USDFC / 10n });
    const p = synapseProvider(sim, { minRunwayDays: 30, topUpRunwayDays: 60 }, wallet);
    const { bytes, ref } = await shard('renew-pending');
    await p.put(ref, () => Readable.from([bytes]));
    const funds = sim.chain.usdfcBalance(wallet.address as `0x${string}`);
    sim.chain.autoMine = false;
    try {
      await assert.rejects(p.renew(ref), failure('RenewalPendingError', true));
      await assert.rejects(p.renew(ref), failure('RenewalPendingError', true));
      sim.chain.mine();
    } finally {
      sim.chain.autoMine = true;
    }
    const paid = funds - sim.chain.usdfcBalance(wallet.address as `0x${string}`);
    assert.ok(paid > 0n, 'one deposit');
    await p.renew(ref);
    assert.equal(funds - sim.chain.usdfcBalance(wallet.address as `0x${string}`), paid, 'no second deposit');
  });
});

describe('synapse provider on the simulated network: failures', () => {
  it('a chain that stalls fails with a retryable ProviderUnavailableError', async () => {
    const p = synapseProvider(sim, { requestTimeoutMs: 300 });
    const { bytes, ref } = await shard('stall');
    sim.faults.rpc = { kind: 'stall' };
    try {
      await assert.rejects(p.status(ref), failure('ProviderUnavailableError', true));
      await assert.rejects(
        p.put(ref, () => Readable.from([bytes])),
        failure('ProviderUnavailableError', true),
      );
    } finally {
      delete sim.faults.rpc;
    }
  });

  it('a chain that answers with errors fails with a retryable ProviderUnavailableError', async () => {
    const p = synapseProvider(sim);
    const { ref } = await shard('rpc-error');
    for (const fault of [{ kind: 'error', status: 503 }, { kind: 'error' }] as const) {
      sim.faults.rpc = fault;
      try {
        await assert.rejects(p.status(ref), failure('ProviderUnavailableError', true));
      } finally {
        delete sim.faults.rpc;
      }
    }
  });

  it('a provider that fails the upload leaves nothing stored (retryable StoreError)', async () => {
    const p = synapseProvider(sim);
    const { bytes, ref } = await shard('upload-500');
    sim.faults.pdp = { kind: 'error', status: 500, match: /^PUT / };
    try {
      await assert.rejects(
        p.put(ref, () => Readable.from([bytes])),
        failure('StoreError', true),
      );
    } finally {
      delete sim.faults.pdp;
    }
    assert.equal(sim.pdpHas(ref.pieceCid), false);
    assert.equal((await p.put(ref, () => Readable.from([bytes]))).existed, false, 'the retry stores it');
  });

  it('a data set of another wallet is refused with a non-retryable ProviderAuthError', async () => {
    const owner = simWallet(sim);
    const { bytes, ref } = await shard('owned');
    await synapseProvider(sim, {}, owner).put(ref, () => Readable.from([bytes]));
    const [dataSetId] = sim.chain.dataSetsOf(owner.address as `0x${string}`);
    const intruder = synapseProvider(sim, { dataSetId: Number(dataSetId) });
    const other = await shard('intruder');
    await assert.rejects(
      intruder.put(other.ref, () => Readable.from([other.bytes])),
      failure('ProviderAuthError', false),
    );
  });

  it('a wallet that has not approved the storage service is refused with ProviderAuthError', async () => {
    const p = synapseProvider(sim, {}, simWallet(sim, { approveOperator: false }));
    const { bytes, ref } = await shard('unapproved');
    await assert.rejects(
      p.put(ref, () => Readable.from([bytes])),
      failure('ProviderAuthError', false),
    );
  });

  it('a wallet without the deposit the lockup needs fails with InsufficientFundsError', async () => {
    const p = synapseProvider(sim, {}, simWallet(sim, { deposit: 1n }));
    const { bytes, ref } = await shard('broke');
    await assert.rejects(
      p.put(ref, () => Readable.from([bytes])),
      failure('InsufficientFundsError', false),
    );
  });

  it('a missing or malformed private key is a ConfigError', () => {
    assert.throws(
      () => synapseProvider(sim, {}, { key: '' }),
      (e: Error) => e.name === 'ConfigError',
    );
    assert.throws(
      () => synapseProvider(sim, {}, { key: 'not-a-key' }),
      (e: Error) => e.name === 'ConfigError',
    );
  });

  it('a shard larger than the provider takes fails with PieceSizeExceededError before any upload', async () => {
    const small = await FilecoinSim.start({ maxPieceSizeInBytes: 64n * 1024n }); // a provider taking 64 KiB pieces
    try {
      const p = synapseProvider(small);
      const { bytes, ref } = await shard('too-big', 100_000);
      let opened = 0;
      await assert.rejects(
        p.put(ref, () => (opened++, Readable.from([bytes]))),
        failure('PieceSizeExceededError', false),
      );
      assert.equal(opened, 0);
      assert.equal(small.stats.pdpUploads, 0);
      const fits = await shard('fits', 20_000);
      assert.equal(
        (await p.put(fits.ref, () => Readable.from([fits.bytes]))).existed,
        false,
        'a piece under the limit is stored',
      );
    } finally {
      await small.stop();
    }
  });
});
