/**
 * Retrieval spot checks. Each challenge reads one block of a stored CAR by its byte range
 * (recorded at archive time in the manifest's shard index) and checks it against its CID.
 * k challenges per replica come from a detection target: to catch a loss of a fraction f of
 * blocks with probability p, k = ⌈ln(1−p) / ln(1−f)⌉; with k ≥ the block count every block is read.
 */
import crypto from 'node:crypto';
import { CID } from 'multiformats/cid';
import type { Readable } from 'node:stream';
import type { ReplicaState, VerifyResult } from '../../shared/types.js';
import { blockMatches } from '../pack/cids.js';
import { carCidOfStream } from '../providers/kit/verified-stream.js';
import type { StorageProvider } from '../providers/provider.js';

export interface BlockIndex {
  /** [offset of block data, length, CID] per block, in CAR order. */
  blocks: [number, number, string][];
}

export type { ReplicaState, VerifyResult };

export function challengesFor(probability: number, lossFraction: number): number {
  return Math.max(1, Math.ceil(Math.log(1 - probability) / Math.log(1 - lossFraction)));
}

export function achievedProbability(k: number, blocks: number, lossFraction: number): number {
  if (k >= blocks) return 1;
  return 1 - Math.pow(1 - lossFraction, k);
}

/** Deterministic choice of k distinct block numbers from a seed (so a check can be replayed). */
export function pickBlocks(seed: string, n: number, k: number): number[] {
  if (k >= n) return [...Array(n).keys()];
  const chosen = new Set<number>();
  let i = 0;
  while (chosen.size < k) {
    const h = crypto.createHash('sha256').update(`${seed}/${i++}`).digest();
    chosen.add(h.readUInt32BE(0) % n);
  }
  return [...chosen].sort((a, b) => a - b);
}

async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

export async function verifyReplica(
  p: StorageProvider,
  pieceCid: string,
  index: BlockIndex,
  opts: {
    seed: string;
    probability: number;
    lossFraction: number;
    signal?: AbortSignal;
    carCid?: string;
    /** Ask the provider for the chain's record of the piece too (the replica has none recorded yet). */
    commitment?: boolean;
  },
): Promise<VerifyResult> {
  const base = { pieceCid, providerId: p.id };
  let status;
  try {
    status = await p.status({ pieceCid }, { signal: opts.signal, commitment: opts.commitment });
  } catch (err) {
    // Cancelled (the worker shutting down, the activity timed out): nothing was verified.
    if (opts.signal?.aborted) throw err;
    return {
      ...base,
      state: 'unreachable',
      challenges: 0,
      failed: 0,
      detectionProbability: 0,
      evidence: `status failed: ${(err as Error).message}`,
    };
  }
  if (!status.present) {
    const expired = !!status.expiresAt && Date.parse(status.expiresAt) <= Date.now();
    return {
      ...base,
      state: expired ? 'expired' : 'missing',
      challenges: 0,
      failed: 0,
      detectionProbability: 0,
      expiresAt: status.expiresAt,
      evidence: status.detail ?? 'provider reports the piece absent',
    };
  }
  if (index.blocks.length === 0 && opts.carCid) {
    // No block index (the manifest itself, audit records): small pieces, checked whole.
    try {
      const whole = await carCidOfStream(p.readRange({ pieceCid }, { signal: opts.signal }));
      const ok = whole.carCid === opts.carCid;
      return {
        ...base,
        state: ok ? 'healthy' : 'corrupt',
        challenges: 1,
        failed: ok ? 0 : 1,
        detectionProbability: 1,
        expiresAt: status.expiresAt,
        evidence: ok ? 'whole piece matches its CAR CID' : 'whole piece does not match its CAR CID',
        ...(status.commitment ? { commitment: status.commitment } : {}),
      };
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      const e = err as Error;
      return {
        ...base,
        state: e.name === 'PieceNotFoundError' ? 'missing' : 'unreachable',
        challenges: 1,
        failed: 1,
        detectionProbability: 0,
        evidence: e.message,
      };
    }
  }
  const k = challengesFor(opts.probability, opts.lossFraction);
  const picks = pickBlocks(`${opts.seed}/${p.id}/${pieceCid}`, index.blocks.length, k);
  let failed = 0;
  let evidence = '';
  for (const n of picks) {
    const [offset, length, cidText] = index.blocks[n]!;
    let bytes: Buffer;
    try {
      bytes = await readAll(p.readRange({ pieceCid }, { offset, length, signal: opts.signal }));
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      const e = err as Error;
      if (e.name === 'PieceNotFoundError') {
        return { ...base, state: 'missing', challenges: 1, failed: 1, detectionProbability: 0, evidence: e.message };
      }
      // The provider found the bytes wrong itself (an encrypted chunk failing authentication): a failed block.
      if (e.name === 'IntegrityError') {
        failed++;
        if (!evidence) evidence = `block ${n} (${cidText}) at offset ${offset}: ${e.message}`;
        continue;
      }
      return {
        ...base,
        state: 'unreachable',
        challenges: 1,
        failed: 1,
        detectionProbability: 0,
        evidence: `read failed: ${e.message}`,
      };
    }
    if (bytes.length !== length || !blockMatches(CID.parse(cidText), bytes)) {
      failed++;
      if (!evidence)
        evidence = `block ${n} (${cidText}) at offset ${offset}: ${bytes.length === length ? 'hash mismatch' : `got ${bytes.length} of ${length} bytes`}`;
    }
  }
  return {
    ...base,
    state: failed > 0 ? 'corrupt' : 'healthy',
    challenges: picks.length,
    failed,
    detectionProbability: achievedProbability(picks.length, index.blocks.length, opts.lossFraction),
    expiresAt: status.expiresAt,
    evidence: evidence || `${picks.length} of ${index.blocks.length} blocks verified`,
    ...(status.commitment ? { commitment: status.commitment } : {}),
  };
}
