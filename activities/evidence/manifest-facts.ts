/**
 * The facts every export is built from, read from the providers as `provenant restore` reads them:
 * the manifest located by its CID (checked against it), its header, its shards and every file
 * record. Nothing here needs a Temporal server.
 */
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../../config/schema.js';
import { manifestFiles, manifestShards, type Manifest } from '../manifest/manifest.js';
import type { FileRecord } from '../pack/packer.js';
import { ProviderSet } from '../providers/registry.js';
import type { StorageProvider } from '../providers/provider.js';
import { locateManifest } from '../restore/restore.js';

/**
 * The header of each manifest in `manifestCids` (its dataset, root, date and own parents), read
 * from the configured providers: ManifestNotFoundError when none holds one of them.
 */
export async function readManifestHeaders(
  config: Config,
  manifestCids: string[],
  signal?: AbortSignal,
): Promise<{ manifestCid: string; datasetId: string; rootCid: string; createdAt: string; derivedFrom: string[] }[]> {
  if (manifestCids.length === 0) return [];
  const set = new ProviderSet(config.providers);
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'provenant-lineage-'));
  try {
    const out = [];
    for (const manifestCid of manifestCids) {
      const { manifest } = await locateManifest(manifestCid, set.all(), work, signal);
      out.push({
        manifestCid,
        datasetId: manifest.datasetId,
        rootCid: manifest.root,
        createdAt: manifest.createdAt,
        derivedFrom: manifest.derivedFrom ?? [],
      });
    }
    return out;
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
    await set.close();
  }
}

export interface ManifestFacts {
  manifestCid: string;
  /** The provider the manifest was read from, and the piece that holds it. */
  providerId: string;
  manifestPieceCid: string;
  datasetId: string;
  rootCid: string;
  createdAt: string;
  source: Manifest['source'];
  meta: Record<string, string>;
  /** Manifest CIDs of the parent datasets or base models (lineage). */
  derivedFrom: string[];
  tool: Manifest['tool'];
  totals: Manifest['totals'];
  /** Shards in order: their piece CIDs are what the providers hold. */
  shards: { index: number; pieceCid: string; carCid: string; rootCid: string; carBytes: number }[];
  /** Every file record, in manifest (path) order. */
  files: FileRecord[];
}

/** Locate `manifestCid` on the configured providers (plus `extra`) and read every record out of it. */
export async function readManifestFacts(
  config: Config,
  manifestCid: string,
  extra: StorageProvider[] = [],
  signal?: AbortSignal,
): Promise<ManifestFacts> {
  const set = new ProviderSet(config.providers, extra);
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'provenant-export-'));
  try {
    const { manifest, pages, piece, providerId } = await locateManifest(manifestCid, set.all(), work, signal);
    return {
      manifestCid,
      providerId,
      manifestPieceCid: piece.pieceCid,
      datasetId: manifest.datasetId,
      rootCid: manifest.root,
      createdAt: manifest.createdAt,
      source: manifest.source,
      meta: manifest.meta,
      derivedFrom: manifest.derivedFrom ?? [],
      tool: manifest.tool,
      totals: manifest.totals,
      shards: [...manifestShards(manifest, pages)].map((s) => ({
        index: s.index,
        pieceCid: s.pieceCid,
        carCid: s.carCid,
        rootCid: s.rootCid,
        carBytes: s.carBytes,
      })),
      files: [...manifestFiles(manifest, pages)],
    };
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
    await set.close();
  }
}
