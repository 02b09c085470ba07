/**
 * Pack one unit (units.ts) on whichever worker runs it: read its files' leaves from the source
 * (a local path this worker sees, or a remote source by ranged reads), write its data shards
 * into this worker's staging, store each shard's copies as it closes and delete it, and store
 * the unit's result (shards, block indexes, placements) as a block on the providers. Staging
 * holds at most the unit's shards. A retry, here or on another worker, starts the unit over:
 * its shards come out identical and their copies are already stored (puts are idempotent).
 * An encrypting run's plan page carries its wrapped data key: the unit stores its shards as
 * ciphertext under the data key it unwraps with this worker's own key-encryption key, and fails
 * with EncryptionKeyError, before reading a byte, on a worker without that key.
 */
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { UnitRequest, UnitSummary } from '../../shared/types.js';
import type { StageContext } from '../context.js';
import { encryptedContext } from '../encryption/keys.js';
import { FileChangedError, IntegrityError, showPath, SourceChangedError, UnreadableFileError } from '../errors.js';
import { createSource } from '../ingest/mirror.js';
import type { Source } from '../ingest/sources.js';
import { EncryptedProvider } from '../providers/encrypted.js';
import { findRecord, putRecord } from '../providers/kit/records.js';
import { placeCopies } from '../replicate/place.js';
import type { JournalLine } from '../steward/journal.js';
import { TableStore } from '../steward/table.js';
import { readBlockIndex, blockIndexName } from './block-index.js';
import { ShardWriter, type ShardInfo } from './shard-writer.js';
import { rawLeafCid } from './unixfs.js';
import {
  leafCount,
  loadBlock,
  PLAN_PAGE_TYPE,
  shardPiece,
  storeBlock,
  UNIT_PLAN_TYPE,
  UNIT_RESULT_TYPE,
  UNIT_RUN,
  unitRunOf,
  type PlanPage,
  type UnitPlan,
  type UnitResult,
  type UnitShard,
} from './units.js';
import { writeStrategyFor } from './write-strategy.js';

export function unitStore(ctx: Pick<StageContext, 'config' | 'providers'>): TableStore {
  return new TableStore(ctx.providers.all(), path.join(ctx.config.dataDir, 'cache', 'pack-units'));
}

/** Reads a file's bytes by ranges: from this host's disk, or from a remote source. */
interface SegmentReader {
  read(into: Buffer, at: number): Promise<void>;
  close(): Promise<void>;
}

async function openLocal(
  root: string,
  rel: string,
  src: string,
  size: number,
  mtimeMs: number,
): Promise<SegmentReader> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path.join(root, src), 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EACCES' || e.code === 'EPERM')
      throw new UnreadableFileError(`cannot read ${showPath(rel)}: permission denied`, { cause: e });
    if (e.code === 'ENOENT')
      throw new FileChangedError(`file disappeared after the scan: ${showPath(rel)}`, { cause: e });
    throw e;
  }
  const st = await fh.stat();
  if (st.size !== size || Math.trunc(st.mtimeMs) !== mtimeMs) {
    await fh.close();
    throw new FileChangedError(`file changed since the scan (size or mtime): ${showPath(rel)}`);
  }
  return {
    async read(into, at) {
      let got = 0;
      while (got < into.length) {
        const { bytesRead } = await fh.read(into, got, into.length - got, at + got);
        if (bytesRead === 0) throw new FileChangedError(`file got shorter while being archived: ${showPath(rel)}`);
        got += bytesRead;
      }
    },
    close: () => fh.close(),
  };
}

