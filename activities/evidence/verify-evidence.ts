/**
 * Check an evidence bundle (bundle.ts) with nothing but the file, the keys the caller trusts and,
 * optionally, a directory: no server, no network. Every block is hashed against its CID, the
 * audit chain is walked link by link, every signature is checked, and a directory's files are
 * hashed against the manifest's sha256. Each failure is a finding that names the broken link.
 *
 * Anchors (a replica's chain commitment: PDP addPieces, deal or claim) are checked as far as can
 * be offline: the manifest CAR is rebuilt from its blocks in order and its piece CID computed,
 * which the manifest's commitment must name (a shard's must name the piece the manifest lists),
 * and each anchor must be the one its replica table page records. The epoch and the transaction
 * are as recorded: the bundle cannot prove them without the chain, and the report says so.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as dagJson from '@ipld/dag-json';
import { CarIndexer } from '@ipld/car/indexer';
import { CID } from 'multiformats/cid';
import type { ChainCommitment, StewardReplica } from '../../shared/types.js';
import {
  manifestFiles,
  manifestShards,
  ManifestSchema,
  type BlockSource,
  type Manifest,
} from '../manifest/manifest.js';
import type { FileRecord } from '../pack/packer.js';
import { blockMatches } from '../pack/cids.js';
import { CommPHasher } from '../pack/commp.js';
import { carBlock, carHeader } from '../providers/kit/car.js';
import { EVIDENCE_TYPE, evidenceStatement, SIGNATURE_TYPE, type EvidenceIndex, type SignatureBlock } from './bundle.js';
import { checkEnvelope, EVIDENCE_PREDICATE, openEnvelope, type Envelope, type SignatureCheck } from './dsse.js';
import { keyIdOf, type VerifyingKey } from './keys.js';
import { auditStatementMismatch, manifestStatementMismatch, type AuditSignature } from './sign.js';

export type Part =
  'bundle' | 'manifest' | 'lineage' | 'file' | 'audit' | 'signature' | 'replica' | 'anchor' | 'key' | 'trust';

/** An anchor that passed every offline check: its piece is the one the chain commitment names. */
export interface AnchorReport {
  /** −1: the manifest piece. */
  shard: number;
  providerId: string;
  pieceCid: string;
  kind: ChainCommitment['kind'];
  /** The contents were fixed no later than this epoch (as recorded; the chain itself is not asked). */
  epoch: number;
  network: string;
  simulated: boolean;
  /** The chain's ids: data set and piece, transaction, deal, claim, sector. */
  ref: string;
}

/** An ancestor of the dataset (`archive --derived-from`), from its manifest root in the bundle. */
export interface LineageEntry {
  manifestCid: string;
  datasetId: string;
  createdAt: string;
  /** 1: a parent of the dataset; 2: a grandparent… */
  depth: number;
  parents: string[];
}

export interface Finding {
  part: Part;
  /** The link: a CID, a record number, a path. */
  ref: string;
  detail: string;
}

export interface SignatureReport {
  what: string;
  state: SignatureCheck['state'];
  keyId: string;
}

export interface EvidenceReport {
  ok: boolean;
  bundle: string;
  createdAt?: string;
  datasetId?: string;
  manifestCid?: string;
  manifest?: { createdAt: string; files: number; bytes: number; shards: number; blocks: number; source?: string };
  audit?: {
    records: number;
    head: string | null;
    first?: string;
    last?: string;
    lastVerify?: string;
    signed: number;
    unsigned: number;
  };
  replicas?: { count: number; pieces: number; byProvider: Record<string, { replicas: number; healthy: number }> };
  files?: { dir: string; as: 'source' | 'restored'; checked: number; matched: number; extra: number };
  /** The datasets or models this one derives from, nearest first (each root block checked against its CID). */
  lineage?: LineageEntry[];
  /** Replicas whose chain commitment names their piece (the manifest's: rebuilt from its blocks). */
  anchors?: AnchorReport[];
  signatures: SignatureReport[];
  /** trusted: signed by a --trust key; unverified: signed, no --trust key verifies it; unsigned. */
  signer: 'trusted' | 'unverified' | 'unsigned';
  signers: { keyId: string; trusted: boolean }[];
  broken: Finding[];
  notes: string[];
}

export interface VerifyEvidenceOptions {
  trusted: VerifyingKey[];
  dir?: { path: string; as: 'source' | 'restored' };
}

