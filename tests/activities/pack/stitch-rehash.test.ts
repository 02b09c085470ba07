/**
 * The stitch hashes a file that spans units (sha256) once more from the source: a local file must
 * still be the one the units read (size and mtime as listed), or the manifest would record the
 * digest of other bytes than its leaves. A rewrite of the same size is refused with FileChangedError.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FileChangedError } from '../../../activities/errors.js';
import { hashWholeFile } from '../../../activities/pack/stitch.js';
import { bytesOf, tmpDir } from '../../helpers/env.js';

describe('the stitch re-reading a file that spans units', () => {
  const dir = tmpDir('pv-stitch-rehash-');
  const req = { sourcePath: dir };
  const file = path.join(dir, 'model.bin');
  const listed = () => {
    const st = fs.statSync(file);
    return { size: st.size, mtimeMs: Math.trunc(st.mtimeMs) };
  };

  it('hashes the file as listed', async () => {
    const bytes = bytesOf(3 * 1024 * 1024 + 17, 'rehash');
    fs.writeFileSync(file, bytes);
    const l = listed();
    const digest = await hashWholeFile(req, 'model.bin', 'model.bin', l.size, l.mtimeMs, null);
    assert.equal(digest, crypto.createHash('sha256').update(bytes).digest('hex'));
  });

  it('refuses a file rewritten with the same size after the units read it', async () => {
    fs.writeFileSync(file, bytesOf(4096, 'before'));
    const l = listed();
    fs.writeFileSync(file, bytesOf(4096, 'after'));
    // A later mtime, whatever the clock's resolution.
    fs.utimesSync(file, new Date(), new Date(l.mtimeMs + 5000));
    await assert.rejects(
      hashWholeFile(req, 'model.bin', 'model.bin', l.size, l.mtimeMs, null),
      (err: Error) =>
        err instanceof FileChangedError &&
        /changed since the units read it \(size or mtime\): "model\.bin"$/.test(err.message),
    );
  });

  it('refuses a file that is gone or of another size', async () => {
    fs.writeFileSync(file, bytesOf(4096, 'size'));
    const l = listed();
    await assert.rejects(hashWholeFile(req, 'model.bin', 'model.bin', l.size + 1, l.mtimeMs, null), FileChangedError);
    await assert.rejects(hashWholeFile(req, 'gone.bin', 'gone.bin', 10, l.mtimeMs, null), FileChangedError);
  });
});
