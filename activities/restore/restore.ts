/**
 * Restore a dataset from its manifest CID: find the manifest on any provider, fetch every shard
 * from a healthy replica (each checked against its CAR CID, falling over to the next replica),
 * rebuild the tree verifying every block against its CID and every file against its sha256,
 * and only then move the files into the target. Paths that would escape the target are refused.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { CarIndexer } from '@ipld/car/indexer';
import { CID } from 'multiformats/cid';
import { exporter, recursive, type UnixFSEntry } from 'ipfs-unixfs-exporter';
import { blockMatches, carCidFromSha256 } from '../pack/cids.js';
import {
  IntegrityError, ManifestNotFoundError, NoHealthyReplicaError, PathEscapeError, PieceNotFoundError,
  showPath, TargetNotEmptyError,
} from '../errors.js';
import { manifestFiles, parseCid, readManifestCar, type Manifest } from '../manifest/manifest.js';
import type { PieceRef, StorageProvider } from '../providers/provider.js';
import type { FileRecord } from '../pack/packer.js';

export interface RestoreOptions {
  manifestCid: string;
  target: string;
  force: boolean;
  providers: StorageProvider[];
  signal?: AbortSignal;
  onProgress?: (p: { stage: string; shardsFetched: number; files: number; bytes: number }) => void;
}

export interface RestoreSummary {
  manifestCid: string;
  datasetId: string;
  rootCid: string;
  target: string;
  files: number;
  bytes: number;
  shards: number;
  /** Provider each shard was read from. */
  sources: Record<string, number>;
  /** Replicas that failed verification and were skipped. */
  badReplicas: { providerId: string; pieceCid: string; reason: string }[];
}

/** Download a piece into `file`, checking its CAR CID; false when the bytes do not match. */
async function fetchVerified(p: StorageProvider, piece: PieceRef | { pieceCid: string; carCid: string; bytes: number }, file: string, signal?: AbortSignal): Promise<string | undefined> {
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  const tmp = `${file}.partial`;
  try {
    await pipeline(
      p.readRange(piece, 0, undefined, { signal }),
      async function* (src: AsyncIterable<Buffer>) {
        for await (const c of src) {
          hash.update(c);
          bytes += c.length;
          yield c;
        }
      },
      fs.createWriteStream(tmp),
      { signal },
    );
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    return `read failed: ${(err as Error).message}`;
  }
  const got = carCidFromSha256(hash.digest());
  if (got !== piece.carCid || bytes !== piece.bytes) {
    await fsp.rm(tmp, { force: true });
    return `corrupt: got ${got}/${bytes} bytes, expected ${piece.carCid}/${piece.bytes}`;
  }
  await fsp.rename(tmp, file);
  return undefined;
}

export function safeJoin(target: string, rel: string): string {
  const parts = rel.split('/');
  for (const part of parts) {
    if (part === '' || part === '.' || part === '..' || part.includes('\\') || part.includes('\0')) {
      throw new PathEscapeError(`refusing path ${showPath(rel)}: it would escape the restore target`);
    }
  }
  const out = path.resolve(target, ...parts);
  if (!out.startsWith(path.resolve(target) + path.sep)) throw new PathEscapeError(`refusing path ${showPath(rel)}: outside ${showPath(target)}`);
  return out;
}

export async function locateManifest(manifestCid: string, providers: StorageProvider[], workDir: string, signal?: AbortSignal) {
  if (!parseCid(manifestCid)) throw new ManifestNotFoundError(`not a CID: ${JSON.stringify(manifestCid)}`);
  const file = path.join(workDir, 'manifest.car');
  const problems: string[] = [];
  for (const p of providers) {
    const ref = await p.locate(manifestCid, { signal }).catch((e: Error) => {
      problems.push(`${p.id}: ${e.message}`);
      return undefined;
    });
    if (!ref) continue;
    const bad = await fetchVerified(p, ref, file, signal);
    if (bad) {
      problems.push(`${p.id}: ${bad}`);
      continue;
    }
    return { ...(await readManifestCar(file, manifestCid)), piece: ref, providerId: p.id };
  }
  throw new ManifestNotFoundError(
    `manifest ${manifestCid} not found on any provider (${providers.map((p) => p.id).join(', ')})${problems.length ? `: ${problems.join('; ')}` : ''}`,
  );
}