const short = (cid: string) => (cid.length > 20 ? `…${cid.slice(-12)}` : cid);

function decodeLoose(bytes: Uint8Array): unknown {
  try {
    return dagJson.decode(bytes);
  } catch {
    return undefined;
  }
}

/** What a manifest block that fails its hash held, as far as it still decodes (to name it better). */
function manifestBlockRole(bytes: Uint8Array, isRoot: boolean): string {
  if (isRoot) return 'manifest root';
  const v = decodeLoose(bytes) as { files?: FileRecord[]; shards?: unknown[]; blocks?: unknown[] } | undefined;
  if (v?.files?.length) return `manifest file-records page (first file ${JSON.stringify(v.files[0]?.path)})`;
  if (v?.shards) return 'manifest shard page';
  if (v?.blocks) return 'manifest block-index page';
  return 'manifest block';
}

/**
 * The blocks of a bundle on disk, by CID: only each block's byte range is held (its first copy, as
 * a reader of the CAR would keep), and its bytes are read when asked for, so a bundle of any size
 * is checked in bounded memory.
 */
class BundleBlocks {
  private readonly at = new Map<string, { offset: number; length: number }>();

  private constructor(readonly file: string) {}

  /** Every section of the CAR framed within the file, or the decoder's error. */
  static async open(file: string): Promise<{ roots: CID[]; blocks: BundleBlocks }> {
    const blocks = new BundleBlocks(file);
    const size = fs.statSync(file).size;
    const indexer = await CarIndexer.fromIterable(fs.createReadStream(file));
    for await (const e of indexer) {
      // The indexer skips over a section's bytes: one that runs past the end is cut short.
      if (e.blockOffset + e.blockLength > size) throw new Error('Unexpected end of data');
      const key = e.cid.toString();
      if (!blocks.at.has(key)) blocks.at.set(key, { offset: e.blockOffset, length: e.blockLength });
    }
    return { roots: (await indexer.getRoots()) as unknown as CID[], blocks };
  }

  has(cid: string): boolean {
    return this.at.has(cid);
  }

  keys(): IterableIterator<string> {
    return this.at.keys();
  }

  get(cid: string): Uint8Array | undefined {
    const r = this.at.get(cid);
    if (!r) return undefined;
    const buf = Buffer.allocUnsafe(r.length);
    const fd = fs.openSync(this.file, 'r');
    try {
      for (let got = 0; got < r.length;) {
        const n = fs.readSync(fd, buf, got, r.length - got, r.offset + got);
        if (n === 0) return buf.subarray(0, got); // the file shrank: what is left fails its hash
        got += n;
      }
    } finally {
      fs.closeSync(fd);
    }
    return buf;
  }
}

async function sha256File(file: string): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const c of fs.createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

function* walk(dir: string, rel = ''): Generator<string> {
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) yield* walk(dir, r);
    else yield r;
  }
}

