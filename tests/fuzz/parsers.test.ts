/**
 * Seeded fuzzing of the parsers that read bytes a provider or the disk hands back: the manifest
 * CAR (readManifestCar, then every paged list walked), the per-shard block index (readBlockIndex),
 * small CARs (readSmallCar), and the shard sections a restore checks as they stream. Each case
 * mutates a valid input (bit flips, truncation, insertion, a varint overflow, a huge length, a
 * wrong CID codec, shuffled, dropped or doubled sections, or a field of a block rewritten and
 * re-hashed up to a new root) and must either give something valid or throw a ProvenantError,
 * within a time bound. PROVENANT_FUZZ_SEED and PROVENANT_FUZZ_SCALE change the run.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as dagJson from '@ipld/dag-json';
import { CID } from 'multiformats/cid';
import varint from 'varint';
import { ProvenantError } from '../../activities/errors.js';
import { scanLocal } from '../../activities/ingest/scan.js';
import {
  manifestFiles,
  manifestShards,
  readManifestCar,
  shardBlocks,
  ShardLookup,
  shardCount,
  writeManifest,
} from '../../activities/manifest/manifest.js';
import { BlockIndexWriter, readBlockIndex } from '../../activities/pack/block-index.js';
import { cidOf, RAW_CODE } from '../../activities/pack/cids.js';
import { FILES, readShards, runPack } from '../../activities/pack/packer.js';
import type { ShardInfo } from '../../activities/pack/shard-writer.js';
import { pieceOfCar, readSmallCar, smallCar } from '../../activities/providers/kit/car.js';
import { LocalProvider } from '../../activities/providers/local.js';
import { restoreDataset } from '../../activities/restore/restore.js';
import { bytesOf, readTree, tmpDir, writeTree } from '../helpers/env.js';

const SEED = Number(process.env.PROVENANT_FUZZ_SEED ?? 12);
const SCALE = Number(process.env.PROVENANT_FUZZ_SCALE ?? 1);
/** No single case may take longer than this (a parser that loops or waits for ever fails here). */
const CASE_MS = 5_000;
const MiB = 1024 * 1024;

/** mulberry32: small, seeded, the same sequence everywhere. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)]! };
}
type Rng = ReturnType<typeof prng>;

/** The sections of a CAR: [start, end) of the header's and of each block's section. */
function sections(car: Buffer): [number, number][] {
  const out: [number, number][] = [];
  for (let at = 0; at < car.length;) {
    const len = varint.decode(car, at);
    const end = at + varint.decode.bytes! + len;
    out.push([at, end]);
    at = end;
  }
  return out;
}

const MUTATIONS = [
  'flip',
  'flips',
  'truncate',
  'insert',
  'varint-overflow',
  'huge-length',
  'zero-length',
  'cid-codec',
  'shuffle',
  'drop',
  'double',
  'garbage',
] as const;
type Mutation = (typeof MUTATIONS)[number];

/** One byte-level mutation of a CAR (or of any framed bytes: then the section kinds fall back to flips). */
function mutate(rng: Rng, input: Buffer, kind: Mutation, framed: boolean): Buffer {
  const b = Buffer.from(input);
  const secs = framed ? sections(input) : [];
  const blockSecs = secs.slice(1);
  const sec = blockSecs.length ? rng.pick(blockSecs) : undefined;
  switch (kind) {
    case 'flip':
      b[rng.int(b.length)]! ^= 1 << rng.int(8);
      return b;
    case 'flips':
      for (let i = 1 + rng.int(16); i > 0; i--) b[rng.int(b.length)]! ^= 1 << rng.int(8);
      return b;
    case 'truncate':
      return b.subarray(0, rng.int(b.length));
    case 'insert': {
      const at = rng.int(b.length + 1);
      return Buffer.concat([b.subarray(0, at), randomBytes(rng, 1 + rng.int(64)), b.subarray(at)]);
    }
    case 'garbage':
      return randomBytes(rng, rng.int(b.length + 1));
    case 'varint-overflow': {
      const at = sec && rng.int(2) ? sec[0] : 0;
      const end = at + varint.encodingLength(varint.decode(b, at));
      return Buffer.concat([b.subarray(0, at), Buffer.alloc(10 + rng.int(4), 0xff), b.subarray(end)]);
    }
    case 'huge-length':
    case 'zero-length': {
      const at = sec && rng.int(4) ? sec[0] : 0;
      const end = at + varint.encodingLength(varint.decode(b, at));
      const n =
        kind === 'zero-length' ? 0 : rng.pick([2 ** 31, 2 ** 32 + 7, 2 ** 40, 2 ** 52, Number.MAX_SAFE_INTEGER]);
      return Buffer.concat([b.subarray(0, at), Buffer.from(varint.encode(n)), b.subarray(end)]);
    }
    case 'cid-codec': {
      if (!sec) return mutate(rng, input, 'flip', false);
      // The section's CID: varint length, then 0x01 (CIDv1), then the codec varint.
      const cidAt = sec[0] + varint.encodingLength(varint.decode(b, sec[0]));
      const codecAt = cidAt + 1;
      const codecEnd = codecAt + varint.encodingLength(varint.decode(b, codecAt));
      const codec = rng.pick([0x55, 0x70, 0x71, 0x0129, 0x0202, 0x12, 0x7fffffff]);
      return Buffer.concat([b.subarray(0, codecAt), Buffer.from(varint.encode(codec)), b.subarray(codecEnd)]);
    }
    case 'shuffle': {
      const parts = blockSecs.map(([s, e]) => input.subarray(s, e));
      for (let i = parts.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [parts[i], parts[j]] = [parts[j]!, parts[i]!];
      }
      return Buffer.concat([input.subarray(0, secs[0]?.[1] ?? 0), ...parts]);
    }
    case 'drop':
    case 'double': {
      if (!sec) return mutate(rng, input, 'truncate', false);
      const part = input.subarray(sec[0], sec[1]);
      return Buffer.concat([
        input.subarray(0, sec[0]),
        ...(kind === 'double' ? [part, part] : []),
        input.subarray(sec[1]),
      ]);
    }
  }
}

