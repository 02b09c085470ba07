/**
 * A dataset packed and stored on local providers without Temporal: the files written under a temp
 * dir, scanned, packed into shards of `shardBytes`, a manifest written, and every shard and the
 * manifest put on each provider (ids 'a', 'b', …). For the restore tests.
 */
import fs from 'node:fs';
import path from 'node:path';
import { scanLocal } from '../../activities/ingest/scan.js';
import { writeManifest } from '../../activities/manifest/manifest.js';
import { FILES, readShards, runPack } from '../../activities/pack/packer.js';
import type { ShardInfo } from '../../activities/pack/shard-writer.js';
import { LocalProvider } from '../../activities/providers/local.js';
import { tmpDir, writeTree } from './env.js';

const MiB = 1024 * 1024;

export interface LocalArchive {
  /** The source tree. */
  src: string;
  /** Where the shards were staged (`shards[i].file` is relative to it). */
  dir: string;
  manifestCid: string;
  shards: ShardInfo[];
  /** One root per provider, in id order. */
  roots: string[];
}

/** Provider ids by position: 'a', 'b', … */
export const localProviderId = (i: number): string => String.fromCharCode(97 + i);

export async function archiveToLocal(
  files: Record<string, Buffer | string>,
  shardBytes: number,
  o: { datasetId: string; providers?: number },
): Promise<LocalArchive> {
  const src = tmpDir(`pv-${o.datasetId}-src-`);
  writeTree(src, files);
  const dir = tmpDir(`pv-${o.datasetId}-stage-`);
  const listingPath = path.join(dir, 'listing.ndjson');
  await scanLocal(src, listingPath);
  const packed = await runPack({ sourceRoot: src, listingPath, dir, shardBytes });
  const shards = readShards(dir);
  const manifestPath = path.join(dir, 'manifest.car');
  const manifest = await writeManifest(
    {
      datasetId: o.datasetId,
      root: packed.rootCid,
      source: { kind: 'local', uri: `file://${src}` },
      meta: {},
      tool: { name: 'provenant', version: 'test' },
      createdAt: new Date(0).toISOString(),
      layout: { chunkBytes: MiB, fileWidth: 1024, shardBytes },
    },
    shards,
    path.join(dir, FILES),
    manifestPath,
    1 << 30,
  );
  const roots = Array.from({ length: o.providers ?? 2 }, (_, i) => tmpDir(`pv-${o.datasetId}-${localProviderId(i)}-`));
  for (const [i, root] of roots.entries()) {
    const p = new LocalProvider(localProviderId(i), root);
    for (const s of shards) {
      await p.put({ pieceCid: s.pieceCid, carCid: s.carCid, rootCid: s.rootCid, bytes: s.carBytes }, () =>
        fs.createReadStream(path.join(dir, s.file)),
      );
    }
    await p.put(manifest, () => fs.createReadStream(manifestPath));
  }
  return { src, dir, manifestCid: manifest.rootCid, shards, roots };
}
