/**
 * The audit log's stored copies, stewarded like shards: every record is expected at each of the
 * dataset's providers; a check reads each copy (found by the record's CID), hashes what it read,
 * and re-stores a missing or corrupt copy from an intact one. A record with no intact copy
 * anywhere cannot be re-stored: the chain is broken there.
 *
 * Bounded per round whatever the chain's length: the newest `newest` records (walking back from
 * the head), then a window of `window` older ones from a cursor that moves back each round and
 * wraps to just below the newest when it reaches record 1, plus the few records found broken
 * before. Every record is read at least once every ⌈(records − newest) / window⌉ + 1 rounds.
 */
import { Readable } from 'node:stream';
import * as dagJson from '@ipld/dag-json';
import { CarBlockIterator } from '@ipld/car/iterator';
import { CID } from 'multiformats/cid';
import { ProviderUnavailableError } from '../../shared/errors.js';
import type { AuditCheckRequest, AuditCheckResult, AuditHealth, TimedAuditEvent } from '../../shared/types.js';
import { recordCar, type AuditRecord } from '../audit/audit.js';
import { blockMatches } from '../pack/cids.js';
import type { StorageProvider } from '../providers/provider.js';

/** Problem lines, broken records and repair events kept in a result (the rest are counted). */
const MAX_LINES = 8;
const MAX_EVENTS = 20;
/** An audit record's CAR is a few hundred bytes; a copy larger than this is not one. */
const MAX_RECORD_CAR = 1 << 20;

type Copy = { provider: StorageProvider; problem: 'missing' | 'corrupt'; detail: string; pieceCid?: string };

interface RecordCheck {
  good?: { bytes: Uint8Array; record: AuditRecord; at: string };
  bad: Copy[];
}

const unavailable = (err: unknown) =>
  ProviderUnavailableError.is(err) || (err as Error | undefined)?.name === 'ProviderUnavailableError';

async function readCopy(p: StorageProvider, cid: string, signal?: AbortSignal): Promise<Copy | Uint8Array | 'down'> {
  let ref;
  try {
    ref = await p.locate(cid, { signal });
  } catch (err) {
    if (signal?.aborted) throw err;
    return 'down';
  }
  if (!ref) return { provider: p, problem: 'missing', detail: 'not found' };
  if (ref.bytes > MAX_RECORD_CAR)
    return { provider: p, problem: 'corrupt', detail: `${ref.bytes} bytes`, pieceCid: ref.pieceCid };
  const parts: Buffer[] = [];
  try {
    for await (const c of p.readRange(ref, { signal })) parts.push(c as Buffer);
  } catch (err) {
    if (signal?.aborted) throw err;
    if (unavailable(err)) return 'down';
    return { provider: p, problem: 'missing', detail: (err as Error).message, pieceCid: ref.pieceCid };
  }
  const want = CID.parse(cid);
  try {
    const it = await CarBlockIterator.fromIterable(Readable.from([Buffer.concat(parts)]));
    for await (const b of it) if (b.cid.equals(want) && blockMatches(want, b.bytes)) return b.bytes;
  } catch {
    /* not a readable CAR: corrupt */
  }
  return { provider: p, problem: 'corrupt', detail: `does not hash to ${cid}`, pieceCid: ref.pieceCid };
}

async function checkRecord(providers: StorageProvider[], cid: string, signal?: AbortSignal): Promise<RecordCheck> {
  const out: RecordCheck = { bad: [] };
  for (const p of providers) {
    const c = await readCopy(p, cid, signal);
    if (c === 'down') continue; // unreachable now: checked again next round, like a shard in its grace period
    if (c instanceof Uint8Array) {
      out.good ??= { bytes: c, record: dagJson.decode(c) as AuditRecord, at: p.id };
      continue;
    }
    out.bad.push(c);
  }
  return out;
}

