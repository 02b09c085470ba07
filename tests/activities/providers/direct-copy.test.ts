/** Direct-I/O copies of piece files: byte-identical at every size around the block and chunk edges. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { copyFileDirect, DirectIoUnsupported } from '../../../activities/providers/direct-copy.js';
import { LocalProvider } from '../../../activities/providers/local.js';
import { carCidFromSha256 } from '../../../activities/pack/cids.js';
import { bytesOf, tmpDir } from '../../helpers/env.js';
import crypto from 'node:crypto';
import { Readable } from 'node:stream';

const MiB = 1024 * 1024;

describe('copyFileDirect', () => {
  const dir = tmpDir('pv-direct-');
  for (const size of [0, 1, 4095, 4096, 4097, MiB, 8 * MiB - 1, 8 * MiB, 8 * MiB + 1, 17 * MiB + 123]) {
    it(`copies ${size} bytes exactly`, async (t) => {
      const src = path.join(dir, `src-${size}`);
      const dst = path.join(dir, `dst-${size}`);
      const data = bytesOf(size, `d${size}`);
      fs.writeFileSync(src, data);
      try {
        await copyFileDirect(src, dst);
      } catch (err) {
        if (err instanceof DirectIoUnsupported && !process.env.PROVENANT_REQUIRE_ALL)
          return t.skip(`direct I/O unavailable here: ${err.message}`);
        throw err;
      }
      assert.ok(fs.readFileSync(dst).equals(data), 'same bytes');
      assert.equal(fs.statSync(dst).size, size);
    });
  }

  it('refuses to overwrite, and leaves nothing when the source is missing', async () => {
    const src = path.join(dir, 'exists');
    fs.writeFileSync(src, bytesOf(MiB, 'x'));
    await assert.rejects(copyFileDirect(src, src), (err: NodeJS.ErrnoException) => err.code === 'EEXIST');
    const dst = path.join(dir, 'never');
    await assert.rejects(
      copyFileDirect(path.join(dir, 'missing'), dst),
      (err: NodeJS.ErrnoException) => err.code === 'ENOENT',
    );
    assert.equal(fs.existsSync(dst), false);
  });

  it('stops when cancelled, and leaves nothing', async () => {
    const src = path.join(dir, 'cancelled-src');
    fs.writeFileSync(src, bytesOf(20 * MiB, 'cancel'));
    const dst = path.join(dir, 'cancelled-dst');
    const ac = new AbortController();
    ac.abort(new Error('archive cancelled'));
    await assert.rejects(copyFileDirect(src, dst, ac.signal), (err: Error) => err.message === 'archive cancelled');
    assert.equal(fs.existsSync(dst), false);
  });
});

describe('LocalProvider.put from a local file', () => {
  const piece = (bytes: Buffer) => {
    const carCid = carCidFromSha256(crypto.createHash('sha256').update(bytes).digest());
    return { pieceCid: `baga${carCid.slice(4, 40)}`, carCid, rootCid: carCid, bytes: bytes.length };
  };
  const never = () =>
    Readable.from(
      // eslint-disable-next-line require-yield -- a stream that fails as soon as it is read
      (async function* () {
        throw new Error('streamed instead of copied');
      })(),
    );

  it('copies a checked file without streaming it, and keeps the source', async () => {
    const root = tmpDir('pv-local-');
    const src = path.join(root, 'shard.car');
    const bytes = bytesOf(3 * MiB + 7, 'shard');
    fs.writeFileSync(src, bytes);
    const p = new LocalProvider('a', path.join(root, 'a'));
    const ref = piece(bytes);
    const placed = await p.put(ref, never, { localFile: src });
    assert.equal(placed.existed, false);
    assert.match(placed.evidence ?? '', /copy/);
    assert.ok(fs.existsSync(src), 'source kept');
    const stored = path.join(root, 'a', 'pieces', `${ref.pieceCid}.car`);
    assert.ok(fs.readFileSync(stored).equals(bytes));
    assert.notEqual(fs.statSync(stored).ino, fs.statSync(src).ino, 'an independent copy, not a link');
  });

  it('takes the file itself when the caller is done with it, and a retry finds the piece in place', async () => {
    const root = tmpDir('pv-local-');
    const src = path.join(root, 'shard.car');
    const bytes = bytesOf(2 * MiB, 'last');
    fs.writeFileSync(src, bytes);
    const ino = fs.statSync(src).ino;
    const p = new LocalProvider('b', path.join(root, 'b'));
    const ref = piece(bytes);
    const placed = await p.put(ref, never, { localFile: src, consumeLocalFile: true });
    assert.match(placed.evidence ?? '', /moved in/);
    assert.equal(fs.existsSync(src), false, 'staged file taken');
    const stored = path.join(root, 'b', 'pieces', `${ref.pieceCid}.car`);
    assert.equal(fs.statSync(stored).ino, ino, 'the very bytes that were hashed');
    assert.ok(fs.readFileSync(stored).equals(bytes));
    assert.equal((await p.put(ref, never, { localFile: src, consumeLocalFile: true })).existed, true);
  });

  it('refuses a local file of the wrong size with IntegrityError and stores nothing', async () => {
    const root = tmpDir('pv-local-');
    const src = path.join(root, 'shard.car');
    const bytes = bytesOf(MiB, 'short');
    fs.writeFileSync(src, bytes.subarray(1));
    const p = new LocalProvider('c', path.join(root, 'c'));
    await assert.rejects(
      p.put(piece(bytes), never, { localFile: src, consumeLocalFile: true }),
      (err: Error) => err.name === 'IntegrityError',
    );
    assert.ok(fs.existsSync(src), 'nothing taken');
    assert.deepEqual(fs.readdirSync(path.join(root, 'c', 'pieces')), []);
  });
});
