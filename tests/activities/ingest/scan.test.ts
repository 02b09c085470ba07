/** Bad input at the source: each a typed error, and nothing left behind. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { InvalidFileNameError, SymlinkEscapesRootError } from '../../../activities/errors.js';
import { scanLocal, type ScanProgress } from '../../../activities/ingest/scan.js';
import { runPack } from '../../../activities/pack/packer.js';
import { nodeForAnyUid, tmpDir, writeTree } from '../../helpers/env.js';

const isError = (name: string) => (err: unknown) => err instanceof Error && err.name === name;

function setup(files: Record<string, string | Buffer>) {
  const root = tmpDir('pv-scan-');
  const src = path.join(root, 'src');
  writeTree(src, files);
  return { root, src, listing: path.join(root, 'stage', 'listing.ndjson') };
}

/**
 * The listing scanLocal must produce, built the plainest way: recursion, raw names sorted as
 * bytes, links followed by stat/realpath, one JSON.stringify per line.
 */
function referenceListing(root: string): string {
  const realRoot = fs.realpathSync(root);
  const lines: unknown[] = [];
  const walk = (real: string, name: string) => {
    lines.push(['D', name]);
    for (const raw of fs.readdirSync(real, { encoding: 'buffer' }).sort(Buffer.compare)) {
      const n = raw.toString('utf8');
      const target = fs.realpathSync(path.join(real, n));
      const st = fs.statSync(target);
      if (st.isDirectory()) walk(target, n);
      else if (st.isFile()) lines.push(['F', n, st.size, Math.trunc(st.mtimeMs), path.relative(realRoot, target)]);
    }
    lines.push(['E']);
  };
  walk(realRoot, '');
  return lines.map((l) => JSON.stringify(l) + '\n').join('');
}

/** A tree of `count` files in `dirs` directories, each with a link to `big/`, a directory of `count` files. */
function fanOut(src: string, count: number, links: number) {
  fs.mkdirSync(path.join(src, 'big'), { recursive: true });
  for (let i = 0; i < count; i++) fs.writeFileSync(path.join(src, 'big', `f${i}`), 'x');
  for (let i = 0; i < links; i++) fs.symlinkSync('big', path.join(src, `l${String(i).padStart(4, '0')}`));
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
    const lines = fs
      .readFileSync(listing, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => l.slice(0, 3)),
      [['D', ''], ['F', 'a.txt', 1], ['D', 'b'], ['F', '0.bin', 0], ['F', 'z.txt', 2], ['E'], ['E']],
    );
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
    await assert.rejects(
      scanLocal(src, listing),
      (err: Error) => err.name === 'InvalidFileNameError' && err.message.includes('\\xff'),
    );
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
      // The listing goes where that user may write; the directory is removed after.
      const out = `/tmp/pv-unreadable-${process.pid}`;
      t.after(() => fs.rmSync(out, { recursive: true, force: true }));
      const script = `import('${path.resolve('dist/activities/ingest/scan.js')}').then(m => m.scanLocal(${JSON.stringify(src)}, '${out}/l.ndjson')).then(() => console.log('OK'), e => console.log(e.name))`;
      const r = spawnSync(nodeForAnyUid(), ['-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
      if (r.error) return t.skip(`cannot drop privileges: ${r.error.message}`);
      assert.equal(r.stdout.trim(), 'UnreadableFileError', r.stderr);
      assert.deepEqual(fs.existsSync(out) ? fs.readdirSync(out) : [], [], 'no listing or temp file left behind');
    } else {
      await assert.rejects(scanLocal(src, path.join(root, 'l.ndjson')), isError('UnreadableFileError'));
    }
  });
});

