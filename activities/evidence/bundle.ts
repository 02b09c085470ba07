/**
 * The evidence bundle: one CARv1 file that holds everything needed to check a dataset offline.
 * Its root is an index block (dag-json, `provenant/evidence`) naming every other block by role;
 * every block is the original content-addressed block, so a verifier recomputes each CID:
 * - the manifest: every block of the manifest CAR (root, header, shard and file pages);
 * - the audit log: every record, oldest first (each links the one before by CID, signed ones
 *   carry their DSSE envelope);
 * - the replica table: its root (which also carries the manifest's archive-time signature) and
 *   every page (each replica's provider, piece, state, last evidence, expiry);
 * - signature blocks: a DSSE envelope over an in-toto statement naming the manifest, the audit
 *   head and the table root, signed when the bundle is written (when a key is configured);
 * - the public keys the operator's config names (current and previous), in the index;
 * - anchors, in the index: every replica's chain commitment (a Filecoin provider's PDP addPieces
 *   transaction, deal or claim, with its epoch), as the replica table holds it. The manifest's
 *   blocks are listed in their CAR's order, so a verifier rebuilds the manifest CAR, computes its
 *   piece CID and compares it with the piece the chain committed.
 * Read from the providers by CID; the dataset's steward (audit head, table) is found by the caller.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as dagJson from '@ipld/dag-json';
import { CarBlockIterator } from '@ipld/car/iterator';
import { CID } from 'multiformats/cid';
import type { Config } from '../../config/schema.js';
import type { ChainCommitment, StewardReplica } from '../../shared/types.js';
import { encodeRecord } from '../audit/audit.js';
import { IntegrityError } from '../errors.js';
import { blockMatches, cidOf, sha256 } from '../pack/cids.js';
import { carBlock, smallCar } from '../providers/kit/car.js';
import type { StorageProvider } from '../providers/provider.js';
import { ProviderSet } from '../providers/registry.js';
import { locateManifest } from '../restore/restore.js';
import { readAudit, tableStoreOf } from '../steward/activities.js';
import { EVIDENCE_PREDICATE, signStatement, statementOf, type Envelope, type Statement } from './dsse.js';
import { signingKeyOf, verifyingKeysOf, type KeyAlgorithm } from './keys.js';

export const EVIDENCE_TYPE = 'provenant/evidence';
export const SIGNATURE_TYPE = 'provenant/signature';

export interface EvidenceIndex {
  type: typeof EVIDENCE_TYPE;
  version: 1;
  createdAt: string;
  datasetId: string;
  manifestCid: string;
  /** `blocks`: every block of the manifest CAR in its order (a block the CAR repeats, repeated; stored once). */
  manifest: { pieceCid: string; providerId: string; blocks: string[] };
  /** Oldest first; `head` is the last one (null when the log is empty). */
  audit: { head: string | null; records: string[] };
  /** Root first, then its pages in order. */
  replicaTable: { root: string | null; pages: string[] };
  providers: { id: string; kind: string }[];
  publicKeys: { keyId: string; algorithm: KeyAlgorithm; pem: string }[];
  /** Blocks holding `{ type: provenant/signature, of: 'evidence', envelope }`. */
  signatures: string[];
  /**
   * Lineage (`archive --derived-from`): the root block of every ancestor manifest, found by
   * walking each manifest's `derivedFrom` (parents first, at most MAX_LINEAGE); absent in bundles
   * of datasets with no parent.
   */
  lineage?: string[];
  /** Every replica of the table that has a chain commitment (absent when none has). */
  anchors?: Anchor[];
}

/** One replica's chain commitment: which copy (shard −1: the manifest) and what the chain says. */
export interface Anchor {
  shard: number;
  providerId: string;
  /** The replica's piece, as the table records it. */
  pieceCid: string;
  commitment: ChainCommitment;
}

/** Ancestor manifests a bundle holds at most (a walk past this is cut, and the bundle says so). */
export const MAX_LINEAGE = 256;