function randomBytes(rng: Rng, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = rng.int(256);
  return out;
}

interface Tally {
  cases: number;
  typed: number;
  accepted: number;
  byType: Map<string, number>;
}
const tally = (): Tally => ({ cases: 0, typed: 0, accepted: 0, byType: new Map() });

/** Runs one case: it must end within CASE_MS, with a value (checked by the caller) or a ProvenantError. */
async function fuzzCase(t: Tally, what: string, run: () => Promise<unknown>): Promise<void> {
  t.cases++;
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${CASE_MS} ms`)), CASE_MS);
  });
  try {
    await Promise.race([run(), hang]);
    t.accepted++;
  } catch (err) {
    if (!(err instanceof ProvenantError)) {
      const e = err as Error;
      assert.fail(`${what}: untyped ${e?.name}: ${e?.message}\n${e?.stack}`);
    }
    assert.ok(!err.message.includes('\n'), `${what}: a one-line message: ${err.message}`);
    t.typed++;
    t.byType.set(err.name, (t.byType.get(err.name) ?? 0) + 1);
  } finally {
    clearTimeout(timer);
  }
  const ms = Date.now() - started;
  assert.ok(ms < CASE_MS, `${what} took ${ms} ms`);
}

const total = tally();
function summary(name: string, t: Tally): string {
  total.cases += t.cases;
  total.typed += t.typed;
  total.accepted += t.accepted;
  const types = [...t.byType].map(([k, v]) => `${k} ${v}`).join(', ');
  return `fuzz ${name}: ${t.cases} cases, ${t.typed} typed errors, ${t.accepted} accepted (seed ${SEED}) [${types}]`;
}

// ---------------------------------------------------------------------------------------------

interface Archive {
  src: string;
  dir: string;
  shards: ShardInfo[];
  manifestCid: string;
  manifestCar: Buffer;
  providerRoot: string;
}

/** A small real archive (3 shards), its manifest written with tiny pages so every list has inner nodes. */
async function archive(): Promise<Archive> {
  const src = tmpDir('pv-fuzz-src-');
  const files: Record<string, Buffer | string> = {
    'a.txt': 'alpha',
    'e.txt': '',
    'big.bin': bytesOf(3 * MiB + 9, 'f'),
  };
  for (let i = 0; i < 7; i++) files[`d/${i}.txt`] = `file ${i}`;
  files['z.bin'] = bytesOf(MiB + 3, 'z');
  writeTree(src, files);
  const dir = tmpDir('pv-fuzz-stage-');
  const listingPath = path.join(dir, 'listing.ndjson');
  await scanLocal(src, listingPath);
  const packed = await runPack({ sourceRoot: src, listingPath, dir, shardBytes: 2 * MiB });
  const shards = readShards(dir);
  const out = path.join(dir, 'manifest.car');
  const ref = await writeManifest(
    {
      datasetId: 'fuzz',
      root: packed.rootCid,
      source: { kind: 'local', uri: `file://${src}` },
      meta: {},
      tool: { name: 'provenant', version: 'test' },
      createdAt: new Date(0).toISOString(),
      layout: { chunkBytes: MiB, fileWidth: 1024, shardBytes: 2 * MiB },
    },
    shards,
    path.join(dir, FILES),
    out,
    1 << 30,
    { layout: { shardsPerPage: 2, blocksPerPage: 2, filesPerPage: 2, linksPerNode: 2 } },
  );
  const providerRoot = tmpDir('pv-fuzz-prov-');
  const p = new LocalProvider('local', providerRoot);
  for (const s of shards) {
    await p.put({ pieceCid: s.pieceCid, carCid: s.carCid, rootCid: s.rootCid, bytes: s.carBytes }, () =>
      fs.createReadStream(path.join(dir, s.file)),
    );
  }
  return { src, dir, shards, manifestCid: ref.rootCid, manifestCar: fs.readFileSync(out), providerRoot };
}

