/**
 * Replicate stage: store staged pieces on providers (host queue), copy a piece between providers
 * for repair, renew and retire replicas (any worker), and the host's provider health memory.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import type { HostQueueActivities, PieceAtProvider, SharedQueueActivities } from '../../shared/activities.js';
import type { PieceRef, Placement } from '../../shared/types.js';
import type { StageContext } from '../context.js';
import { journalPlacement, shardOfFile } from '../steward/journal.js';
import { encryptedContext, runEncryption } from '../encryption/keys.js';
import { IntegrityError, NoHealthyReplicaError, StagingMissingError, showPath } from '../errors.js';
import { carCidFromSha256 } from '../pack/cids.js';
import { EncryptedProvider } from '../providers/encrypted.js';
import { carCidOfStream } from '../providers/kit/verified-stream.js';
import { boundary, whileBeating } from '../temporal.js';
import { twinOf } from '../pack/shard-hasher.js';
import { MAX_TWINS, twinFor } from './twins.js';

export function createReplicateActivities(ctx: StageContext) {
  const { health, stageDir } = ctx;

  /** Every stored copy goes into the run's placement journal (the replica table is built from it). */
  const journaled = async (
    s: Parameters<HostQueueActivities['provenantPutPiece']>[0],
    placed: Placement,
  ): Promise<Placement> => {
    await journalPlacement(stageDir(s), { shard: s.shard ?? shardOfFile(s.file), piece: s.piece, placement: placed });
    return placed;
  };

  const retire = {
    provenantRetirePiece: boundary((r) => retirePiece(ctx, r)),
  } satisfies Pick<SharedQueueActivities, 'provenantRetirePiece'>;

  const host = {
    /**
     * Store one staged piece on one provider. `last`: no other copy will be made from this staged
     * file, so the provider may take it (a local provider on the same filesystem moves it in).
     * Before the last copy, a provider that can move a file in takes one of the shard's twins.
     */
    provenantPutPiece: boundary(async (s) => {
      const file = path.join(stageDir(s), path.basename(s.file));
      // Shards of an encrypting run go out as ciphertext; the manifest (shard -1) as it is.
      const encryption = (s.shard ?? shardOfFile(s.file)) >= 0 ? await runEncryption(stageDir(s)) : undefined;
      const p = encryptedContext(ctx, encryption).providers.get(s.providerId);
      const twin = s.last ? undefined : await twinFor(p, file);
      if (!twin && !fs.existsSync(file)) {
        // Taken by an earlier attempt whose result was lost: the piece is there, or it is a real loss.
        const st = s.last ? await p.status(s.piece).catch(() => undefined) : undefined;
        if (st?.present && st.bytes === s.piece.bytes) {
          await removeStaged(file);
          const storedAt = new Date().toISOString();
          return journaled(s, {
            providerId: p.id,
            pieceCid: s.piece.pieceCid,
            existed: true,
            storedAt,
            ...(st.expiresAt ? { expiresAt: st.expiresAt } : {}),
          });
        }
        throw new StagingMissingError(`staged piece missing: ${showPath(file)}`);
      }
      const from = twin ?? file;
      let placed: Placement;
      try {
        placed = await whileBeating(() =>
          p.put(s.piece, () => fs.createReadStream(from, { highWaterMark: 4 << 20 }), {
            signal: Context.current().cancellationSignal,
            localFile: from,
            consumeLocalFile: !!twin || !!s.last,
          }),
        );
      } catch (err) {
        await health.failed(s.providerId, (err as Error).message);
        ctx.metrics.placeFailed(s.providerId);
        throw err;
      }
      ctx.metrics.placed(placed, s.piece.bytes);
      const stored = await journaled(s, placed);
      // The last copy is made: nothing reads the staged file again. A provider that copies it (not
      // local, or another filesystem) leaves it behind; it goes now, with any unused twins, so that
      // the pack's staging window moves on (pack.stagingWindowShards).
      if (s.last) await removeStaged(file);
      return stored;
    }),

    provenantCoolingProviders: boundary(async (r) => health.cooling(r.providerIds, r.cooldownMs)),
    ...retire,
  } satisfies Pick<HostQueueActivities, 'provenantPutPiece' | 'provenantCoolingProviders' | 'provenantRetirePiece'>;

  const shared = {
    provenantCopyPiece: boundary((r) => whileBeating(() => copyPiece(ctx, r))),

    provenantRenewPiece: boundary((r) => renewPiece(ctx, r)),
    ...retire,
  } satisfies Pick<SharedQueueActivities, 'provenantCopyPiece' | 'provenantRenewPiece' | 'provenantRetirePiece'>;

  return { shared, host };
}

/**
 * Remove a staged file and its twins, twins first: a retry that finds the file gone (the piece
 * stored) returns without looking for twins again.
 */
async function removeStaged(file: string): Promise<void> {
  for (let t = 1; t <= MAX_TWINS; t++) await fsp.rm(twinOf(file, t), { force: true });
  await fsp.rm(file, { force: true });
}