export async function verifyEvidence(file: string, o: VerifyEvidenceOptions): Promise<EvidenceReport> {
  const report: EvidenceReport = {
    ok: false,
    bundle: path.resolve(file),
    signatures: [],
    signer: 'unsigned',
    signers: [],
    broken: [],
    notes: [],
  };
  const broken = (part: Part, ref: string, detail: string) => report.broken.push({ part, ref, detail });
  const finish = () => {
    report.ok = report.broken.length === 0;
    return report;
  };

  // ---- the CAR and its index -------------------------------------------------------------
  let all: BundleBlocks;
  let roots: CID[];
  try {
    ({ roots, blocks: all } = await BundleBlocks.open(file));
  } catch (err) {
    broken('bundle', file, `not a readable CAR: ${(err as Error).message}`);
    return finish();
  }
  const rootCid = roots.length === 1 ? roots[0]!.toString() : undefined;
  const rootBytes = rootCid ? all.get(rootCid) : undefined;
  if (!rootCid || !rootBytes) {
    broken('bundle', rootCid ?? '-', 'the CAR has no single root index block');
    return finish();
  }
  if (!blockMatches(CID.parse(rootCid), rootBytes)) {
    broken('bundle', rootCid, 'the bundle index does not hash to its CID');
    return finish();
  }
  const index = decodeLoose(rootBytes) as EvidenceIndex | undefined;
  if (index?.type !== EVIDENCE_TYPE || index.version !== 1) {
    broken('bundle', rootCid, 'the root block is not a Provenant evidence index');
    return finish();
  }
  report.createdAt = index.createdAt;
  report.datasetId = index.datasetId;
  report.manifestCid = index.manifestCid;

  /** The intact block `cid`, or undefined after recording why not. */
  const intact = (cid: string, part: Part, what: string, ref = cid, role?: (b: Uint8Array) => string) => {
    const b = all.get(cid);
    let parsed: CID;
    try {
      parsed = CID.parse(cid);
    } catch {
      broken(part, ref, `${what}: ${JSON.stringify(cid)} is not a CID`);
      return undefined;
    }
    if (!b) {
      broken(part, ref, `${what} ${cid} is missing from the bundle`);
      return undefined;
    }
    if (!blockMatches(parsed, b)) {
      broken(part, ref, `${role ? role(b) : what} ${cid} does not hash to its CID`);
      return undefined;
    }
    return b;
  };
  const listed = new Set<string>([rootCid]);

  // ---- keys -----------------------------------------------------------------------------
  const carried: VerifyingKey[] = [];
  for (const k of index.publicKeys ?? []) {
    try {
      const publicKey = crypto.createPublicKey({ key: k.pem, format: 'pem' });
      carried.push({ keyId: k.keyId, algorithm: k.algorithm, publicKey, publicKeyPem: k.pem });
      if (k.keyId !== keyIdOf(publicKey))
        report.notes.push(`key ${k.keyId.slice(0, 16)} is named by an operator key id`);
    } catch {
      broken('key', k.keyId, 'a public key in the bundle is not a PEM public key');
    }
  }
  const signers = new Map<string, boolean>();
  const check = (env: Envelope, what: string): SignatureCheck => {
    const c = checkEnvelope(env, o.trusted, carried);
    report.signatures.push({ what, state: c.state, keyId: c.keyId });
    if (c.state === 'bad') broken('signature', what, c.detail);
    else signers.set(c.keyId, (signers.get(c.keyId) ?? false) || c.state === 'trusted');
    return c;
  };

  // ---- manifest -------------------------------------------------------------------------
  // The intact manifest blocks, read again from the file when a page is needed (each checked again).
  const mIntact = new Set<string>();
  const mBlocks: BlockSource & { has(cid: string): boolean } = {
    has: (cid) => mIntact.has(cid),
    get: (cid) => {
      if (!mIntact.has(cid)) return undefined;
      const b = all.get(cid);
      return b && blockMatches(CID.parse(cid), b) ? b : undefined;
    },
  };
  for (const cid of index.manifest?.blocks ?? []) {
    listed.add(cid);
    const b = intact(cid, 'manifest', 'manifest block', cid, (x) => manifestBlockRole(x, cid === index.manifestCid));
    if (b) mIntact.add(cid);
  }
  if (!(index.manifest?.blocks ?? []).includes(index.manifestCid))
    broken('manifest', index.manifestCid, 'the manifest root block is not in the bundle');
  let manifest: Manifest | undefined;
  /** The file records could all be read (they are read again, page by page, to check a directory). */
  let filesRead = false;
  const rootM = mBlocks.get(index.manifestCid);
  if (rootM) {
    const parsed = ManifestSchema.safeParse(decodeLoose(rootM));
    if (!parsed.success) broken('manifest', index.manifestCid, 'the manifest root is not a Provenant manifest');
    else {
      manifest = parsed.data;
      try {
        let count = 0;
        let bytes = 0;
        for (const f of manifestFiles(manifest, mBlocks)) {
          count++;
          bytes += f.size;
        }
        filesRead = true;
        let shards = 0;
        for (const s of manifestShards(manifest, mBlocks)) if (s) shards++;
        report.manifest = {
          createdAt: manifest.createdAt,
          files: count,
          bytes,
          shards,
          blocks: mIntact.size,
          ...(manifest.source ? { source: describeSource(manifest.source) } : {}),
        };
      } catch (err) {
        // A damaged page was reported above; this says what could not be read because of it.
        broken('manifest', index.manifestCid, `the file records cannot be read: ${(err as Error).message}`);
      }
      if (manifest.datasetId !== index.datasetId)
        broken(
          'manifest',
          index.manifestCid,
          `the manifest is of ${manifest.datasetId}, the index says ${index.datasetId}`,
        );
    }
  }

  // The manifest CAR rebuilt from its blocks in order (root first, as writeManifest frames it):
  // its piece CID is what the provider stored and what a chain commitment names.
  let manifestPiece: string | undefined;
  const order = index.manifest?.blocks ?? [];
  if (manifest && order[0] === index.manifestCid && order.every((c) => mBlocks.has(c))) {
    const commp = new CommPHasher();
    commp.update(carHeader(CID.parse(index.manifestCid)));
    let whole = true;
    for (const c of order) {
      const b = mBlocks.get(c);
      if (!b) {
        broken('manifest', c, `manifest block ${c} changed while the bundle was read`);
        whole = false;
        break;
      }
      for (const part of carBlock(CID.parse(c), b)) commp.update(part);
    }
    if (whole) manifestPiece = commp.digest().pieceCid;
    if (manifestPiece && index.manifest.pieceCid !== manifestPiece)
      broken(
        'manifest',
        'manifest piece',
        `the manifest's blocks rebuild piece ${manifestPiece}, the bundle says it was stored as ${index.manifest.pieceCid}`,
      );
  }

  // ---- lineage: the ancestors' manifest roots, walked from the manifest's derivedFrom -------
  const ancestors = new Map<string, Manifest>();
  for (const cid of index.lineage ?? []) {
    listed.add(cid);
    const b = intact(cid, 'lineage', 'parent manifest root');
    if (!b) continue;
    const parsed = ManifestSchema.safeParse(decodeLoose(b));
    if (parsed.success) ancestors.set(cid, parsed.data);
    else broken('lineage', cid, 'the parent manifest root is not a Provenant manifest');
  }
  if (manifest && (manifest.derivedFrom?.length || ancestors.size)) {
    const lineage: LineageEntry[] = [];
    const reached = new Set<string>();
    let level = (manifest.derivedFrom ?? []).map((cid) => ({ cid, child: index.manifestCid }));
    for (let depth = 1; level.length > 0; depth++) {
      const next: typeof level = [];
      for (const { cid, child } of level) {
        if (reached.has(cid)) continue;
        reached.add(cid);
        const a = ancestors.get(cid);
        if (!a) {
          // A damaged root was named above; a parent left out of the bundle is named here.
          if (!(index.lineage ?? []).includes(cid))
            broken('lineage', cid, `a parent named by ${child} is not in the bundle`);
          continue;
        }
        const parents = a.derivedFrom ?? [];
        lineage.push({ manifestCid: cid, datasetId: a.datasetId, createdAt: a.createdAt, depth, parents });
        next.push(...parents.map((p) => ({ cid: p, child: cid })));
      }
      level = next;
    }
    for (const cid of ancestors.keys())
      if (!reached.has(cid)) broken('lineage', cid, 'a parent manifest no manifest of the bundle names');
    report.lineage = lineage;
  }

  // ---- audit log ------------------------------------------------------------------------
  const records = index.audit?.records ?? [];
  let prev: string | null = null;
  let signedUpTo = 0;
  let trustedUpTo = 0;
  let unsigned = 0;
  let lastVerify: string | undefined;
  const times: string[] = [];
  let headBytes: Uint8Array | undefined;
  for (const [i, cid] of records.entries()) {
    listed.add(cid);
    const n = i + 1;
    const b = intact(cid, 'audit', `audit record #${n}`, `audit record #${n}`);
    if (!b) {
      prev = cid;
      continue;
    }
    if (i === records.length - 1) headBytes = b;
    const rec = decodeLoose(b) as
      | ({
          type: string;
          datasetId: string;
          seq: number;
          prev: string | null;
          kind: string;
          time: string;
        } & AuditSignature)
      | undefined;
    if (rec?.type !== 'provenant/audit') {
      broken('audit', `audit record #${n}`, `${cid} is not an audit record`);
      prev = cid;
      continue;
    }
    if (rec.seq !== n) broken('audit', `audit record #${n}`, `the record says it is #${rec.seq}`);
    if (rec.prev !== prev)
      broken(
        'audit',
        `audit record #${n}`,
        `links ${rec.prev ?? 'nothing'} as the record before, not ${prev ?? 'nothing'}`,
      );
    if (rec.datasetId !== index.datasetId) broken('audit', `audit record #${n}`, `is a record of ${rec.datasetId}`);
    times.push(rec.time);
    if (rec.kind === 'verify') lastVerify = rec.time;
    if (rec.signature) {
      let mismatch: string | undefined;
      try {
        mismatch = auditStatementMismatch(rec, openEnvelope(rec.signature, `audit record #${n}`));
      } catch (err) {
        mismatch = (err as Error).message;
      }
      if (mismatch) broken('signature', `audit record #${n}`, mismatch);
      else {
        const c = check(rec.signature, `audit record #${n}`);
        if (c.state !== 'bad') signedUpTo = n;
        if (c.state === 'trusted') trustedUpTo = n;
      }
    } else unsigned++;
    prev = cid;
  }
  if ((index.audit?.head ?? null) !== (records[records.length - 1] ?? null))
    broken('audit', 'audit head', `the index names head ${index.audit?.head}, the last record is ${records.at(-1)}`);
  report.audit = {
    records: records.length,
    head: index.audit?.head ?? null,
    ...(times.length ? { first: times[0]!, last: times[times.length - 1]! } : {}),
    ...(lastVerify ? { lastVerify } : {}),
    signed: records.length - unsigned,
    unsigned,
  };

  // ---- replica table --------------------------------------------------------------------
  const tableCid = index.replicaTable?.root ?? null;
  /** The table's chain commitments, each as `commitmentKey` of its replica (not the replicas: they grow with the dataset). */
  const tableCommitments = new Set<string>();
  let committed = 0;
  /** Every page of the table was read (an anchor it does not hold is then not in the table). */
  let tableRead = false;
  let tableBytes: Uint8Array | undefined;
  let manifestSignature: Envelope | undefined;
  if (tableCid) {
    listed.add(tableCid);
    tableBytes = intact(tableCid, 'replica', 'replica table root');
    const root = tableBytes
      ? (decodeLoose(tableBytes) as
          { type: string; manifestCid: string; pages: { cid: CID }[]; manifestSignature?: Envelope } | undefined)
      : undefined;
    if (tableBytes && root?.type !== 'provenant/replica-table')
      broken('replica', tableCid, 'the table root is not a replica table');
    if (root?.type === 'provenant/replica-table') {
      if (root.manifestCid !== index.manifestCid)
        broken('replica', tableCid, `the table is of manifest ${root.manifestCid}`);
      manifestSignature = root.manifestSignature;
      const rootPages = root.pages.map((p) => p.cid.toString());
      if (rootPages.join() !== (index.replicaTable.pages ?? []).join())
        broken('replica', tableCid, 'the bundle does not hold exactly the pages the table root lists');
    }
    const byProvider: Record<string, { replicas: number; healthy: number }> = {};
    const pieces = new Set<string>();
    let count = 0;
    tableRead = true;
    for (const [i, cid] of (index.replicaTable.pages ?? []).entries()) {
      listed.add(cid);
      const b = intact(cid, 'replica', `replica table page ${i + 1}`, `replica table page ${i + 1}`);
      const page = b ? (decodeLoose(b) as { type: string; replicas: StewardReplica[] } | undefined) : undefined;
      if (b && page?.type !== 'provenant/replica-page') broken('replica', cid, 'not a replica table page');
      if (page?.type !== 'provenant/replica-page') tableRead = false;
      for (const r of page?.replicas ?? []) {
        if (r.commitment) {
          committed++;
          tableCommitments.add(commitmentKey(r.shard, r.providerId, r.pieceCid, r.commitment));
        }
        count++;
        pieces.add(r.pieceCid);
        const p = (byProvider[r.providerId] ??= { replicas: 0, healthy: 0 });
        p.replicas++;
        if (r.state === 'healthy') p.healthy++;
      }
    }
    report.replicas = { count, pieces: pieces.size, byProvider };
  }

  // ---- anchors: the chain commitments of the replicas --------------------------------------
  if (index.anchors?.length) {
    const shardPieces = new Map<number, string>();
    if (manifest)
      try {
        for (const s of manifestShards(manifest, mBlocks)) shardPieces.set(s.index, s.pieceCid);
      } catch {
        // A damaged shard page was reported with the manifest.
      }
    const anchors: AnchorReport[] = [];
    for (const [i, a] of index.anchors.entries()) {
      const c = a.commitment;
      const what = a.shard === -1 ? 'manifest' : `shard ${a.shard}`;
      const ref = `anchor #${i + 1} (${what} on ${a.providerId})`;
      if (!c || !['pdp', 'deal', 'claim'].includes(c.kind) || !Number.isSafeInteger(c.epoch) || c.epoch < 0) {
        broken('anchor', ref, 'not a chain commitment (kind and epoch)');
        continue;
      }
      const inTable = tableCommitments.has(commitmentKey(a.shard, a.providerId, a.pieceCid, c));
      if (!tableCid) {
        broken('anchor', ref, 'the bundle has no replica table to hold it');
        continue;
      }
      if (tableRead && !inTable) {
        broken('anchor', ref, 'the replica table holds no such commitment for this replica');
        continue;
      }
      if (c.providerId !== a.providerId) {
        broken('anchor', ref, `the commitment is ${c.providerId}'s, not ${a.providerId}'s`);
        continue;
      }
      if (c.pieceCid !== a.pieceCid) {
        broken('anchor', ref, `the commitment names piece ${c.pieceCid}, the replica is piece ${a.pieceCid}`);
        continue;
      }
      // What the bundle itself proves: the committed piece is this one.
      if (a.shard === -1) {
        if (!manifestPiece) {
          broken('anchor', ref, 'the manifest piece cannot be rebuilt from the bundle (see the manifest findings)');
          continue;
        }
        if (c.pieceCid !== manifestPiece) {
          broken(
            'anchor',
            ref,
            `the commitment names piece ${c.pieceCid}; the manifest's blocks rebuild piece ${manifestPiece}`,
          );
          continue;
        }
      } else {
        const listed = shardPieces.get(a.shard);
        if (listed !== c.pieceCid) {
          broken(
            'anchor',
            ref,
            listed
              ? `the commitment names piece ${c.pieceCid}; the manifest lists shard ${a.shard} as piece ${listed}`
              : `the manifest lists no shard ${a.shard}`,
          );
          continue;
        }
      }
      anchors.push({
        shard: a.shard,
        providerId: a.providerId,
        pieceCid: c.pieceCid,
        kind: c.kind,
        epoch: c.epoch,
        network: c.network,
        simulated: /simulated/i.test(c.network),
        ref: commitmentRef(c),
      });
    }
    report.anchors = anchors;
    if (tableRead && committed > index.anchors.length)
      report.notes.push(
        `${committed - index.anchors.length} chain commitment(s) in the replica table are not listed as anchors (an encrypted copy's commits its ciphertext)`,
      );
  }

  // ---- signatures -----------------------------------------------------------------------
  let manifestTrusted = false;
  let manifestSigned = false;
  if (manifestSignature) {
    let mismatch: string | undefined;
    try {
      mismatch = manifestStatementMismatch(manifestSignature, index.manifestCid);
    } catch (err) {
      mismatch = (err as Error).message;
    }
    if (mismatch) broken('signature', 'manifest signature', mismatch);
    else {
      const c = check(manifestSignature, 'manifest signature (archive time)');
      manifestSigned = c.state !== 'bad';
      manifestTrusted = c.state === 'trusted';
    }
  }
  let evidenceTrusted = false;
  let evidenceSigned = false;
  for (const cid of index.signatures ?? []) {
    listed.add(cid);
    const b = intact(cid, 'signature', 'evidence signature block');
    if (!b) continue;
    const sb = decodeLoose(b) as SignatureBlock | undefined;
    if (sb?.type !== SIGNATURE_TYPE) {
      broken('signature', cid, 'not a signature block');
      continue;
    }
    let why: string | undefined;
    try {
      const st = openEnvelope(sb.envelope, 'evidence signature');
      const p = st.predicate as { createdAt?: string; auditRecords?: number };
      const want = evidenceStatement({
        datasetId: index.datasetId,
        manifestCid: index.manifestCid,
        auditHead: index.audit.head && headBytes ? { cid: index.audit.head, bytes: headBytes } : null,
        auditRecords: records.length,
        table: tableCid && tableBytes ? { cid: tableCid, bytes: tableBytes } : null,
        createdAt: p.createdAt ?? '',
      });
      if (st.predicateType !== EVIDENCE_PREDICATE) why = `predicate type ${st.predicateType}`;
      else if (JSON.stringify(st.subject) !== JSON.stringify(want.subject) || p.auditRecords !== records.length)
        why = 'the evidence signature names other parts than the bundle holds';
    } catch (err) {
      why = (err as Error).message;
    }
    if (why) {
      broken('signature', 'evidence signature', why);
      continue;
    }
    const c = check(sb.envelope, 'evidence signature (bundle time)');
    evidenceSigned ||= c.state !== 'bad';
    evidenceTrusted ||= c.state === 'trusted';
  }

  for (const cid of all.keys())
    if (!listed.has(cid)) report.notes.push(`block ${cid} is in the CAR but not in the index`);

  // ---- a directory ----------------------------------------------------------------------
  if (o.dir && manifest) {
    const dir = o.dir.path;
    let matched = 0;
    let checked = 0;
    const known = new Set<string>();
    for (const f of filesRead ? manifestFiles(manifest, mBlocks) : []) {
      checked++;
      known.add(f.path);
      const p = path.join(dir, f.path);
      let st: fs.Stats;
      try {
        st = fs.statSync(p);
      } catch {
        broken('file', f.path, `missing from ${dir}`);
        continue;
      }
      if (!st.isFile()) {
        broken('file', f.path, 'is not a regular file');
        continue;
      }
      const h = await sha256File(p);
      if (h !== f.sha256)
        broken('file', f.path, `sha256 ${h.slice(0, 16)}… is not the manifest's ${f.sha256.slice(0, 16)}…`);
      else matched++;
    }
    let extra = 0;
    for (const r of walk(dir)) if (!known.has(r)) extra++;
    if (extra) report.notes.push(`${extra} file(s) in ${dir} are not in the manifest`);
    report.files = { dir: path.resolve(dir), as: o.dir.as, checked, matched, extra };
  }

  // ---- who signed, and is that enough ----------------------------------------------------
  report.signers = [...signers].map(([keyId, trusted]) => ({ keyId, trusted }));
  const anySigned = manifestSigned || evidenceSigned || signedUpTo > 0;
  const headTrusted = records.length === 0 || trustedUpTo === records.length;
  const trusted = (manifestTrusted || evidenceTrusted) && headTrusted;
  report.signer = trusted ? 'trusted' : anySigned ? 'unverified' : 'unsigned';
  if (signedUpTo > 0 && signedUpTo < records.length)
    report.notes.push(`audit records after #${signedUpTo} are not signed: only the chain up to #${signedUpTo} is`);
  if (o.trusted.length && !trusted) {
    const why = !(manifestTrusted || evidenceTrusted)
      ? 'no signature over the manifest is by a trusted key'
      : `the audit head (#${records.length}) is not signed by a trusted key`;
    broken('trust', 'signer', why);
  }
  return finish();
}