describe('scanLocal at scale, progress and cancellation', () => {
  it('writes exactly the reference listing for a larger tree with odd names, links and nesting', async (t) => {
    const files: Record<string, string> = {};
    // Long names push the listing past one write batch (~1 MiB) and the progress steps.
    for (let d = 0; d < 30; d++) {
      for (let f = 0; f < 100; f++) files[`d${d}/${'n'.repeat(150)}-${f}.bin`] = 'x'.repeat((d * 100 + f) % 97);
    }
    // Byte order differs from UTF-16 order for the last two (U+FF61 is EF BD A1, U+1F600 is F0 9F 98 80).
    for (const n of ['a', 'Z', '_', ' space', 'é.txt', 'a"b\\c', 'new\nline', '日本語', '\uFF61', '\u{1F600}'])
      files[`odd/${n}`] = n;
    files['deep/1/2/3/4/5/6/7/leaf.txt'] = 'leaf';
    const { root, src, listing } = setup(files);
    t.after(() => fs.rmSync(root, { recursive: true, force: true }));
    fs.mkdirSync(path.join(src, 'empty'));
    fs.symlinkSync('d3', path.join(src, 'link-dir'));
    fs.symlinkSync(`../d7/${'n'.repeat(150)}-5.bin`, path.join(src, 'odd', 'link-file'));
    assert.equal(spawnSync('mkfifo', [path.join(src, 'odd', 'pipe')]).status, 0);

    const progress: ScanProgress[] = [];
    const r = await scanLocal(src, listing, (p) => progress.push(p));
    const expected = referenceListing(src);
    assert.ok(expected.length > 1 << 20, 'listing spans more than one write batch');
    assert.equal(fs.readFileSync(listing, 'utf8'), expected);
    assert.equal(r.files, 3000 + 10 + 1 + 100 + 1);
    assert.equal(r.dirs, 1 + 30 + 1 + 8 + 1 + 1);
    assert.equal(r.symlinksFollowed, 2);
    assert.deepEqual(r.specials, ['odd/pipe']);
    assert.equal(
      r.bytes,
      expected
        .split('\n')
        .filter((l) => l.startsWith('["F"'))
        .reduce((n, l) => n + JSON.parse(l)[2], 0),
    );
    assert.equal(fs.existsSync(`${listing}.tmp`), false);

    // Progress: while scanning (every 1000 files at most) and once at the end with the totals.
    assert.ok(progress.length >= 4, `progress called ${progress.length} times`);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i]!.files >= progress[i - 1]!.files);
    assert.deepEqual(progress.at(-1), { files: r.files, bytes: r.bytes });
  });

  it('re-creates the typed errors of the scan thread with their own class', async () => {
    const { root, src, listing } = setup({ 'ok.txt': 'x' });
    fs.symlinkSync(root, path.join(src, 'up'));
    await assert.rejects(scanLocal(src, listing), (err) => err instanceof SymlinkEscapesRootError);
    const { src: src2, listing: l2 } = setup({ 'ok.txt': 'x' });
    fs.writeFileSync(Buffer.concat([Buffer.from(src2 + '/'), Buffer.from([0xf0, 0x9f, 0x98])]), 'truncated UTF-8');
    await assert.rejects(scanLocal(src2, l2), (err) => err instanceof InvalidFileNameError);
    assert.equal(fs.existsSync(`${l2}.tmp`), false);
  });

  it('stops the walk when the signal aborts, leaving neither listing nor temporary file', async (t) => {
    // 300 links to a 1000-file directory: 301,000 files to list, far more than one progress step.
    const { root, src, listing } = setup({});
    t.after(() => fs.rmSync(root, { recursive: true, force: true }));
    fanOut(src, 1000, 300);
    const ac = new AbortController();
    const reason = new Error('cancelled by test');
    let calls = 0;
    await assert.rejects(
      scanLocal(
        src,
        listing,
        () => {
          calls++;
          ac.abort(reason);
        },
        ac.signal,
      ),
      (err) => err === reason,
    );
    assert.ok(calls >= 1);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(fs.existsSync(`${listing}.tmp`), false, 'temporary listing removed');
    assert.equal(fs.existsSync(listing), false);

    // Already aborted: nothing starts.
    await assert.rejects(scanLocal(src, listing, undefined, AbortSignal.abort(reason)), (err) => err === reason);
    assert.equal(fs.existsSync(`${listing}.tmp`), false);

    // Aborted while the root is still being checked, before the thread starts.
    const early = new AbortController();
    const pending = scanLocal(src, listing, undefined, early.signal);
    early.abort(reason);
    await assert.rejects(pending, (err) => err === reason);
    assert.equal(fs.existsSync(`${listing}.tmp`), false);

    // A throwing progress callback fails the scan the same way.
    const boom = new Error('progress failed');
    await assert.rejects(
      scanLocal(src, listing, () => {
        throw boom;
      }),
      (err) => err === boom,
    );
    assert.equal(fs.existsSync(`${listing}.tmp`), false);
    assert.equal(fs.existsSync(listing), false);
  });

  it('follows many links to the same directory (not a loop) and lists each', async () => {
    const { src, listing } = setup({});
    fanOut(src, 50, 20);
    const r = await scanLocal(src, listing);
    assert.equal(r.files, 50 * 21);
    assert.equal(r.symlinksFollowed, 20);
    assert.equal(fs.readFileSync(listing, 'utf8'), referenceListing(src));
  });
});

describe('runPack on a changing source', () => {
  it('fails with FileChangedError when a file changes after the scan, leaving no partial shard', async () => {
    const { root, src, listing } = setup({ 'a.bin': Buffer.alloc(3 * 1024 * 1024, 1), 'b.txt': 'stable' });
    await scanLocal(src, listing);
    fs.appendFileSync(path.join(src, 'a.bin'), 'more');
    const dir = path.join(root, 'stage');
    await assert.rejects(
      runPack({ sourceRoot: src, listingPath: listing, dir, shardBytes: 8 * 1024 * 1024 }),
      isError('FileChangedError'),
    );
    assert.deepEqual(
      fs.readdirSync(dir).filter((f) => f.endsWith('.partial')),
      [],
    );
  });

  it('fails with FileChangedError when a file is rewritten with the same size', async () => {
    const { root, src, listing } = setup({ 'a.bin': 'aaaa' });
    await scanLocal(src, listing);
    const future = new Date(Date.now() + 60_000);
    fs.writeFileSync(path.join(src, 'a.bin'), 'bbbb');
    fs.utimesSync(path.join(src, 'a.bin'), future, future);
    await assert.rejects(
      runPack({ sourceRoot: src, listingPath: listing, dir: path.join(root, 'stage'), shardBytes: 4 * 1024 * 1024 }),
      isError('FileChangedError'),
    );
  });
});