/** Everything a reader of the manifest walks: the root, every shard, file record and block entry. */
async function walkManifest(file: string, cid: string): Promise<void> {
  const { manifest, pages } = await readManifestCar(file, cid);
  const count = Math.min(shardCount(manifest), 64);
  const lookup = new ShardLookup(manifest, pages);
  let shards = 0;
  for (const s of manifestShards(manifest, pages)) {
    if (++shards > 64) break;
    let blocks = 0;
    for (const b of shardBlocks(manifest, pages, s)) if (++blocks > 10_000 || !Array.isArray(b)) break;
  }
  for (let i = 0; i < count; i++) lookup.get(i);
  let files = 0;
  for (const f of manifestFiles(manifest, pages)) if (++files > 10_000 || typeof f.path !== 'string') break;
}

/** The blocks of a CAR by CID (dag-json ones decoded), and its root. */
async function blocksOf(car: Buffer) {
  const { roots, blocks } = await readSmallCar(car, 'fixture');
  return {
    root: roots[0]!.toString(),
    values: new Map(blocks.map((b) => [b.cid.toString(), dagJson.decode(b.bytes)])),
  };
}

const jsonCid = (v: unknown) => cidOf(dagJson.code, crypto.createHash('sha256').update(dagJson.encode(v)).digest());

/**
 * Replaces block `cid` by `value`, re-hashing it and every block above it (CIDs are plain strings
 * in the manifest), so the result is a well-formed CAR whose root names the tampered tree.
 */
function rewrite(
  values: Map<string, unknown>,
  root: string,
  cid: string,
  value: unknown,
): { root: string; car: Buffer } {
  const next = new Map(values);
  let [at, v] = [cid, value];
  for (;;) {
    next.delete(at);
    const c = jsonCid(v).toString();
    next.set(c, v);
    if (at === root) {
      const rootCid = CID.parse(c);
      const blocks = [...next].map(([k, x]) => ({ cid: CID.parse(k), bytes: dagJson.encode(x) }));
      blocks.sort((a, b) => (a.cid.equals(rootCid) ? -1 : b.cid.equals(rootCid) ? 1 : 0));
      return { root: c, car: smallCar(rootCid, blocks) };
    }
    const needle = JSON.stringify(at);
    const parent = [...next].find(([k, x]) => k !== c && JSON.stringify(x).includes(needle));
    if (!parent)
      return {
        root,
        car: smallCar(
          CID.parse(root),
          [...next].map(([k, x]) => ({ cid: CID.parse(k), bytes: dagJson.encode(x) })),
        ),
      };
    const replaced = JSON.parse(JSON.stringify(parent[1]).replaceAll(needle, JSON.stringify(c))) as unknown;
    [at, v] = [parent[0], replaced];
  }
}

const ODD_VALUES: unknown[] = [
  -1,
  0,
  1,
  2 ** 31,
  2 ** 53 - 1,
  1e308,
  0.5,
  -0.5,
  '',
  '..',
  '../../x',
  '/etc/passwd',
  'not a cid',
  'bafkqaaa',
  null,
  true,
  [],
  [1, 2, 3],
  {},
  { '/': 'bafkqaaa' },
];