export interface SignatureBlock {
  type: typeof SIGNATURE_TYPE;
  of: 'evidence';
  envelope: Envelope;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function dagBlock(value: unknown): { cid: CID; bytes: Uint8Array } {
  const bytes = dagJson.encode(value);
  return { cid: cidOf(dagJson.code, sha256(bytes)), bytes };
}

/** The statement signed when a bundle is written: what the bundle was made from. */
export function evidenceStatement(x: {
  datasetId: string;
  manifestCid: string;
  auditHead: { cid: string; bytes: Uint8Array } | null;
  auditRecords: number;
  table: { cid: string; bytes: Uint8Array } | null;
  createdAt: string;
}): Statement {
  const subject = [
    { name: `ipfs://${x.manifestCid}`, digest: { sha256: hex(CID.parse(x.manifestCid).multihash.digest) } },
  ];
  if (x.auditHead)
    subject.push({
      name: `provenant-audit-head:${x.auditHead.cid}`,
      digest: { sha256: hex(sha256(x.auditHead.bytes)) },
    });
  if (x.table)
    subject.push({ name: `provenant-replica-table:${x.table.cid}`, digest: { sha256: hex(sha256(x.table.bytes)) } });
  return statementOf(subject, EVIDENCE_PREDICATE, {
    datasetId: x.datasetId,
    manifestCid: x.manifestCid,
    auditHead: x.auditHead?.cid ?? null,
    auditRecords: x.auditRecords,
    replicaTable: x.table?.cid ?? null,
    createdAt: x.createdAt,
  });
}

export interface WriteEvidenceOptions {
  manifestCid: string;
  /** The steward's audit head and replica table root (null when it has none). */
  auditHead: string | null;
  tableCid: string | null;
  out: string;
  extra?: StorageProvider[];
  signal?: AbortSignal;
}

export interface EvidenceSummary {
  out: string;
  bytes: number;
  sha256: string;
  datasetId: string;
  manifestCid: string;
  manifestBlocks: number;
  auditRecords: number;
  replicas: number;
  signed: boolean;
  keyId?: string;
  /** Replicas with a chain commitment in the bundle. */
  anchors: number;
}

/**
 * Blocks waiting for the index, in the order the bundle holds them: framed into a file in the
 * work directory as they are read, so memory holds one block and the CIDs the index lists.
 */
class BlockSpool {
  private constructor(
    readonly file: string,
    private readonly fh: fsp.FileHandle,
  ) {}

  static async open(file: string): Promise<BlockSpool> {
    return new BlockSpool(file, await fsp.open(file, 'w'));
  }