/** A remote file's range [offset, offset + length), read in order into the leaves asked for. */
async function openRemote(
  source: Source,
  entry: { path: string; ref: string; size: number; mtimeMs: number; etag?: string },
  offset: number,
  length: number,
): Promise<SegmentReader> {
  const opened = await source.open(entry, undefined, { offset, length });
  if (opened.size !== undefined && opened.size !== entry.size)
    throw new SourceChangedError(`listed with ${entry.size} bytes, now ${opened.size} [${entry.ref}]`);
  const it = (opened.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let pending: Buffer = Buffer.alloc(0);
  let skip = opened.skip ?? 0;
  return {
    async read(into) {
      let got = 0;
      while (got < into.length) {
        if (pending.length === 0) {
          const n = await it.next();
          if (n.done) throw new SourceChangedError(`sent fewer bytes than listed [${entry.ref}]`);
          pending = n.value;
          if (skip > 0) {
            const drop = Math.min(skip, pending.length);
            skip -= drop;
            pending = pending.subarray(drop);
            continue;
          }
        }
        const k = Math.min(pending.length, into.length - got);
        pending.copy(into, got, 0, k);
        pending = pending.subarray(k);
        got += k;
      }
    },
    async close() {
      opened.body.destroy();
    },
  };
}

export async function packUnit(
  ctx: StageContext,
  req: UnitRequest,
  o: { signal?: AbortSignal; onProgress?: (p: { shards: number; bytes: number }) => void } = {},
): Promise<UnitSummary> {
  const store = unitStore(ctx);
  // Packed already in this run (a retry after a lost result): that result stands.
  const done = await findRecord<UnitSummary>(UNIT_RUN, unitRunOf(req), ctx.providers.all(), o.signal);
  if (done) return done;
  const page = await loadBlock<PlanPage>(store, req.planPage, PLAN_PAGE_TYPE);
  const planCid = page.units[req.slot];
  if (!planCid) throw new IntegrityError(`plan page ${req.planPage} has no unit ${req.slot}`);
  const plan = await loadBlock<UnitPlan>(store, planCid, UNIT_PLAN_TYPE);
  // Shards go out as ciphertext when the run encrypts; the plan and result blocks as they are.
  const shardCtx = encryptedContext(ctx, page.encryption);
  const dir = path.join(ctx.stageDir(req), `unit-${plan.unit}`);
  await fsp.rm(dir, { recursive: true, force: true }); // a retry on this worker starts the unit over
  await fsp.mkdir(dir, { recursive: true });
  const source = req.source ? createSource(req.source) : undefined;
  const io = await writeStrategyFor(dir, {});
  const closed: ShardInfo[] = [];
  const writer = new ShardWriter(dir, req.shardBytes, plan.firstShard, (info) => closed.push(info), undefined, {
    direct: io.strategy === 'direct',
  });
  const shards: UnitShard[] = [];
  const placements: JournalLine[] = [];
  const replicas: Record<string, number> = {};
  const sha256: Record<string, string> = {};
  const storedAs: Record<string, string> = {};
  let bytes = 0;
  /** Copies of every shard closed so far, then the shard goes (staging holds at most this unit). */
  const storeClosed = async () => {
    while (closed.length > 0) {
      const info = closed.shift()!;
      const file = path.join(dir, info.file);
      shards.push({ info, index: readBlockIndex(path.join(dir, blockIndexName(info.file))) });
      ctx.metrics.packed({ carBytes: info.carBytes, shards: 1 });
      const lines = await placeCopies(shardCtx, {
        ...req,
        file,
        piece: shardPiece(info),
        shard: info.index,
        slot: info.index,
        signal: o.signal,
      });
      for (const l of lines) {
        replicas[l.placement.providerId] = (replicas[l.placement.providerId] ?? 0) + 1;
        const p = shardCtx.providers.get(l.placement.providerId);
        if (!l.placement.existed && p instanceof EncryptedProvider)
          storedAs[l.piece.pieceCid] = p.storedIdOf(l.piece.pieceCid);
      }
      placements.push(...lines);
      await fsp.rm(file, { force: true });
      await fsp.rm(path.join(dir, blockIndexName(info.file)), { force: true });
      o.onProgress?.({ shards: shards.length, bytes });
    }
  };
  try {
    await writer.ready();
    let shardAt = 0;
    let leftInShard = plan.shardLeaves[0] ?? 0;
    const leaf = Buffer.allocUnsafe(req.chunkBytes);
    const stack: string[] = [];
    for (const ev of plan.events) {
      if (ev[0] === 'D') stack.push(ev[1]);
      else if (ev[0] === 'E') stack.pop();
      else {
        const [, name, size, mtimeMs, src, etag, from, to, ordinal] = ev;
        if (to <= from) continue;
        const rel = [...stack.slice(1), name].join('/');
        const offset = from * req.chunkBytes;
        const end = Math.min(size, to * req.chunkBytes);
        const reader = source
          ? await openRemote(
              source,
              { path: rel, ref: src, size, mtimeMs, ...(etag ? { etag } : {}) },
              offset,
              end - offset,
            )
          : await openLocal(req.sourcePath, rel, src, size, mtimeMs);
        const whole = from === 0 && to === leafCount(size, req.chunkBytes) && to > 1;
        const hash = whole ? crypto.createHash('sha256') : undefined;
        try {
          for (let i = from; i < to; i++) {
            const at = i * req.chunkBytes;
            const view = leaf.subarray(0, Math.min(req.chunkBytes, size - at));
            await reader.read(view, at);
            hash?.update(view);
            if (leftInShard === 0) {
              const full = writer.nextIndex;
              writer.close();
              writer.reportThrough(full);
              await storeClosed();
              leftInShard = plan.shardLeaves[++shardAt] ?? 0;
            }
            const cid = rawLeafCid(view);
            if (writer.wouldOverflow(cid, view))
              throw new IntegrityError(`unit ${plan.unit}: shard ${plan.firstShard + shardAt} overflows its plan`);
            writer.write(cid, view);
            leftInShard--;
            bytes += view.length;
          }
        } finally {
          await reader.close();
        }
        if (hash) sha256[String(ordinal)] = hash.digest('hex');
      }
    }
    if (shardAt !== plan.shardLeaves.length - 1 && plan.shardLeaves.length > 0)
      throw new IntegrityError(`unit ${plan.unit}: packed ${shardAt + 1} of ${plan.shardLeaves.length} planned shards`);
    writer.finish();
    await storeClosed();
  } catch (err) {
    writer.abort();
    throw err;
  } finally {
    source?.close();
  }
  const result: UnitResult = {
    type: UNIT_RESULT_TYPE,
    unit: plan.unit,
    shards,
    placements,
    sha256,
    ...(page.encryption ? { encryption: page.encryption, storedAs } : {}),
  };
  const cid = await storeBlock(store, result);
  const summary: UnitSummary = { unit: plan.unit, result: cid, shards: shards.length, bytes, replicas };
  await putRecord(UNIT_RUN, unitRunOf(req), summary, ctx.providers.all());
  await fsp.rm(dir, { recursive: true, force: true });
  // The run's staging directory goes with its last part (another unit may still use it).
  await fsp.rmdir(path.dirname(dir)).catch(() => undefined);
  return summary;
}
