/** Bad input at the source: each a typed error, and nothing left behind. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { scanLocal } from '../../../activities/ingest/scan.js';
import { runPack } from '../../../activities/pack/packer.js';
import { tmpDir, writeTree } from '../../helpers/env.js';

const isError = (name: string) => (err: unknown) => err instanceof Error && err.name === name;

function setup(files: Record<string, string | Buffer>) {
  const root = tmpDir('pv-scan-');
  const src = path.join(root, 'src');
  writeTree(src, files);
  return { root, src, listing: path.join(root, 'stage', 'listing.ndjson') };
}

describe('scanLocal', () => {
  it('lists files depth-first in byte order with sizes, and reports special files without reading them', async () => {
    const { src, listing } = setup({ 'b/z.txt': 'zz', 'a.txt': 'a', 'b/0.bin': Buffer.alloc(0) });
    const fifo = path.join(src, 'pipe');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    const r = await scanLocal(src, listing);
    assert.equal(r.files, 3);
    assert.equal(r.bytes, 3);
    assert.deepEqual(r.specials, ['pipe']);
    const lines = fs.readFileSync(listing, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.slice(0, 3)), [['D', ''], ['F', 'a.txt', 1], ['D', 'b'], ['F', '0.bin', 0], ['F', 'z.txt', 2], ['E'], ['E']]);
  });

  it('follows a symlink that stays inside the root', async () => {
    const { src, listing } = setup({ 'real/data.txt': 'hello' });
    fs.symlinkSync('real/data.txt', path.join(src, 'alias.txt'));
    const r = await scanLocal(src, listing);
    assert.equal(r.files, 2);
    assert.equal(r.symlinksFollowed, 1);
  });

  it('rejects a symlink escaping the root with SymlinkEscapesRootError', async () => {
    const { root, src, listing } = setup({ 'ok.txt': 'x' });
    fs.writeFileSync(path.join(root, 'secret'), 'outside');
    fs.symlinkSync(path.join(root, 'secret'), path.join(src, 'leak'));
    await assert.rejects(scanLocal(src, listing), isError('SymlinkEscapesRootError'));
    assert.equal(fs.existsSync(listing), false, 'no listing left behind');
  });

  it('rejects a symlink loop with SymlinkLoopError', async () => {
    const { src, listing } = setup({ 'd/f.txt': 'x' });
    fs.symlinkSync('..', path.join(src, 'd', 'up'));
    await assert.rejects(scanLocal(src, listing), isError('SymlinkLoopError'));
    const { src: src2, listing: l2 } = setup({ 'f.txt': 'x' });
    fs.symlinkSync('b', path.join(src2, 'a'));
    fs.symlinkSync('a', path.join(src2, 'b'));
    await assert.rejects(scanLocal(src2, l2), isError('SymlinkLoopError'));
  });

  it('rejects a dangling symlink with BrokenSymlinkError', async () => {
    const { src, listing } = setup({ 'f.txt': 'x' });
    fs.symlinkSync('nowhere', path.join(src, 'dangling'));
    await assert.rejects(scanLocal(src, listing), isError('BrokenSymlinkError'));
  });

  it('rejects a non-UTF-8 file name with InvalidFileNameError', async () => {
    const { src, listing } = setup({ 'f.txt': 'x' });
    const bad = Buffer.concat([Buffer.from(src + '/'), Buffer.from([0x66, 0xff, 0xfe])]);
    fs.writeFileSync(bad, 'latin-1 name');
    await assert.rejects(scanLocal(src, listing), (err: Error) => err.name === 'InvalidFileNameError' && err.message.includes('\\xff'));
  });

  it('rejects a missing source, a file as source and a tree without files', async () => {
    const { root, listing } = setup({ 'f.txt': 'x' });
    await assert.rejects(scanLocal(path.join(root, 'nope'), listing), isError('SourceNotFoundError'));
    await assert.rejects(scanLocal(path.join(root, 'src', 'f.txt'), listing), isError('NotADirectoryError'));
    fs.mkdirSync(path.join(root, 'empty', 'sub'), { recursive: true });
    await assert.rejects(scanLocal(path.join(root, 'empty'), listing), isError('EmptyDatasetError'));
  });

  it('rejects an unreadable file with UnreadableFileError', async (t) => {
    const { root, src } = setup({ 'locked.txt': 'secret', 'ok.txt': 'x' });
    fs.chmodSync(path.join(src, 'locked.txt'), 0o000);
    fs.chmodSync(root, 0o755);
    if (process.getuid?.() === 0) {
      // root reads everything: run the scan as an unprivileged user instead.
      const script = `import('${path.resolve('dist/activities/ingest/scan.js')}').then(m => m.scanLocal(${JSON.stringify(src)}, '/tmp/pv-unreadable-${process.pid}/l.ndjson')).then(() => console.log('OK'), e => console.log(e.name))`;
      const r = spawnSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
      if (r.error) return t.skip(`cannot drop privileges: ${r.error.message}`);
      assert.equal(r.stdout.trim(), 'UnreadableFileError', r.stderr);
    } else {
      await assert.rejects(scanLocal(src, path.join(root, 'l.ndjson')), isError('UnreadableFileError'));
    }
  });
});

describe('runPack on a changing source', () => {
  it('fails with FileChangedError when a file changes after the scan, leaving no partial shard', async () => {
    const { root, src, listing } = setup({ 'a.bin': Buffer.alloc(3 * 1024 * 1024, 1), 'b.txt': 'stable' });
    await scanLocal(src, listing);
    fs.appendFileSync(path.join(src, 'a.bin'), 'more');
    const dir = path.join(root, 'stage');
    await assert.rejects(runPack({ sourceRoot: src, listingPath: listing, dir, shardBytes: 8 * 1024 * 1024 }), isError('FileChangedError'));
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.partial')), []);
  });

  it('fails with FileChangedError when a file is rewritten with the same size', async () => {
    const { root, src, listing } = setup({ 'a.bin': 'aaaa' });
    await scanLocal(src, listing);
    const future = new Date(Date.now() + 60_000);
    fs.writeFileSync(path.join(src, 'a.bin'), 'bbbb');
    fs.utimesSync(path.join(src, 'a.bin'), future, future);
    await assert.rejects(runPack({ sourceRoot: src, listingPath: listing, dir: path.join(root, 'stage'), shardBytes: 4 * 1024 * 1024 }), isError('FileChangedError'));
  });
});
