/** The provider contract, run against every provider implementation available here. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { carCidFromSha256, sha256 } from '../../../activities/pack/cids.js';
import { commpOf } from '../../../activities/pack/commp.js';
import { LocalProvider } from '../../../activities/providers/local.js';
import type { PieceRef, StorageProvider } from '../../../activities/providers/provider.js';
import { bytesOf, tmpDir } from '../../helpers/env.js';

const providers: [string, () => StorageProvider][] = [['local', () => new LocalProvider('local-test', tmpDir('pv-prov-'))]];

function piece(bytes: Buffer, rootCid = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'): PieceRef {
  return { pieceCid: commpOf(bytes).pieceCid, carCid: carCidFromSha256(sha256(bytes)), rootCid, bytes: bytes.length };
}

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

for (const [kind, make] of providers) {
  describe(`${kind} provider`, () => {
    it('stores a piece, reports it present, reads ranges and locates it by root', async () => {
      const p = make();
      const bytes = bytesOf(300_000, kind);
      const ref = piece(bytes);
      const placed = await p.put(ref, () => Readable.from([bytes]));
      assert.equal(placed.existed, false);
      assert.deepEqual((await p.status(ref)).present, true);
      assert.deepEqual(await collect(p.readRange(ref, 1000, 5000, {})), bytes.subarray(1000, 6000));
      assert.deepEqual(await collect(p.readRange(ref, 0, undefined, {})), bytes);
      assert.deepEqual(await p.locate(ref.rootCid), ref);
    });

    it('is idempotent by piece CID', async () => {
      const p = make();
      const bytes = bytesOf(1000, 'idem');
      const ref = piece(bytes);
      await p.put(ref, () => Readable.from([bytes]));
      let opened = 0;
      const again = await p.put(ref, () => (opened++, Readable.from([bytes])));
      assert.equal(again.existed, true);
      assert.equal(opened, 0, 'nothing re-uploaded');
    });

    it('rejects bytes that do not match the piece with IntegrityError and keeps nothing', async () => {
      const p = make();
      const bytes = bytesOf(1000, 'good');
      const ref = piece(bytes);
      const wrong = Buffer.from(bytes);
      wrong[10] ^= 1;
      await assert.rejects(p.put(ref, () => Readable.from([wrong])), (e: Error) => e.name === 'IntegrityError');
      assert.equal((await p.status(ref)).present, false);
    });

    it('reports a missing piece as absent, and deletes', async () => {
      const p = make();
      const bytes = bytesOf(500, 'del');
      const ref = piece(bytes);
      assert.equal((await p.status(ref)).present, false);
      await assert.rejects(collect(p.readRange(ref, 0, 10, {})), (e: Error) => e.name === 'PieceNotFoundError');
      await p.put(ref, () => Readable.from([bytes]));
      await p.delete(ref);
      assert.equal((await p.status(ref)).present, false);
    });
  });
}

describe('local provider writes', () => {
  it('leaves no temp file behind after a failed write', async () => {
    const dir = tmpDir('pv-prov-');
    const p = new LocalProvider('x', dir);
    const bytes = bytesOf(1000, 'tmp');
    const ref = piece(bytes);
    const failing = () => Readable.from((async function* () { yield bytes.subarray(0, 10); throw new Error('connection reset'); })());
    await assert.rejects(p.put(ref, failing), (e: Error) => e.name === 'StoreError');
    assert.deepEqual(fs.readdirSync(path.join(dir, 'pieces')), []);
  });
});
