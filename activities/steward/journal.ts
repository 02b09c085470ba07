/**
 * The placement journal of an archive run: one JSON line per stored copy, appended by the put
 * activity in the run's staging directory on its host. The replica table is built from it at the
 * end of the run (so the workflow never holds every placement), and an archive that cannot
 * complete removes the copies it lists as created. Idempotent by piece and provider: a retried put
 * appends again, and the last line wins (a copy counts as created if any line says so).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { PieceRef, Placement, StewardReplica } from '../../shared/types.js';

export const JOURNAL_FILE = 'placements.ndjson';

export interface JournalLine {
  shard: number;
  piece: PieceRef;
  placement: Placement;
}

export function journalPath(stageDir: string): string {
  return path.join(stageDir, JOURNAL_FILE);
}

/** Append one placement (a single small write with O_APPEND: concurrent puts do not interleave). */
export async function journalPlacement(stageDir: string, line: JournalLine): Promise<void> {
  await fsp.mkdir(stageDir, { recursive: true });
  await fsp.appendFile(journalPath(stageDir), `${JSON.stringify(line)}\n`);
}

/** The journal's placements, one per piece and provider, with whether this run created the copy. */
export async function readJournal(stageDir: string): Promise<(JournalLine & { created: boolean })[]> {
  const file = journalPath(stageDir);
  if (!fs.existsSync(file)) return [];
  const byKey = new Map<string, JournalLine & { created: boolean }>();
  for (const text of (await fsp.readFile(file, 'utf8')).split('\n')) {
    if (!text.trim()) continue;
    let line: JournalLine;
    try {
      line = JSON.parse(text) as JournalLine;
    } catch {
      continue; // a line torn by a crash mid-write: its put is retried and journaled again
    }
    const key = `${line.piece.pieceCid} ${line.placement.providerId}`;
    const created = !line.placement.existed || !!byKey.get(key)?.created;
    byKey.set(key, { ...line, created });
  }
  return [...byKey.values()];
}

/** A journaled placement as the steward's replica (healthy: it was checked as it was stored). */
export function replicaOf(l: JournalLine): StewardReplica {
  const { piece, placement: where } = l;
  return {
    shard: l.shard,
    pieceCid: piece.pieceCid,
    carCid: piece.carCid,
    rootCid: piece.rootCid,
    bytes: piece.bytes,
    providerId: where.providerId,
    state: 'healthy',
    lastCheckedAt: where.storedAt,
    lastEvidence: where.evidence ?? 'stored and checked against its CAR CID',
    ...(where.expiresAt ? { expiresAt: where.expiresAt } : {}),
    ...(where.commitment ? { commitment: where.commitment } : {}),
  };
}

/** The shard index a staged file name stands for (`shard-000012.car` → 12; anything else → −1). */
export function shardOfFile(file: string): number {
  const m = /^shard-(\d+)\.car$/.exec(path.basename(file));
  return m ? Number(m[1]) : -1;
}