/** A copy of `v` with one field somewhere inside changed, removed, or an array emptied or doubled. */
function tamper(rng: Rng, v: unknown): unknown {
  const copy = JSON.parse(JSON.stringify(v)) as unknown;
  const spots: { holder: Record<string, unknown> | unknown[]; key: string | number }[] = [];
  const visit = (x: unknown) => {
    const entries: [string | number, unknown][] = Array.isArray(x)
      ? x.map((y, i) => [i, y])
      : x && typeof x === 'object'
        ? Object.entries(x)
        : [];
    for (const [key, y] of entries) {
      spots.push({ holder: x as Record<string, unknown> | unknown[], key });
      visit(y);
    }
  };
  visit(copy);
  if (!spots.length) return rng.pick(ODD_VALUES);
  const { holder, key } = rng.pick(spots);
  const h = holder as Record<string | number, unknown>;
  const cur = h[key];
  switch (rng.int(6)) {
    case 0:
      if (Array.isArray(holder)) holder.splice(key as number, 1);
      else delete h[key];
      break;
    case 1:
      if (Array.isArray(cur)) h[key] = rng.int(2) ? [] : [...cur, ...cur];
      else h[key] = rng.pick(ODD_VALUES);
      break;
    case 2:
      if (typeof cur === 'number') h[key] = cur + rng.pick([-1, 1, 1000, -1000, 2 ** 40]);
      else h[key] = rng.pick(ODD_VALUES);
      break;
    default:
      h[key] = rng.pick(ODD_VALUES);
  }
  return copy;
}

