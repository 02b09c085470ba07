/**
 * Stitch the units' work into one dataset (any worker): replay the planned listing with the
 * leaf CIDs the units found (their results' block indexes), building each file's nodes over its
 * leaves and each directory's node, the way a single pack would, into tree shards after the data
 * shards; store the tree shards' copies; write the manifest from every shard's block index and
 * store its copies; build the replica table from every copy the units and this run made.
 * Memory holds one unit's results and the open directories; staging, the tree shards, the block
 * indexes and files.ndjson. A retry starts over: everything it stores is already there.
 *
 * A file split across units is hashed (sha256) again from the source, in one pass: sha256 cannot
 * be resumed from parts. Files within one unit were hashed by it as it read them.
 *
 * An encrypting run's plan pages carry its encryption record: the tree shards are stored as
 * ciphertext (the data key unwrapped with this worker's key-encryption key), the manifest as it is,
 * recording the encryption for restores.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { CID } from 'multiformats/cid';
import { FOC_MAX_PIECE_BYTES } from '../../config/schema.js';
import type { ReplicaTableSummary, StitchRequest, StitchResult } from '../../shared/types.js';
import { TOOL_NAME, TOOL_VERSION } from '../../version.js';
import type { StageContext } from '../context.js';
import { encryptedContext } from '../encryption/keys.js';
import { FileChangedError, IntegrityError, showPath, SourceChangedError, StagingMissingError } from '../errors.js';
import { signingKeyOf } from '../evidence/keys.js';
import { signManifest } from '../evidence/sign.js';
import { createSource } from '../ingest/mirror.js';
import { writeManifest } from '../manifest/manifest.js';
import { findRecord, putRecord } from '../providers/kit/records.js';
import { placeCopies } from '../replicate/place.js';
import { journalPath, readJournal, replicaOf, type JournalLine } from '../steward/journal.js';
import { TableStore } from '../steward/table.js';
import { BlockIndexWriter, blockIndexName } from './block-index.js';
import { FILES, type FileRecord } from './packer.js';
import { ShardWriter, type ShardInfo } from './shard-writer.js';
import { encodeDirectory, FileBuilder, FILE_WIDTH, type Block, type DirEntry } from './unixfs.js';
import { unitStore } from './unit-pack.js';
import {
  leafCount,
  loadBlock,
  PLAN_PAGE_TYPE,
  RESULT_PAGE_TYPE,
  shardPiece,
  STITCH_RUN,
  stitchRunOf,
  UNIT_PLAN_TYPE,
  UNIT_RESULT_TYPE,
  type PlanPage,
  type ResultPage,
  type UnitPlan,
  type UnitResult,
} from './units.js';
import { writeStrategyFor } from './write-strategy.js';

interface OpenDir {
  name: string;
  entries: DirEntry[];
}

/**
 * sha256 of a whole file, read from the source in one pass (local path or remote object). A local
 * file must still be the one the units read: its size and mtime as listed, before and after the
 * read (a rewrite of the same size after a unit read it would give a digest of other bytes than
 * the leaves); a remote object is held to its listed ETag by the source.
 */
export async function hashWholeFile(
  req: Pick<StitchRequest, 'source' | 'sourcePath'>,
  rel: string,
  src: string,
  size: number,
  mtimeMs: number,
  etag: string | null,
): Promise<string> {
  const h = crypto.createHash('sha256');
  let n = 0;
  if (req.source) {
    const source = createSource(req.source);
    try {
      const opened = await source.open({ path: rel, ref: src, size, ...(etag ? { etag } : {}) });
      for await (const c of opened.body as AsyncIterable<Buffer>) {
        h.update(c);
        n += c.length;
      }
    } finally {
      source.close();
    }
  } else {
    const changed = (why: string) =>
      new FileChangedError(`file changed since the units read it (${why}): ${showPath(rel)}`);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(path.join(req.sourcePath, src), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw changed('it is gone');
      throw err;
    }
    try {
      const before = await fh.stat();
      if (before.size !== size || Math.trunc(before.mtimeMs) !== mtimeMs) throw changed('size or mtime');
      for await (const c of fh.createReadStream({ highWaterMark: 4 << 20, autoClose: false })) {
        h.update(c as Buffer);
        n += (c as Buffer).length;
      }
      const after = await fh.stat();
      if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) throw changed('modified during the read');
    } finally {
      await fh.close();
    }
  }
  if (n !== size) throw new SourceChangedError(`${src}: ${n} bytes read again, ${size} listed`);
  return h.digest('hex');
}