/** A replica's commitment as one string: an anchor is in the table when its key is. */
function commitmentKey(shard: number, providerId: string, pieceCid: string, c: ChainCommitment): string {
  return JSON.stringify([shard, providerId, pieceCid, c]);
}

/** A commitment's chain ids, as a reader would look them up. */
function commitmentRef(c: ChainCommitment): string {
  const parts: string[] = [];
  if (c.kind === 'pdp') parts.push(`PDP data set ${c.dataSetId ?? '?'} piece ${c.pieceId ?? '?'}`);
  if (c.dealId !== undefined) parts.push(`deal ${c.dealId}`);
  if (c.claimId !== undefined) parts.push(`claim ${c.claimId}`);
  if (c.sector !== undefined) parts.push(`sector ${c.sector}`);
  if (c.txHash) parts.push(`tx ${c.txHash}`);
  return parts.join(', ');
}

function describeSource(s: NonNullable<Manifest['source']>): string {
  const v = s as { uri?: string; path?: string; kind?: string };
  return v.uri ?? v.path ?? v.kind ?? JSON.stringify(s);
}

/** The report as a reader sees it: what was proven, since when, by whom, and every broken link. */
export function describeEvidence(r: EvidenceReport): string {
  const lines: string[] = [];
  lines.push(`evidence bundle ${r.bundle}${r.createdAt ? ` (written ${r.createdAt})` : ''}`);
  if (r.datasetId) lines.push(`dataset ${r.datasetId}, manifest ${r.manifestCid}`);
  if (r.manifest)
    lines.push(
      `  manifest: ${r.manifest.files} files, ${r.manifest.bytes} bytes in ${r.manifest.shards} shard(s), archived ${r.manifest.createdAt}${r.manifest.source ? ` from ${r.manifest.source}` : ''}; ${r.manifest.blocks} blocks, every CID recomputed`,
    );
  for (const a of r.lineage ?? [])
    lines.push(
      `  ${'  '.repeat(a.depth - 1)}derived from ${a.datasetId} (manifest ${a.manifestCid}, archived ${a.createdAt}): root block checked against its CID`,
    );
  if (r.audit)
    lines.push(
      `  audit log: ${r.audit.records} records${r.audit.first ? ` from ${r.audit.first} to ${r.audit.last}` : ''}, ${r.audit.signed} signed, ${r.audit.unsigned} unsigned${r.audit.lastVerify ? `; last verification ${r.audit.lastVerify}` : ''}`,
    );
  if (r.replicas)
    lines.push(
      `  replicas: ${r.replicas.count} copies of ${r.replicas.pieces} pieces: ${Object.entries(r.replicas.byProvider)
        .map(([id, p]) => `${id} ${p.healthy}/${p.replicas} healthy`)
        .join(', ')}`,
    );
  // The manifest's anchors one by one (its piece holds every file's sha256); the shards' summed up.
  const onNet = (a: AnchorReport) =>
    `${a.simulated ? ' (simulated network)' : ''}; ${a.ref} on ${a.network.replace(/ \(simulated\)$/, '')}`;
  for (const a of (r.anchors ?? []).filter((x) => x.shard === -1))
    lines.push(
      `  anchor: manifest on ${a.providerId}: contents fixed no later than epoch ${a.epoch}${onNet(a)} (the piece rebuilt from the bundle; the epoch as recorded)`,
    );
  const shardAnchors = (r.anchors ?? []).filter((x) => x.shard >= 0);
  if (shardAnchors.length) {
    const epochs = shardAnchors.map((a) => a.epoch);
    const simulated = shardAnchors.some((a) => a.simulated);
    lines.push(
      `  anchors: ${shardAnchors.length} shard copies, each committing the piece the manifest lists: fixed no later than epochs ${Math.min(...epochs)} to ${Math.max(...epochs)}${simulated ? ' (simulated network)' : ''}`,
    );
  }
  if (r.files)
    lines.push(
      `  ${r.files.as} directory ${r.files.dir}: ${r.files.matched}/${r.files.checked} files match the manifest's sha256`,
    );
  for (const s of r.signatures)
    lines.push(
      `  signature: ${s.what}: ${s.state === 'trusted' ? 'valid, trusted key' : s.state === 'unverified-signer' ? 'valid, signer UNVERIFIED (key not given with --trust)' : 'INVALID'} ${s.keyId.slice(0, 16)}`,
    );
  // A file that is no bundle has no signer to speak of.
  if (r.datasetId)
    lines.push(
      r.signer === 'trusted'
        ? `signer: trusted (${r.signers
            .filter((s) => s.trusted)
            .map((s) => s.keyId.slice(0, 16))
            .join(', ')})`
        : r.signer === 'unverified'
          ? `signer: UNVERIFIED: signatures are intact, but no key given with --trust made them (${r.signers.map((s) => s.keyId.slice(0, 16)).join(', ')})`
          : 'signer: unsigned (no signing key was configured)',
    );
  for (const n of r.notes) lines.push(`  note: ${n}`);
  if (r.ok) {
    const since = r.manifest?.createdAt ?? r.audit?.first;
    const fixed = (r.anchors ?? []).filter((a) => a.shard === -1).sort((a, b) => a.epoch - b.epoch)[0];
    if (fixed)
      lines.push(
        `ANCHORED: the manifest's contents were fixed no later than epoch ${fixed.epoch} (${fixed.simulated ? 'simulated network' : fixed.network}, ${fixed.providerId})`,
      );
    lines.push(
      `VERIFIED: the dataset's contents${since ? ` as archived ${since}` : ''}${r.files ? `, the ${r.files.as} files` : ''} and its audit history${r.audit?.last ? ` to ${r.audit.last}` : ''} are intact${r.signer === 'trusted' ? ', signed by a trusted key' : ''}`,
    );
  } else {
    lines.push(`BROKEN: ${r.broken.length} link(s)`);
    for (const b of r.broken)
      lines.push(
        `  ${b.part}: ${b.detail.startsWith(b.ref) ? '' : `${b.ref.length > 40 ? short(b.ref) : b.ref}: `}${b.detail}`,
      );
  }
  return lines.join('\n');
}