/** Delete a piece from a provider, best-effort (the answer says whether it went). */
export async function retirePiece(
  ctx: StageContext,
  r: PieceAtProvider,
): Promise<{ deleted: boolean; error?: string }> {
  try {
    await ctx.providers
      .get(r.providerId)
      .delete({ pieceCid: r.pieceCid }, { signal: Context.current().cancellationSignal });
    return { deleted: true };
  } catch (err) {
    return { deleted: false, error: (err as Error).message };
  }
}

/** Extend how long a provider keeps a piece (`renewed: false` when it cannot). */
export async function renewPiece(
  ctx: StageContext,
  r: PieceAtProvider,
): Promise<{ renewed: boolean; expiresAt?: string }> {
  const p = ctx.providers.get(r.providerId);
  if (!p.renew) return { renewed: false };
  return {
    renewed: true,
    ...(await p.renew({ pieceCid: r.pieceCid }, { signal: Context.current().cancellationSignal })),
  };
}

/** A put of a copy onto `providerId`, counted as a failed placement there when it throws (and rethrown). */
async function counted(ctx: StageContext, providerId: string, put: () => Promise<Placement>): Promise<Placement> {
  try {
    return await put();
  } catch (err) {
    ctx.metrics.placeFailed(providerId);
    throw err;
  }
}

/** Copy a piece from the first source whose bytes match its CAR CID onto `to` (repairs). */
export async function copyPiece(
  ctx: StageContext,
  r: {
    piece: PieceRef;
    from: string[];
    to: string;
    /** `to` held a copy that failed verification: the new copy is read back before it counts. */
    replacing?: boolean;
  },
): Promise<Placement> {
  const { config, providers } = ctx;
  const dir = path.join(config.dataDir, 'cache', 'repair');
  await fsp.mkdir(dir, { recursive: true });
  const file = path.join(dir, `${r.piece.pieceCid}.${process.pid}.car`);
  const signal = Context.current().cancellationSignal;
  const problems: string[] = [];
  try {
    for (const id of r.from) {
      const src = providers.get(id);
      const target = providers.get(r.to);
      let placed: Placement;
      if (src instanceof EncryptedProvider && target instanceof EncryptedProvider && src.sameKey(target)) {
        // An encrypted piece: its ciphertext is copied as it is stored, checked on the way, never decrypted to disk.
        let sealedCid: string;
        try {
          sealedCid = await src.readSealed(r.piece, file, { signal });
        } catch (err) {
          problems.push(`${id}: ${(err as Error).message}`);
          continue;
        }
        placed = await counted(ctx, r.to, () =>
          target.putSealed(r.piece, file, sealedCid, { signal, consumeLocalFile: true }),
        );
      } else {
        const hash = crypto.createHash('sha256');
        const out = fs.createWriteStream(file);
        try {
          for await (const c of src.readRange(r.piece, { signal })) {
            hash.update(c as Buffer);
            if (!out.write(c)) await new Promise<void>((res) => out.once('drain', () => res()));
          }
          await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
        } catch (err) {
          out.destroy();
          problems.push(`${id}: ${(err as Error).message}`);
          continue;
        }
        if (carCidFromSha256(hash.digest()) !== r.piece.carCid) {
          problems.push(`${id}: copy is corrupt`);
          continue;
        }
        placed = await counted(ctx, r.to, () =>
          target.put(r.piece, () => fs.createReadStream(file), { signal, localFile: file, consumeLocalFile: true }),
        );
      }
      ctx.metrics.placed(placed, r.piece.bytes);
      if (placed.existed || r.replacing) {
        // The provider said it holds the piece already, or it held a copy that failed: a Filecoin
        // deal runs on through a delete, and a PDP provider re-adds the bytes it still has parked
        // instead of taking new ones. Only a copy that reads back as the piece is a repair.
        const held = await carCidOfStream(target.readRange(r.piece, { signal })).catch((err: unknown) => {
          throw new IntegrityError(
            `${r.to} holds a copy it cannot serve [provider=${r.to}, piece=${r.piece.pieceCid}]: ${(err as Error).message}`,
            { cause: err },
          );
        });
        if (held.carCid !== r.piece.carCid || held.bytes !== r.piece.bytes)
          throw new IntegrityError(
            `${r.to} holds a copy that does not match the piece [provider=${r.to}, piece=${r.piece.pieceCid}, got=${held.carCid}/${held.bytes}]`,
          );
        if (placed.existed)
          return { ...placed, evidence: `${r.to} already held the piece; its bytes read back as its CAR CID` };
        return { ...placed, evidence: `copied from ${id}; the new copy reads back as its CAR CID` };
      }
      return { ...placed, evidence: `copied from ${id}, whose bytes matched its CAR CID` };
    }
    const why = problems.join('; ') || 'no sources';
    throw new NoHealthyReplicaError(`no healthy source for piece ${r.piece.pieceCid}: ${why}`);
  } finally {
    await fsp.rm(file, { force: true });
  }
}