export async function restoreDataset(o: RestoreOptions): Promise<RestoreSummary> {
  const target = path.resolve(o.target);
  const existing = await fsp.readdir(target).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    if (e.code === 'ENOTDIR') throw new TargetNotEmptyError(`restore target is a file: ${showPath(target)}`);
    throw e;
  });
  const foreign = existing.filter((n) => !n.startsWith('.provenant-restore-'));
  if (foreign.length > 0 && !o.force) {
    throw new TargetNotEmptyError(`restore target is not empty: ${showPath(target)} (use --force to restore into it)`);
  }
  await fsp.mkdir(target, { recursive: true });
  const work = path.join(target, `.provenant-restore-${o.manifestCid.slice(-16)}`);
  await fsp.rm(work, { recursive: true, force: true });
  await fsp.mkdir(work, { recursive: true });
  const progress = o.onProgress ?? (() => {});
  try {
    const { manifest, pages } = await locateManifest(o.manifestCid, o.providers, work, o.signal);
    const summary: RestoreSummary = {
      manifestCid: o.manifestCid, datasetId: manifest.datasetId, rootCid: manifest.root, target,
      files: 0, bytes: 0, shards: manifest.shards.length, sources: {}, badReplicas: [],
    };
    // 1. Fetch each shard from the first replica whose bytes match.
    const index = new Map<string, { file: string; offset: number; length: number }>();
    let fetched = 0;
    for (const shard of manifest.shards) {
      const file = path.join(work, `shard-${shard.index}.car`);
      let ok = false;
      for (const p of o.providers) {
        const st = await p.status(shard, { signal: o.signal }).catch(() => undefined);
        if (!st?.present) continue;
        const bad = await fetchVerified(p, { pieceCid: shard.pieceCid, carCid: shard.carCid, bytes: shard.carBytes }, file, o.signal);
        if (bad) {
          summary.badReplicas.push({ providerId: p.id, pieceCid: shard.pieceCid, reason: bad });
          continue;
        }
        summary.sources[p.id] = (summary.sources[p.id] ?? 0) + 1;
        ok = true;
        break;
      }
      if (!ok) {
        throw new NoHealthyReplicaError(
          `no healthy replica of shard ${shard.index} [piece=${shard.pieceCid}]${summary.badReplicas.length ? `; bad: ${summary.badReplicas.map((b) => `${b.providerId} ${b.reason}`).join('; ')}` : ''}`,
        );
      }
      const indexer = await CarIndexer.fromIterable(fs.createReadStream(file));
      for await (const e of indexer) index.set(e.cid.toString(), { file, offset: e.blockOffset, length: e.blockLength });
      fetched++;
      progress({ stage: 'fetch', shardsFetched: fetched, files: 0, bytes: 0 });
    }
    // 2. Rebuild the tree in the work dir, verifying every block.
    const fds = new Map<string, fsp.FileHandle>();
    const readBlock = async (cid: CID): Promise<Uint8Array> => {
        const at = index.get(cid.toString());
        if (!at) throw new PieceNotFoundError(`block ${cid} is in no shard of manifest ${o.manifestCid}`);
        let fh = fds.get(at.file);
        if (!fh) fds.set(at.file, (fh = await fsp.open(at.file, 'r')));
        const buf = Buffer.allocUnsafe(at.length);
        await fh.read(buf, 0, at.length, at.offset);
        if (!blockMatches(cid, buf)) throw new IntegrityError(`block ${cid} does not match its hash`);
        return buf;
    };
    // The exporter's blockstore streams a block as chunks (interface-blockstore ≥ 6).
    const blockstore = {
      async *get(cid: CID): AsyncGenerator<Uint8Array> {
        yield await readBlock(cid);
      },
    };
    const expected = new Map<string, FileRecord>();
    for (const f of manifestFiles(manifest, pages)) expected.set(f.path, f);
    const tree = path.join(work, 'tree');
    await fsp.mkdir(tree);
    const root = CID.parse(manifest.root);
    try {
      for await (const walked of recursive(root, blockstore as never)) {
        const rel = walked.path.split('/').slice(1).join('/');
        if (rel === '') continue;
        const dest = safeJoin(tree, rel);
        const entry = await exporter(walked.cid, blockstore as never);
        await writeEntry(entry, dest, rel, expected, summary);
        progress({ stage: 'write', shardsFetched: fetched, files: summary.files, bytes: summary.bytes });
      }
    } finally {
      for (const fh of fds.values()) await fh.close();
    }
    if (summary.files !== expected.size) {
      throw new IntegrityError(`restored ${summary.files} files but the manifest lists ${expected.size}`);
    }
    // 3. Move into place.
    await moveInto(tree, target);
    return summary;
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

async function writeEntry(entry: UnixFSEntry, dest: string, rel: string, expected: Map<string, FileRecord>, summary: RestoreSummary) {
  if (entry.type === 'directory') {
    await fsp.mkdir(dest, { recursive: true });
    return;
  }
  if (entry.type !== 'file' && entry.type !== 'raw') {
    throw new IntegrityError(`unexpected ${entry.type} entry at ${showPath(rel)}`);
  }
  const want = expected.get(rel);
  if (!want) throw new IntegrityError(`file ${showPath(rel)} is in the DAG but not in the manifest`);
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  const hash = crypto.createHash('sha256');
  let size = 0;
  await pipeline(
    (async function* () {
      for await (const c of entry.content()) {
        hash.update(c);
        size += c.length;
        yield c;
      }
    })(),
    fs.createWriteStream(dest, { flags: 'wx' }),
  );
  const sha = hash.digest('hex');
  if (sha !== want.sha256 || size !== want.size) {
    throw new IntegrityError(`file ${showPath(rel)} restored with sha256 ${sha} (${size} bytes), manifest says ${want.sha256} (${want.size} bytes)`);
  }
  // Seconds, rounded to the nearest ms: a Date can land 1 ms early after float conversion.
  const t = (want.mtimeMs + 0.5) / 1000;
  await fsp.utimes(dest, t, t);
  summary.files++;
  summary.bytes += size;
}

/** Move the verified tree into the target: renames only, merging into existing directories. */
async function moveInto(from: string, to: string): Promise<void> {
  for (const d of await fsp.readdir(from, { withFileTypes: true })) {
    const src = path.join(from, d.name);
    const dst = path.join(to, d.name);
    if (d.isDirectory()) {
      const st = await fsp.lstat(dst).catch(() => undefined);
      if (st?.isDirectory()) {
        await moveInto(src, dst);
        continue;
      }
      if (st) await fsp.rm(dst, { recursive: true, force: true });
      await fsp.rename(src, dst);
    } else {
      const st = await fsp.lstat(dst).catch(() => undefined);
      if (st?.isDirectory()) await fsp.rm(dst, { recursive: true, force: true });
      await fsp.rename(src, dst);
    }
  }
}

export type { Manifest };