describe('fuzzed parsers', { timeout: 300_000 }, () => {
  let a: Archive;
  const lines: string[] = [];
  after(() => {
    lines.push(`fuzz total: ${total.cases} cases, ${total.typed} typed errors, ${total.accepted} accepted, 0 untyped`);
    console.log(lines.join('\n'));
  });
  before(async () => {
    a = await archive();
    assert.ok(a.shards.length >= 3, `${a.shards.length} shards`);
  });

  it('the manifest CAR: byte mutations are read as valid or refused with a typed error', async () => {
    const rng = prng(SEED);
    const t = tally();
    const dir = tmpDir('pv-fuzz-manifest-');
    await walkManifest(path.join(a.dir, 'manifest.car'), a.manifestCid);
    for (let i = 0; i < 1200 * SCALE; i++) {
      const kind = MUTATIONS[i % MUTATIONS.length]!;
      const file = path.join(dir, `m-${i % 8}.car`);
      fs.writeFileSync(file, mutate(rng, a.manifestCar, kind, true));
      await fuzzCase(t, `manifest case ${i} (${kind})`, () => walkManifest(file, a.manifestCid));
    }
    lines.push(summary('manifest bytes', t));
    assert.ok(t.typed > t.cases / 2, lines.at(-1));
  });

  it('the manifest tree: a field of any block rewritten and re-hashed is read or refused, and so is the restore', async () => {
    const rng = prng(SEED + 1);
    const t = tally();
    const restores = tally();
    const dir = tmpDir('pv-fuzz-tree-');
    const { root, values } = await blocksOf(a.manifestCar);
    const keys = [...values.keys()];
    const provider = new LocalProvider('local', a.providerRoot);
    const want = readTree(a.src);
    for (let i = 0; i < 600 * SCALE; i++) {
      const cid = rng.int(3) === 0 ? root : rng.pick(keys);
      const out = rewrite(values, root, cid, tamper(rng, values.get(cid)));
      const file = path.join(dir, `t-${i % 8}.car`);
      fs.writeFileSync(file, out.car);
      await fuzzCase(t, `tree case ${i} (block ${cid === root ? 'root' : cid})`, () => walkManifest(file, out.root));
      if (i % 3 !== 0) continue;
      // The same manifest, stored and restored: the restore is the reader that must not be fooled.
      await provider.put(pieceOfCar(out.car, out.root), () => fs.createReadStream(file));
      const target = tmpDir('pv-fuzz-restore-');
      await fuzzCase(restores, `restore case ${i}`, async () => {
        await restoreDataset({ manifestCid: out.root, target, force: false, providers: [provider], hashThreads: 0 });
        // Accepted: then it is the dataset, whatever the tampering touched (a timestamp, the meta…).
        const got = readTree(target);
        for (const [p, bytes] of got)
          assert.ok(want.get(p)?.equals(bytes), `restore case ${i}: ${p} is not the source's`);
      });
    }
    lines.push(summary('manifest tree', t), summary('restore of a tampered manifest', restores));
    assert.ok(t.typed > 0 && t.accepted > 0, lines.at(-1));
  });

  it('the shard sections a restore streams: mutated replicas are refused with a typed error', async () => {
    const rng = prng(SEED + 2);
    const t = tally();
    const want = readTree(a.src);
    for (let i = 0; i < 60 * SCALE; i++) {
      const root = tmpDir('pv-fuzz-bad-');
      const bad = new LocalProvider('bad', root);
      for (const s of a.shards) {
        await bad.put({ pieceCid: s.pieceCid, carCid: s.carCid, rootCid: s.rootCid, bytes: s.carBytes }, () =>
          fs.createReadStream(path.join(a.dir, s.file)),
        );
      }
      await bad.put(pieceOfCar(a.manifestCar, a.manifestCid), () =>
        fs.createReadStream(path.join(a.dir, 'manifest.car')),
      );
      // Overwrite one stored shard in place with mutated bytes (the provider's own file).
      const s = rng.pick(a.shards);
      const stored = path.join(root, 'pieces', `${s.pieceCid}.car`);
      const kind = MUTATIONS[i % MUTATIONS.length]!;
      fs.writeFileSync(stored, mutate(rng, fs.readFileSync(stored), kind, true));
      const target = tmpDir('pv-fuzz-shard-');
      await fuzzCase(t, `shard case ${i} (${kind})`, async () => {
        await restoreDataset({ manifestCid: a.manifestCid, target, force: false, providers: [bad], hashThreads: 0 });
        const got = readTree(target);
        assert.equal(got.size, want.size, `shard case ${i}: restored ${got.size} files`);
        for (const [p, bytes] of want) assert.ok(got.get(p)?.equals(bytes), `shard case ${i}: ${p} differs`);
      });
    }
    lines.push(summary('shard sections in a restore', t));
    assert.ok(t.typed > t.cases / 2, lines.at(-1));
  });

  it('the block index: mutated files give valid entries or a typed error', async () => {
    const rng = prng(SEED + 3);
    const t = tally();
    const dir = tmpDir('pv-fuzz-idx-');
    const good = path.join(dir, 'good.idx');
    const w = new BlockIndexWriter(good);
    for (let b = 0; b < 40; b++) {
      const cid = cidOf(b % 5 ? RAW_CODE : dagJson.code, crypto.createHash('sha256').update(`b${b}`).digest());
      w.add(cid.bytes, 59 + b * 1100, 1000 + b);
    }
    w.close();
    const bytes = fs.readFileSync(good);
    assert.equal(readBlockIndex(good).length, 40);
    const kinds = ['flip', 'flips', 'truncate', 'insert', 'garbage'] as const;
    for (let i = 0; i < 1000 * SCALE; i++) {
      const kind = kinds[i % kinds.length]!;
      const file = path.join(dir, `i-${i % 8}.idx`);
      let data = mutate(rng, bytes, kind, false);
      // A record whose offset is no byte position (NaN, negative, past 2^53), at a record boundary.
      if (i % 7 === 0) {
        data = Buffer.from(bytes);
        const rec = rng.int(40);
        const at = rec * (1 + 36 + 12) + 1 + 36;
        data.writeDoubleLE(rng.pick([NaN, -1, 2 ** 60, Infinity, 0.5]), at);
      }
      fs.writeFileSync(file, data);
      await fuzzCase(t, `block index case ${i} (${kind})`, async () => {
        for (const [offset, length, cid] of readBlockIndex(file)) {
          assert.ok(Number.isSafeInteger(offset) && offset >= 0, `offset ${offset}`);
          assert.ok(Number.isInteger(length) && length >= 0, `length ${length}`);
          CID.parse(cid);
        }
      });
    }
    lines.push(summary('block index', t));
    assert.ok(t.typed > t.cases / 4, lines.at(-1));
  });

  it('small CARs: mutated ones give verified blocks or a typed error', async () => {
    const rng = prng(SEED + 4);
    const t = tally();
    const blocks = Array.from({ length: 6 }, (_, i) => {
      const bytes = dagJson.encode({ record: i, text: 'x'.repeat(i * 40) });
      return { cid: jsonCid({ record: i, text: 'x'.repeat(i * 40) }), bytes };
    });
    const car = smallCar(blocks[0]!.cid, blocks);
    assert.equal((await readSmallCar(car, 'fixture')).blocks.length, 6);
    for (let i = 0; i < 1200 * SCALE; i++) {
      const kind = MUTATIONS[i % MUTATIONS.length]!;
      const data = mutate(rng, car, kind, true);
      await fuzzCase(t, `small CAR case ${i} (${kind})`, async () => {
        const got = await readSmallCar(data, `case ${i}`);
        assert.ok(Array.isArray(got.roots));
      });
    }
    lines.push(summary('small CAR', t));
    assert.ok(t.typed > t.cases / 2, lines.at(-1));
  });
});
