/**
 * Restore from a hostile manifest: real shards on a local provider, and a manifest CAR built by
 * the manifest writer from file records that were tampered with (paths that climb out, absolute
 * paths, empty, `.`, NUL and backslash segments, one path twice, a path that is a file and a
 * directory, shards and ranges outside the shard list, sizes that disagree with the ranges). Each
 * fails with its typed error and a one-line message naming the path, writes nothing outside the
 * target and leaves the target empty. A symlink already in the target that points outside is
 * replaced, never followed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { scanLocal } from '../../../activities/ingest/scan.js';
import { writeManifest } from '../../../activities/manifest/manifest.js';
import { FILES, readShards, runPack, type FileRecord } from '../../../activities/pack/packer.js';
import type { ShardInfo } from '../../../activities/pack/shard-writer.js';
import { LocalProvider } from '../../../activities/providers/local.js';
import { restoreDataset } from '../../../activities/restore/restore.js';
import { bytesOf, readTree, tmpDir, writeTree } from '../../helpers/env.js';

const MiB = 1024 * 1024;
const SOURCE: Record<string, Buffer | string> = {
  'a.txt': 'alpha',
  'b.txt': 'bravo',
  'd/x.txt': 'x-ray',
  'e.txt': '',
  'f.txt': '',
  'big.bin': bytesOf(3 * MiB + 5, 'big'),
};

interface Staging {
  src: string;
  dir: string;
  shards: ShardInfo[];
  rootCid: string;
  records: FileRecord[];
  providerRoot: string;
}

async function stage(): Promise<Staging> {
  const src = tmpDir('pv-hostile-src-');
  writeTree(src, SOURCE);
  const dir = tmpDir('pv-hostile-stage-');
  const listingPath = path.join(dir, 'listing.ndjson');
  await scanLocal(src, listingPath);
  const packed = await runPack({ sourceRoot: src, listingPath, dir, shardBytes: 2 * MiB });
  const shards = readShards(dir);
  const records = fs
    .readFileSync(path.join(dir, FILES), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as FileRecord);
  const providerRoot = tmpDir('pv-hostile-prov-');
  const p = new LocalProvider('local', providerRoot);
  for (const s of shards) {
    await p.put({ pieceCid: s.pieceCid, carCid: s.carCid, rootCid: s.rootCid, bytes: s.carBytes }, () =>
      fs.createReadStream(path.join(dir, s.file)),
    );
  }
  return { src, dir, shards, rootCid: packed.rootCid, records, providerRoot };
}

let n = 0;
/** A manifest CAR written from the file records as `tamper` leaves them, stored beside the shards. */
async function manifestOf(st: Staging, tamper: (recs: FileRecord[]) => FileRecord[]): Promise<string> {
  const k = n++;
  const recs = tamper(structuredClone(st.records));
  const filesPath = path.join(st.dir, `files-hostile-${k}.ndjson`);
  fs.writeFileSync(filesPath, recs.map((r) => JSON.stringify(r) + '\n').join(''));
  const out = path.join(st.dir, `manifest-hostile-${k}.car`);
  const ref = await writeManifest(
    {
      datasetId: 'hostile',
      root: st.rootCid,
      source: { kind: 'local', uri: `file://${st.src}` },
      meta: { case: String(k) },
      tool: { name: 'provenant', version: 'test' },
      createdAt: new Date(0).toISOString(),
      layout: { chunkBytes: MiB, fileWidth: 1024, shardBytes: 2 * MiB },
    },
    st.shards,
    filesPath,
    out,
    1 << 30,
  );
  await new LocalProvider('local', st.providerRoot).put(ref, () => fs.createReadStream(out));
  return ref.rootCid;
}

const rename = (from: string, to: string) => (recs: FileRecord[]) =>
  recs.map((r) => (r.path === from ? { ...r, path: to } : r));
const edit = (p: string, f: (r: FileRecord) => FileRecord) => (recs: FileRecord[]) =>
  recs.map((r) => (r.path === p ? f(r) : r));

/** Restores into `<box>/target` and returns the error, after checking the box and the target. */
async function refused(st: Staging, manifestCid: string, opts: { paths?: string[] } = {}): Promise<Error> {
  const box = tmpDir('pv-hostile-box-');
  const target = path.join(box, 'target');
  const err = await restoreDataset({
    manifestCid,
    target,
    force: false,
    providers: [new LocalProvider('local', st.providerRoot)],
    hashThreads: 0,
    ...opts,
  }).then(
    () => assert.fail('the restore succeeded'),
    (e: unknown) => e as Error,
  );
  assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
  assert.deepEqual(fs.readdirSync(box), ['target'], 'nothing written beside the target');
  assert.deepEqual(fs.readdirSync(target), [], 'the target is left empty');
  return err;
}

