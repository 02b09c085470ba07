/**
 * The provider contract, run against every provider implementation: local directories, S3 on
 * a real MinIO and IPFS on a real Kubo daemon, Filecoin (Synapse/PDP, Lotus deals) on a simulated
 * network (tests/sim). A provider whose server cannot be had skips.
 * Pieces are valid CARs, as Provenant's are (Kubo imports their blocks).
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { LocalProvider } from '../../../activities/providers/local.js';
import type { StorageProvider } from '../../../activities/providers/provider.js';
import { bytesOf, tmpDir } from '../../helpers/env.js';
import { KuboServer, MinioServer, serverOr, type Started } from '../../helpers/servers.js';
import { carOf, collect, kuboProvider, piece, s3Provider } from './fixtures.js';
import { FilecoinSim } from '../../sim/filecoin-sim.js';
import { lotusProvider, synapseProvider } from '../../sim/fixtures.js';

let minio: Started<MinioServer> | undefined;
let kubo: Started<KuboServer> | undefined;
let bucket = '';
/** A simulated Filecoin network (chain, PDP provider, Lotus miner) on loopback. */
let sim: FilecoinSim | undefined;

before(async () => {
  minio = await MinioServer.start();
  if (minio.ok) bucket = await minio.server.createBucket();
  kubo = await KuboServer.start();
  sim = await FilecoinSim.start();
});
after(async () => {
  if (minio?.ok) await minio.server.stop();
  if (kubo?.ok) await kubo.server.stop();
  await sim?.stop();
});

/** Each call gives a provider with its own namespace (directory, key prefix, MFS directory). */
type Make = (t: { skip(m: string): void }) => StorageProvider | undefined;
async function carPiece(approxBytes: number, seed: string) {
  const { bytes, rootCid } = await carOf(approxBytes, seed);
  return { bytes, ref: piece(bytes, rootCid) };
}

const unique = () => crypto.randomBytes(4).toString('hex');
const providers: [string, Make][] = [
  ['local', () => new LocalProvider('local-test', tmpDir('pv-prov-'))],
  [
    's3',
    (t) => {
      const m = serverOr(t, minio);
      return m && s3Provider(m, { bucket, prefix: `contract-${unique()}/` });
    },
  ],
  [
    'kubo',
    (t) => {
      const k = serverOr(t, kubo);
      return k && kuboProvider(k, { mfsDir: `/provenant-${unique()}` });
    },
  ],
  // Filecoin Onchain Cloud (Synapse SDK; a fresh wallet, so a fresh data set, each) and Lotus deals, on the simulated network.
  ['synapse (simulated Filecoin)', () => synapseProvider(sim!)],
  ['lotus (simulated Filecoin)', () => lotusProvider(sim!)],
];
/** A client cannot end a Filecoin deal early: these providers refuse `delete` (DeletionUnsupportedError). */
const cannotDelete = new Set(['lotus (simulated Filecoin)']);