  async put(cid: CID, bytes: Uint8Array): Promise<void> {
    await this.fh.write(Buffer.concat(carBlock(cid, bytes)));
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/**
 * The manifest CAR's blocks in order (repeats too: the CAR is rebuilt from this list), each
 * checked against its hash; nothing but the CIDs is kept.
 */
async function manifestOrder(car: string): Promise<string[]> {
  const order: string[] = [];
  for await (const b of await CarBlockIterator.fromIterable(fs.createReadStream(car))) {
    const cid = CID.parse(b.cid.toString());
    if (!blockMatches(cid, b.bytes)) throw new IntegrityError(`manifest block ${cid} does not match its hash`);
    order.push(cid.toString());
  }
  return order;
}

/** The manifest CAR's blocks once each, as `manifestOrder` listed them (read again, checked again). */
async function* manifestBlocksOnce(car: string, order: string[]): AsyncGenerator<{ cid: CID; bytes: Uint8Array }> {
  const stored = new Set<string>();
  let i = 0;
  for await (const b of await CarBlockIterator.fromIterable(fs.createReadStream(car))) {
    const cid = CID.parse(b.cid.toString());
    const text = cid.toString();
    if (order[i++] !== text || !blockMatches(cid, b.bytes))
      throw new IntegrityError(`manifest block ${text} changed while the bundle was written`);
    if (stored.has(text)) continue;
    stored.add(text);
    yield { cid, bytes: b.bytes };
  }
  if (i !== order.length) throw new IntegrityError(`the manifest CAR lost blocks while the bundle was written`);
}

/**
 * Read every part from the providers and write the bundle to `o.out`, streaming: the index is the
 * CAR's root and its first block, and it names every other block, so the blocks are listed first
 * (the manifest's from its CAR on disk, the others into a spool file) and written after it. Memory
 * holds the index (CIDs) and a block at a time, whatever the size of the manifest or the table.
 */
export async function writeEvidence(config: Config, o: WriteEvidenceOptions): Promise<EvidenceSummary> {
  const key = signingKeyOf(config);
  const publicKeys = verifyingKeysOf(config).map((k) => ({
    keyId: k.keyId,
    algorithm: k.algorithm,
    pem: k.publicKeyPem,
  }));
  const set = new ProviderSet(config.providers, o.extra ?? []);
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'provenant-evidence-'));
  try {
    // The manifest CAR, checked against its CAR CID on the way in; every block kept as it is.
    const m = await locateManifest(o.manifestCid, set.all(), work, o.signal);
    const manifestCar = path.join(work, 'manifest.car');
    const manifestBlocks = await manifestOrder(manifestCar);

    const spool = await BlockSpool.open(path.join(work, 'blocks'));
    const records: string[] = [];
    let head: { cid: string; bytes: Uint8Array } | null = null;
    const pages: string[] = [];
    const anchors: Anchor[] = [];
    let table: { cid: string; bytes: Uint8Array } | null = null;
    let replicas = 0;
    const lineage: string[] = [];
    let createdAt = '';
    const signatures: string[] = [];
    try {
      // The audit log, every stored copy checked (a broken chain is refused: it is not evidence).
      if (o.auditHead) {
        const a = await readAudit(config, o.auditHead, o.extra);
        if (a.problems.length)
          throw new IntegrityError(
            `the audit log of ${m.manifest.datasetId} is broken: ${a.problems.map((p) => `${p.problem} ${p.cid}: ${p.detail}`).join('; ')}`,
          );
        for (const r of a.records) {
          const { cid: stored, ...rec } = r;
          const { cid, bytes } = encodeRecord(rec);
          if (cid.toString() !== stored)
            throw new IntegrityError(`audit record ${stored} does not re-encode to its CID`);
          records.push(stored);
          await spool.put(cid, bytes);
          head = { cid: stored, bytes };
        }
      }

      // The replica table: root and pages as stored; each replica's chain commitment, as an anchor.
      if (o.tableCid) {
        const store = tableStoreOf({ config, providers: set });
        const rootBytes = await store.get(o.tableCid);
        table = { cid: o.tableCid, bytes: rootBytes };
        await spool.put(CID.parse(o.tableCid), rootBytes);
        for (const p of (await store.root(o.tableCid)).pages) {
          const cid = p.cid.toString();
          pages.push(cid);
          const bytes = await store.get(cid);
          await spool.put(CID.parse(cid), bytes);
          const page = (dagJson.decode(bytes) as { replicas?: StewardReplica[] }).replicas ?? [];
          replicas += page.length;
          // A commitment of another piece (an encrypted copy's: the chain holds its ciphertext) anchors
          // nothing a verifier can rebuild from the bundle: it stays in the table, not listed here.
          for (const r of page)
            if (r.commitment?.pieceCid === r.pieceCid)
              anchors.push({
                shard: r.shard,
                providerId: r.providerId,
                pieceCid: r.pieceCid,
                commitment: r.commitment,
              });
        }
      }

      // Lineage: each ancestor manifest's root block (which names its own parents), parents first.
      const queue = [...(m.manifest.derivedFrom ?? [])];
      const seen = new Set<string>([o.manifestCid]);
      while (queue.length > 0 && lineage.length < MAX_LINEAGE) {
        const cid = queue.shift()!;
        if (seen.has(cid)) continue;
        seen.add(cid);
        const dir = await fsp.mkdtemp(path.join(work, 'parent-'));
        const parent = await locateManifest(cid, set.all(), dir, o.signal);
        const it = await CarBlockIterator.fromIterable(fs.createReadStream(path.join(dir, 'manifest.car')));
        for await (const b of it) {
          if (b.cid.toString() !== cid) continue;
          if (!blockMatches(CID.parse(cid), b.bytes))
            throw new IntegrityError(`parent manifest ${cid} does not match its hash`);
          lineage.push(cid);
          await spool.put(CID.parse(cid), b.bytes);
          break;
        }
        await fsp.rm(dir, { recursive: true, force: true });
        queue.push(...(parent.manifest.derivedFrom ?? []));
      }

      createdAt = new Date().toISOString();
      if (key) {
        const st = evidenceStatement({
          datasetId: m.manifest.datasetId,
          manifestCid: o.manifestCid,
          auditHead: head,
          auditRecords: records.length,
          table,
          createdAt,
        });
        const sig = dagBlock({
          type: SIGNATURE_TYPE,
          of: 'evidence',
          envelope: signStatement(st, key),
        } satisfies SignatureBlock);
        signatures.push(sig.cid.toString());
        await spool.put(sig.cid, sig.bytes);
      }
    } finally {
      await spool.close();
    }

    const index: EvidenceIndex = {
      type: EVIDENCE_TYPE,
      version: 1,
      createdAt,
      datasetId: m.manifest.datasetId,
      manifestCid: o.manifestCid,
      manifest: { pieceCid: m.piece.pieceCid, providerId: m.providerId, blocks: manifestBlocks },
      audit: { head: head?.cid ?? null, records },
      replicaTable: { root: table?.cid ?? null, pages },
      providers: set.all().map((p) => ({ id: p.id, kind: p.kind })),
      publicKeys,
      signatures,
      ...(lineage.length ? { lineage } : {}),
      ...(anchors.length ? { anchors } : {}),
    };
    const root = dagBlock(index);
    const tmp = `${o.out}.partial`;
    const fh = await fsp.open(tmp, 'w');
    const hash = crypto.createHash('sha256');
    let bytes = 0;
    const write = async (chunk: Uint8Array) => {
      hash.update(chunk);
      bytes += chunk.length;
      await fh.write(chunk);
    };
    try {
      // Header and index, the manifest's blocks, then the spooled ones: the order they were listed in.
      await write(smallCar(root.cid, [root]));
      for await (const b of manifestBlocksOnce(manifestCar, manifestBlocks))
        await write(Buffer.concat(carBlock(b.cid, b.bytes)));
      for await (const chunk of fs.createReadStream(spool.file)) await write(chunk as Buffer);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, o.out);
    return {
      out: path.resolve(o.out),
      bytes,
      sha256: hash.digest('hex'),
      datasetId: m.manifest.datasetId,
      manifestCid: o.manifestCid,
      manifestBlocks: manifestBlocks.length,
      auditRecords: records.length,
      replicas,
      signed: !!key,
      ...(key ? { keyId: key.keyId } : {}),
      anchors: anchors.length,
    };
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
    await set.close();
  }
}