describe('restore from a hostile manifest', () => {
  let st: Staging;
  before(async () => {
    st = await stage();
    assert.ok(st.shards.length >= 2, `${st.shards.length} shards`);
    assert.ok(st.records.some((r) => r.path === 'big.bin' && r.ranges && r.ranges.length >= 2));
  });

  it('restores the untampered manifest (the baseline every case changes)', async () => {
    const target = tmpDir('pv-hostile-ok-');
    await restoreDataset({
      manifestCid: await manifestOf(st, (r) => r),
      target,
      force: false,
      providers: [new LocalProvider('local', st.providerRoot)],
    });
    assert.deepEqual([...readTree(target).keys()].sort(), Object.keys(SOURCE).sort());
  });

  it('refuses paths that climb out, are absolute, or hold empty, dot, NUL or backslash segments', async () => {
    for (const bad of [
      '../x',
      '../../../../../../../tmp/pv-hostile-escape',
      'a/../../x',
      'd/../../x',
      '..',
      '/etc/x',
      `${tmpDir('pv-hostile-abs-')}/x`,
      '',
      '.',
      './a.txt',
      'd/./x.txt',
      'd//x.txt',
      'd/',
      'a\0b',
      '..\\x',
      'd\\..\\..\\x',
    ]) {
      for (const victim of ['a.txt', 'e.txt', 'big.bin']) {
        const err = await refused(st, await manifestOf(st, rename(victim, bad)));
        assert.equal(err.name, 'PathEscapeError', `${JSON.stringify(bad)} as ${victim}: ${err.name} ${err.message}`);
        assert.ok(err.message.includes(JSON.stringify(bad)), `names the path: ${err.message}`);
      }
    }
    assert.ok(!fs.existsSync('/tmp/pv-hostile-escape'));
  });

  it('refuses one path twice, and a path that is both a file and a directory', async () => {
    // Writes run at once, so either record of the pair may be the one refused.
    const cases: [string, (r: FileRecord[]) => FileRecord[], string[]][] = [
      ['two files', rename('b.txt', 'a.txt'), ['a.txt']],
      ['two empty files', rename('f.txt', 'e.txt'), ['e.txt']],
      ['a file, then a directory', rename('b.txt', 'a.txt/b'), ['a.txt', 'a.txt/b']],
      ['a directory, then a file', rename('e.txt', 'd'), ['d', 'd/x.txt']],
      ['a file, then below it', rename('f.txt', 'e.txt/f'), ['e.txt', 'e.txt/f']],
    ];
    for (const [what, tamper, named] of cases) {
      const err = await refused(st, await manifestOf(st, tamper));
      assert.equal(err.name, 'PathConflictError', `${what}: ${err.name} ${err.message}`);
      assert.ok(
        named.some((p) => err.message.includes(JSON.stringify(p))),
        `${what} names the path: ${err.message}`,
      );
    }
  });

  it('refuses records whose shards or ranges point outside the shard list, or disagree with the size', async () => {
    const last = st.shards.length - 1;
    const cases: [string, (r: FileRecord[]) => FileRecord[], string][] = [
      ['shards past the list', edit('a.txt', (r) => ({ ...r, shards: [r.shards[0], last + 5] })), 'a.txt'],
      ['a shard before the list', edit('a.txt', (r) => ({ ...r, shards: [-1, r.shards[1]] })), 'a.txt'],
      ['shards backwards', edit('big.bin', (r) => ({ ...r, shards: [r.shards[1], r.shards[0]] })), 'big.bin'],
      [
        'a range in a shard past the list',
        edit('big.bin', (r) => ({ ...r, ranges: r.ranges!.map((x, i) => (i === 1 ? { ...x, shard: last + 3 } : x)) })),
        'big.bin',
      ],
      [
        'a range outside the file’s shards',
        edit('big.bin', (r) => ({ ...r, ranges: r.ranges!.map((x, i) => (i === 0 ? { ...x, shard: -2 } : x)) })),
        'big.bin',
      ],
      [
        'ranges that do not follow on',
        edit('big.bin', (r) => ({
          ...r,
          ranges: r.ranges!.map((x, i) => (i === 1 ? { ...x, offset: x.offset + 1 } : x)),
        })),
        'big.bin',
      ],
      ['a size over its ranges', edit('big.bin', (r) => ({ ...r, size: r.size + 1 })), 'big.bin'],
      ['a size under its ranges', edit('big.bin', (r) => ({ ...r, size: r.size - 1 })), 'big.bin'],
      ['a size over its leaf', edit('a.txt', (r) => ({ ...r, size: r.size + 1 })), 'a.txt'],
      ['a size under its leaf', edit('a.txt', (r) => ({ ...r, size: r.size - 1 })), 'a.txt'],
      ['an empty file with a size', edit('e.txt', (r) => ({ ...r, size: 3 })), 'e.txt'],
    ];
    for (const [what, tamper, named] of cases) {
      for (const paths of [undefined, [named]]) {
        const err = await refused(st, await manifestOf(st, tamper), paths ? { paths } : {});
        assert.ok(
          err.name === 'ManifestInvalidError' || err.name === 'IntegrityError',
          `${what}${paths ? ' (partial)' : ''}: ${err.name} ${err.message}`,
        );
        assert.ok(err.message.includes(JSON.stringify(named)), `${what} names the path: ${err.message}`);
      }
    }
  });

  it('replaces a symlink in the target that points outside, never writing through it (--force)', async () => {
    const manifestCid = await manifestOf(st, (r) => r);
    const outside = tmpDir('pv-hostile-outside-');
    fs.writeFileSync(path.join(outside, 'keep'), 'mine');
    const target = tmpDir('pv-hostile-force-');
    fs.symlinkSync(outside, path.join(target, 'd'));
    fs.symlinkSync(path.join(outside, 'keep'), path.join(target, 'a.txt'));
    // The work directory's own name, planted as a link out of the target.
    fs.symlinkSync(outside, path.join(target, `.provenant-restore-${manifestCid.slice(-16)}`));
    await restoreDataset({
      manifestCid,
      target,
      force: true,
      providers: [new LocalProvider('local', st.providerRoot)],
    });
    assert.deepEqual(fs.readdirSync(outside), ['keep']);
    assert.equal(fs.readFileSync(path.join(outside, 'keep'), 'utf8'), 'mine');
    assert.ok(fs.lstatSync(path.join(target, 'd')).isDirectory());
    assert.ok(fs.lstatSync(path.join(target, 'a.txt')).isFile());
    assert.equal(fs.readFileSync(path.join(target, 'd/x.txt'), 'utf8'), 'x-ray');
    assert.equal(fs.readFileSync(path.join(target, 'a.txt'), 'utf8'), 'alpha');
  });
});