/** Check the audit log's copies (bounded: see above) and re-store what is missing or corrupt. */
export async function checkAuditChain(
  providers: StorageProvider[],
  r: AuditCheckRequest,
  o: { signal?: AbortSignal; beat?: () => void } = {},
): Promise<AuditCheckResult> {
  const time = new Date(r.now).toISOString();
  const res: AuditCheckResult = {
    checked: 0,
    repaired: 0,
    unrepaired: 0,
    broken: [],
    problems: [],
    problemCount: 0,
    cursor: null,
    events: [],
  };
  let eventsLeft = 0;
  const problem = (line: string) => {
    res.problemCount++;
    if (res.problems.length < MAX_LINES) res.problems.push(line);
  };
  const seen = new Set<string>();
  /** Check one record's copies and repair them; its `prev` (undefined: no intact copy, the walk stops). */
  const visit = async (cid: string, seq?: number): Promise<{ prev: string | null; seq: number } | undefined> => {
    if (seen.has(cid)) return undefined;
    seen.add(cid);
    res.checked++;
    const c = await checkRecord(providers, cid, o.signal);
    o.beat?.();
    const name = `record ${c.good?.record.seq ?? seq ?? '?'} (${cid})`;
    if (!c.good) {
      if (c.bad.length > 0) {
        if (res.broken.length < MAX_LINES) res.broken.push(cid);
        problem(`${name}: no intact copy (${c.bad.map((b) => `${b.problem} at ${b.provider.id}`).join(', ')})`);
      }
      return undefined;
    }
    const good = c.good;
    const { car, piece } = recordCar(CID.parse(cid), good.bytes);
    for (const b of c.bad) {
      try {
        // A corrupt copy goes first: an upload-if-absent provider would otherwise keep it.
        if (b.problem === 'corrupt')
          await b.provider.delete({ pieceCid: b.pieceCid ?? piece.pieceCid }, { signal: o.signal });
        await b.provider.put(piece, () => Readable.from([car]), { signal: o.signal });
        res.repaired++;
        const ev: TimedAuditEvent = {
          kind: 'repair',
          providerId: b.provider.id,
          result: `audit record ${good.record.seq} re-stored (${b.problem}) from ${good.at}`,
          evidence: `${cid}: ${b.detail}`,
          time,
        };
        if (res.events.length < MAX_EVENTS) res.events.push(ev);
        else eventsLeft++;
      } catch (err) {
        if (o.signal?.aborted) throw err;
        if (unavailable(err)) continue; // down now (say, an unmounted volume): tried again next round
        res.unrepaired++;
        problem(`${name}: ${b.problem} at ${b.provider.id}, not re-stored: ${(err as Error).message}`);
      }
    }
    return { prev: good.record.prev, seq: good.record.seq };
  };

  // The newest records, every round.
  let cursor: string | null = r.head;
  let seq = r.seq;
  for (let i = 0; i < r.newest && cursor; i++) {
    const rec = await visit(cursor, seq);
    if (!rec) {
      cursor = null;
      break;
    }
    cursor = rec.prev;
    seq = rec.seq - 1;
  }
  // A window of older ones, moving back round by round.
  let w: string | null = r.cursor ?? cursor;
  for (let i = 0; i < r.window && w; i++) {
    const rec = await visit(w);
    w = rec ? rec.prev : null;
  }
  res.cursor = w;
  // Records found broken before: still broken unless a provider holds an intact copy again.
  for (const cid of r.broken) await visit(cid);
  if (eventsLeft > 0)
    res.events.push({ kind: 'repair', result: `${eventsLeft} more audit record copies re-stored`, time });
  return res;
}

/** One line for `provenant status`. */
export function describeAuditHealth(a: AuditHealth): string {
  const head = `${a.state === 'broken' ? 'BROKEN' : a.state}: ${a.records} records, ${a.checked} checked at ${a.lastCheckedAt}`;
  const fixed = a.repairedLastRound
    ? `; ${a.repairedLastRound} missing or corrupt copies re-stored this round (${a.repairs} ever)`
    : a.repairs
      ? `; ${a.repairs} copies re-stored so far`
      : '';
  const wrong = a.problemCount
    ? `; ${a.problemCount} problems: ${a.problems.join('; ')}${a.problemCount > a.problems.length ? '; …' : ''}`
    : '';
  return head + fixed + wrong;
}