export async function stitch(
  ctx: StageContext,
  req: StitchRequest,
  o: { signal?: AbortSignal; onProgress?: (p: { units: number; files: number }) => void } = {},
): Promise<StitchResult> {
  const store = unitStore(ctx);
  // Stitched already in this run (a retry after a lost result): that manifest and table stand.
  const done = await findRecord<StitchResult>(STITCH_RUN, stitchRunOf(req), ctx.providers.all(), o.signal);
  if (done) return done;
  // Every plan page carries the run's encryption record, if it encrypts.
  const firstPage = req.planPages[0];
  const encryption = firstPage ? (await loadBlock<PlanPage>(store, firstPage, PLAN_PAGE_TYPE)).encryption : undefined;
  const treeCtx = encryptedContext(ctx, encryption);
  const dir = path.join(ctx.stageDir(req), 'stitch');
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(dir, { recursive: true });
  const io = await writeStrategyFor(dir, {});
  const infos: ShardInfo[] = [];
  const replicas: Record<string, number> = {};
  const journal = fs.openSync(journalPath(dir), 'w');
  const record = (lines: JournalLine[], countAsShard: boolean) => {
    if (lines.length === 0) return;
    fs.writeSync(journal, lines.map((l) => JSON.stringify(l) + '\n').join(''));
    if (countAsShard)
      for (const l of lines) replicas[l.placement.providerId] = (replicas[l.placement.providerId] ?? 0) + 1;
  };
  const filesPath = path.join(dir, FILES);
  const filesFd = fs.openSync(filesPath, 'w');

  // Tree shards: the inner nodes, after the data shards; each stored and removed as it closes.
  const treeClosed: ShardInfo[] = [];
  const treeInfos: ShardInfo[] = [];
  const tree = new ShardWriter(dir, req.shardBytes, req.dataShards, (info) => treeClosed.push(info), undefined, {
    direct: io.strategy === 'direct',
  });
  const storeTree = async () => {
    while (treeClosed.length > 0) {
      const info = treeClosed.shift()!;
      const file = path.join(dir, info.file);
      const lines = await placeCopies(treeCtx, {
        ...req,
        file,
        piece: shardPiece(info),
        shard: info.index,
        slot: info.index,
        signal: o.signal,
      });
      record(lines, true);
      treeInfos.push(info);
      await fsp.rm(file, { force: true });
    }
  };
  const emit = async (b: Block) => {
    if (tree.wouldOverflow(b.cid, b.bytes)) {
      const full = tree.nextIndex;
      tree.close();
      tree.reportThrough(full);
      await storeTree();
    }
    tree.write(b.cid, b.bytes);
  };

  const stack: OpenDir[] = [];
  let rootCid: CID | undefined;
  let files = 0;
  let bytes = 0;
  let units = 0;
  let lastShard = 0;
  let cur:
    | {
        ordinal: number;
        builder: FileBuilder;
        rel: string;
        ranges: { shard: number; offset: number; length: number }[];
      }
    | undefined;
  try {
    await tree.ready();
    if (req.planPages.length !== req.resultPages.length)
      throw new IntegrityError(`${req.planPages.length} plan pages but ${req.resultPages.length} result pages`);
    for (const [p, planPageCid] of req.planPages.entries()) {
      const planPage = await loadBlock<PlanPage>(store, planPageCid, PLAN_PAGE_TYPE);
      const resultPage = await loadBlock<ResultPage>(store, req.resultPages[p]!, RESULT_PAGE_TYPE);
      if (resultPage.results.length !== planPage.units.length)
        throw new IntegrityError(
          `page ${p}: ${planPage.units.length} units planned, ${resultPage.results.length} done`,
        );
      for (const [i, planCid] of planPage.units.entries()) {
        const plan = await loadBlock<UnitPlan>(store, planCid, UNIT_PLAN_TYPE);
        const result = await loadBlock<UnitResult>(store, resultPage.results[i]!, UNIT_RESULT_TYPE);
        if (result.unit !== plan.unit || result.shards.length !== plan.shardLeaves.length)
          throw new IntegrityError(`unit ${plan.unit}: its result does not match its plan`);
        // The unit's block indexes, for the manifest; its leaves, in order, for the files' nodes.
        const leaves: { shard: number; cid: string; length: number }[] = [];
        for (const sh of result.shards) {
          const idx = new BlockIndexWriter(path.join(dir, blockIndexName(sh.info.file)));
          for (const [offset, length, cid] of sh.index) {
            idx.add(CID.parse(cid).bytes, offset, length);
            leaves.push({ shard: sh.info.index, cid, length });
          }
          idx.close();
          infos.push(sh.info);
        }
        record(result.placements, true);
        let next = 0;
        for (const ev of plan.events) {
          if (ev[0] === 'D') {
            stack.push({ name: ev[1], entries: [] });
          } else if (ev[0] === 'E') {
            const top = stack.pop();
            if (!top) throw new IntegrityError(`unit ${plan.unit}: the listing leaves a directory it never entered`);
            const link = await encodeDirectory(top.entries, emit);
            const parent = stack[stack.length - 1];
            if (parent) parent.entries.push({ name: top.name, cid: link.cid, dagByteLength: link.dagByteLength });
            else rootCid = link.cid;
          } else {
            const [, name, size, mtimeMs, src, etag, from, to, ordinal] = ev;
            if (!cur || cur.ordinal !== ordinal) {
              const rel = [...stack.slice(1).map((d) => d.name), name].join('/');
              cur = { ordinal, builder: new FileBuilder(emit), rel, ranges: [] };
            }
            for (let k = from; k < to; k++) {
              const leaf = leaves[next++];
              const length = Math.min(req.chunkBytes, size - k * req.chunkBytes);
              if (!leaf || leaf.length !== length)
                throw new IntegrityError(`unit ${plan.unit}: leaf ${k} of ${cur.rel} is not in its result`);
              await cur.builder.addLeaf(CID.parse(leaf.cid), length);
              const last = cur.ranges[cur.ranges.length - 1];
              if (last && last.shard === leaf.shard) last.length += length;
              else cur.ranges.push({ shard: leaf.shard, offset: k * req.chunkBytes, length });
              lastShard = leaf.shard;
            }
            if (to !== leafCount(size, req.chunkBytes)) continue; // the file goes on in the next unit
            const link = await cur.builder.close();
            const sha256 =
              leafCount(size, req.chunkBytes) <= 1
                ? Buffer.from(link.cid.multihash.digest).toString('hex')
                : (result.sha256[String(ordinal)] ?? (await hashWholeFile(req, cur.rel, src, size, mtimeMs, etag)));
            const first = cur.ranges[0]?.shard ?? lastShard;
            const end = cur.ranges[cur.ranges.length - 1]?.shard ?? lastShard;
            const rec: FileRecord = {
              path: cur.rel,
              size,
              mtimeMs,
              sha256,
              cid: link.cid.toString(),
              shards: [first, end],
              ...(first !== end ? { ranges: cur.ranges } : {}),
            };
            fs.writeSync(filesFd, JSON.stringify(rec) + '\n');
            stack[stack.length - 1]!.entries.push({ name, cid: link.cid, dagByteLength: link.dagByteLength });
            files++;
            bytes += size;
            cur = undefined;
          }
        }
        if (next !== leaves.length)
          throw new IntegrityError(`unit ${plan.unit}: ${leaves.length - next} leaves unused`);
        o.onProgress?.({ units: ++units, files });
      }
    }
    if (!rootCid || stack.length > 0) throw new StagingMissingError('the planned listing ended before its root closed');
    tree.finish();
    await storeTree();
  } catch (err) {
    tree.abort();
    throw err;
  } finally {
    fs.closeSync(filesFd);
  }
  if (infos.length !== req.dataShards)
    throw new IntegrityError(`${infos.length} data shards in the units' results, ${req.dataShards} planned`);
  const shards = [...infos, ...treeInfos];

  const manifestFile = path.join(dir, 'manifest.car');
  const manifest = await writeManifest(
    {
      datasetId: req.datasetId,
      root: rootCid.toString(),
      source: { kind: req.manifest.sourceKind, uri: req.manifest.sourceUri, host: req.manifest.host },
      meta: req.manifest.meta,
      ...(req.manifest.derivedFrom?.length ? { derivedFrom: req.manifest.derivedFrom } : {}),
      tool: { name: TOOL_NAME, version: TOOL_VERSION },
      createdAt: req.manifest.createdAt,
      layout: { chunkBytes: req.chunkBytes, fileWidth: FILE_WIDTH, shardBytes: req.shardBytes },
      ...(encryption ? { encryption } : {}),
    },
    shards,
    filesPath,
    manifestFile,
    Math.max(req.shardBytes, FOC_MAX_PIECE_BYTES),
  );
  const manifestLines = await placeCopies(ctx, {
    ...req,
    file: manifestFile,
    piece: manifest,
    shard: -1,
    slot: 0,
    signal: o.signal,
  });
  record(manifestLines, false);
  fs.fsyncSync(journal);
  fs.closeSync(journal);

  let table: ReplicaTableSummary | undefined;
  if (req.table) {
    const on = req.table.providerIds.flatMap((id) => {
      try {
        return [ctx.providers.get(id)];
      } catch {
        return [];
      }
    });
    const all = (await readJournal(dir)).map(replicaOf);
    // The manifest signed at archive time, in the table root, as a single-host archive's is
    // (steward/activities.ts tableMeta); the key is read from its file here, never sent.
    const key = signingKeyOf(ctx.config);
    const meta = {
      datasetId: req.datasetId,
      manifestCid: manifest.rootCid,
      pageReplicas: req.table.pageReplicas,
      ...(key ? { manifestSignature: signManifest(manifest.rootCid, req.datasetId, key) } : {}),
    };
    table = await new TableStore(ctx.providers.all(), path.join(ctx.config.dataDir, 'cache', 'replica-tables')).build(
      meta,
      all,
      on,
    );
  }
  const result: StitchResult = {
    rootCid: rootCid.toString(),
    manifest,
    manifestProviders: manifestLines.map((l) => l.placement.providerId),
    ...(table ? { table } : {}),
    shards: shards.length,
    treeShards: treeInfos.length,
    files,
    bytes,
    carBytes: shards.reduce((n, s) => n + s.carBytes, 0),
    replicas,
  };
  await putRecord(STITCH_RUN, stitchRunOf(req), result, ctx.providers.all());
  await fsp.rm(dir, { recursive: true, force: true });
  // The run's staging directory goes with its last part (another unit may still use it).
  await fsp.rmdir(path.dirname(dir)).catch(() => undefined);
  return result;
}