for (const [kind, make] of providers) {
  describe(`${kind} provider`, () => {
    const open = make;

    it('stores a piece, reports it present, reads ranges and locates it by root', async (t) => {
      const p = open(t);
      if (!p) return;
      const { bytes, ref } = await carPiece(300_000, kind);
      const end = bytes.length;
      const placed = await p.put(ref, () => Readable.from([bytes]));
      assert.equal(placed.existed, false);
      assert.equal(placed.providerId, p.id);
      assert.deepEqual((await p.status(ref)).present, true);
      assert.deepEqual(await collect(p.readRange(ref, { offset: 1000, length: 5000 })), bytes.subarray(1000, 6000));
      assert.deepEqual(await collect(p.readRange(ref)), bytes);
      assert.deepEqual(await collect(p.readRange(ref, { offset: end - 10 })), bytes.subarray(end - 10));
      assert.deepEqual(
        await collect(p.readRange(ref, { offset: end - 10, length: 100 })),
        bytes.subarray(end - 10),
        'a range past the end is cut at the end',
      );
      assert.deepEqual(await p.locate(ref.rootCid), ref);
      await p.close?.();
    });

    it('is idempotent by piece CID', async (t) => {
      const p = open(t);
      if (!p) return;
      const { bytes, ref } = await carPiece(1000, 'idem');
      await p.put(ref, () => Readable.from([bytes]));
      let opened = 0;
      const again = await p.put(ref, () => (opened++, Readable.from([bytes])));
      assert.equal(again.existed, true);
      assert.equal(opened, 0, 'nothing re-uploaded');
      await p.close?.();
    });

    it('rejects bytes that do not match the piece with IntegrityError and keeps nothing', async (t) => {
      const p = open(t);
      if (!p) return;
      const { bytes, ref } = await carPiece(1000, 'good');
      const wrong = Buffer.from(bytes);
      wrong[10]! ^= 1;
      await assert.rejects(
        p.put(ref, () => Readable.from([wrong])),
        (e: Error) => e.name === 'IntegrityError',
      );
      assert.equal((await p.status(ref)).present, false);
      assert.equal(await p.locate(ref.rootCid), undefined);
      await p.close?.();
    });

    it('rejects a short stream with IntegrityError', async (t) => {
      const p = open(t);
      if (!p) return;
      const { bytes, ref } = await carPiece(5000, 'short');
      await assert.rejects(
        p.put(ref, () => Readable.from([bytes.subarray(0, 4000)])),
        (e: Error) => e.name === 'IntegrityError',
      );
      assert.equal((await p.status(ref)).present, false);
      await p.close?.();
    });

    it('reports a missing piece as absent, and deletes (or refuses to, where deals cannot be deleted)', async (t) => {
      const p = open(t);
      if (!p) return;
      const { bytes, ref } = await carPiece(500, 'del');
      assert.equal((await p.status(ref)).present, false);
      await assert.rejects(collect(p.readRange(ref, { length: 10 })), (e: Error) => e.name === 'PieceNotFoundError');
      assert.equal(await p.locate(ref.rootCid), undefined);
      await p.put(ref, () => Readable.from([bytes]));
      if (cannotDelete.has(kind)) {
        // A deal runs to its end: the client cannot delete it, and says so with a typed error.
        await assert.rejects(p.delete(ref), (e: Error) => e.name === 'DeletionUnsupportedError');
        assert.equal((await p.status(ref)).present, true, 'still stored');
        await p.close?.();
        return;
      }
      await p.delete(ref);
      assert.equal((await p.status(ref)).present, false);
      assert.equal(await p.locate(ref.rootCid), undefined);
      await p.delete(ref); // deleting twice is fine
      await p.close?.();
    });

    it('stores again after a delete (or keeps serving a deal it cannot delete)', async (t) => {
      const p = open(t);
      if (!p) return;
      const { bytes, ref } = await carPiece(2000, 'again');
      await p.put(ref, () => Readable.from([bytes]));
      if (cannotDelete.has(kind)) {
        await assert.rejects(p.delete(ref), (e: Error) => e.name === 'DeletionUnsupportedError');
        assert.equal((await p.put(ref, () => Readable.from([bytes]))).existed, true);
        assert.deepEqual(await collect(p.readRange(ref)), bytes);
        await p.close?.();
        return;
      }
      await p.delete(ref);
      const placed = await p.put(ref, () => Readable.from([bytes]));
      assert.equal(placed.existed, false);
      assert.deepEqual(await collect(p.readRange(ref)), bytes);
      await p.close?.();
    });
  });
}

describe('local provider writes', () => {
  it('leaves no temp file behind after a failed write', async () => {
    const dir = tmpDir('pv-prov-');
    const p = new LocalProvider('x', dir);
    const bytes = bytesOf(1000, 'tmp');
    const ref = piece(bytes);
    const failing = () =>
      Readable.from(
        (async function* () {
          yield bytes.subarray(0, 10);
          throw new Error('connection reset');
        })(),
      );
    await assert.rejects(p.put(ref, failing), (e: Error) => e.name === 'StoreError');
    assert.deepEqual(fs.readdirSync(path.join(dir, 'pieces')), []);
  });

  it('creates its root on first use, but refuses to write once a root it has seen is gone (an unmounted volume)', async () => {
    const dir = path.join(tmpDir('pv-prov-'), 'not-yet');
    const p = new LocalProvider('x', dir);
    const first = bytesOf(1000, 'root-1');
    await p.put(piece(first), () => Readable.from([first]));
    assert.ok(fs.existsSync(path.join(dir, 'pieces')));
    fs.renameSync(dir, `${dir}.unmounted`);
    const second = bytesOf(1000, 'root-2');
    await assert.rejects(
      p.put(piece(second), () => Readable.from([second])),
      (e: Error) => e.name === 'ProviderUnavailableError',
    );
    await assert.rejects(p.status(piece(first)), (e: Error) => e.name === 'ProviderUnavailableError');
    assert.equal(fs.existsSync(dir), false, 'the root is not made again');
  });
});
