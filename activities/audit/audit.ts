/**
 * The audit log: an append-only, hash-chained list of records. Each record is a dag-json block
 * that links the previous record by CID, stored as its own small CAR piece on providers (found
 * again by its CID). Editing a record changes its hash and breaks the link to it; dropping one
 * leaves a link to nothing: both are reported when the chain is read back.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as dagJson from '@ipld/dag-json';
import { CarBlockIterator } from '@ipld/car/iterator';
import { CID } from 'multiformats/cid';
import { blockMatches, cidOf, sha256 } from '../pack/cids.js';
import { pieceOfCar, smallCar } from '../providers/kit/car.js';
import type { AuditEvent } from '../../shared/types.js';
import type { SigningKey } from '../evidence/keys.js';
import { signAuditRecord, type AuditSignature } from '../evidence/sign.js';
import type { PieceRef, StorageProvider } from '../providers/provider.js';

export type { AuditEvent };

/** A record; one written with a signing key configured also names its signer and holds its signature. */
export interface AuditRecord extends AuditEvent, AuditSignature {
  type: 'provenant/audit';
  datasetId: string;
  seq: number;
  time: string;
  prev: string | null;
}

export function encodeRecord(rec: AuditRecord): { cid: CID; bytes: Uint8Array } {
  const bytes = dagJson.encode(rec);
  return { cid: cidOf(dagJson.code, sha256(bytes)), bytes };
}

/** A one-block CAR holding the record; root = the record's CID. */
export function recordCar(cid: CID, bytes: Uint8Array): { car: Buffer; piece: PieceRef } {
  const car = smallCar(cid, [{ cid, bytes }]);
  return { car, piece: pieceOfCar(car, cid.toString()) };
}

/**
 * Append events after `prev`; store each record on every given provider that accepts it. With
 * `o.key`, each record is signed as it is written (see evidence/sign.ts), so every head is signed.
 */
export async function appendRecords(
  datasetId: string,
  prev: { cid: string | null; seq: number },
  events: (AuditEvent & { time: string })[],
  providers: StorageProvider[],
  o: { key?: SigningKey } = {},
): Promise<{ head: string; seq: number; stored: Record<string, number> }> {
  let head = prev.cid;
  let seq = prev.seq;
  const stored: Record<string, number> = {};
  for (const e of events) {
    seq++;
    const plain: AuditRecord = { type: 'provenant/audit', datasetId, seq, prev: head, ...e };
    const rec: AuditRecord = o.key ? signAuditRecord(plain, o.key) : plain;
    const { cid, bytes } = encodeRecord(rec);
    const { car, piece } = recordCar(cid, bytes);
    let ok = 0;
    const errors: string[] = [];
    for (const p of providers) {
      try {
        await p.put(piece, () => Readable.from([car]));
        stored[p.id] = (stored[p.id] ?? 0) + 1;
        ok++;
      } catch (err) {
        errors.push(`${p.id}: ${(err as Error).message}`);
      }
    }
    if (ok === 0) throw new Error(`audit record ${seq} could not be stored anywhere: ${errors.join('; ')}`);
    head = cid.toString();
  }
  return { head: head!, seq, stored };
}

export interface AuditProblem {
  seq?: number;
  cid: string;
  providerId?: string;
  problem: 'tampered' | 'missing' | 'broken-chain';
  detail: string;
}

/** Read the chain back from `head`, checking every stored copy of every record. */
export async function readChain(
  head: string,
  providers: StorageProvider[],
  workDir: string,
): Promise<{ records: (AuditRecord & { cid: string })[]; problems: AuditProblem[] }> {
  const records: (AuditRecord & { cid: string })[] = [];
  const problems: AuditProblem[] = [];
  fs.mkdirSync(workDir, { recursive: true });
  let cursor: string | null = head;
  let expectSeq: number | undefined;
  while (cursor) {
    const cid = CID.parse(cursor);
    let good: AuditRecord | undefined;
    let copies = 0;
    for (const p of providers) {
      const ref = await p.locate(cursor).catch(() => undefined);
      if (!ref) continue;
      copies++;
      const file = path.join(workDir, `${p.id}.car`);
      const parts: Buffer[] = [];
      try {
        for await (const c of p.readRange(ref)) parts.push(c as Buffer);
      } catch (err) {
        problems.push({ cid: cursor, providerId: p.id, problem: 'missing', detail: (err as Error).message });
        continue;
      }
      const car = Buffer.concat(parts);
      fs.writeFileSync(file, car);
      let found: Uint8Array | undefined;
      try {
        const it = await CarBlockIterator.fromIterable(Readable.from([car]));
        for await (const b of it) if (b.cid.toString() === cursor) found = b.bytes;
      } catch {
        /* unreadable CAR: treated as tampered below */
      }
      if (!found || !blockMatches(cid, found)) {
        problems.push({
          cid: cursor,
          providerId: p.id,
          problem: 'tampered',
          detail: `the copy on ${p.id} does not hash to ${cursor}`,
        });
        continue;
      }
      good ??= dagJson.decode(found) as AuditRecord;
    }
    if (!good) {
      problems.push({
        cid: cursor,
        problem: copies ? 'tampered' : 'missing',
        detail: copies ? 'no intact copy of this record' : 'record not found on any provider',
      });
      break;
    }
    if (expectSeq !== undefined && good.seq !== expectSeq) {
      problems.push({
        cid: cursor,
        seq: good.seq,
        problem: 'broken-chain',
        detail: `expected record ${expectSeq}, found ${good.seq}`,
      });
    }
    records.push({ ...good, cid: cursor });
    expectSeq = good.seq - 1;
    cursor = good.prev;
  }
  if (problems.length === 0 && records.length && records[records.length - 1]!.seq !== 1) {
    problems.push({
      cid: records[records.length - 1]!.cid,
      problem: 'broken-chain',
      detail: 'the chain does not start at record 1',
    });
  }
  return { records: records.reverse(), problems };
}
