/** The replica table (paged, content-addressed, checked on read), the placement journal, and one page of a steward round. */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CID } from 'multiformats/cid';
import { readJournal, journalPlacement, replicaOf, shardOfFile } from '../../../activities/steward/journal.js';
import { stewardPage, type PageOps } from '../../../activities/steward/round.js';
import {
  encodeBlock,
  pageEntry,
  paginate,
  PAGE_TYPE,
  summarize,
  TableStore,
  TABLE_TYPE,
} from '../../../activities/steward/table.js';
import { LocalProvider } from '../../../activities/providers/local.js';
import { cidOf, sha256 } from '../../../activities/pack/cids.js';
import { NO_POLICY } from '../../../shared/placement.js';
import type { StewardReplica, VerifyResult } from '../../../shared/types.js';
import { tmpDir } from '../../helpers/env.js';

const MiB = 1024 * 1024;
/** CIDs of the lengths real ones have (piece v2, CAR, dag-pb root). */
const fakeCid = (kind: string, n: number) =>
  `baf${kind}${crypto
    .createHash('sha256')
    .update(`${kind}/${n}`)
    .digest('base64url')
    .toLowerCase()
    .replace(/[^a-z2-7]/g, 'a')}${'q'.repeat(20)}`;

function replica(shard: number, providerId: string, over: Partial<StewardReplica> = {}): StewardReplica {
  return {
    shard,
    pieceCid: fakeCid('kzcibe', shard),
    carCid: fakeCid('gbaiera', shard),
    rootCid: fakeCid('kreic', shard),
    bytes: 1_065_353_216,
    providerId,
    state: 'healthy',
    lastCheckedAt: '2026-12-01T21:05:18.577Z',
    lastEvidence: '459 of 1024 blocks verified',
    detectionProbability: 0.990067,
    expiresAt: '2028-06-01T21:05:18.577Z',
    ...over,
  };
}

describe('replica table', () => {
  it('keeps every block under 1 MiB at 100,000 shards × 3 copies (256 replicas a page)', () => {
    const providers = ['filecoin-calibration-a', 'filecoin-calibration-b', 's3-eu-west-archive'];
    const all: StewardReplica[] = [];
    for (let shard = -1; shard < 100_000; shard++) for (const p of providers) all.push(replica(shard, p));
    const pages = paginate(all, 256);
    assert.equal(
      pages.reduce((n, p) => n + p.length, 0),
      all.length,
    );
    assert.ok(pages.every((p) => p.length <= 256));
    const largest = pages.reduce((a, b) => (b.length > a.length ? b : a));
    const page = encodeBlock({ type: PAGE_TYPE, replicas: largest });
    // The root lists every page; its entries' CIDs are real CIDs (of stand-in bytes: the size is what counts).
    const entries = pages.map((p, i) => pageEntry(cidOf(0x0129, sha256(Buffer.from(`page ${i}`))), p));
    const root = encodeBlock({
      type: TABLE_TYPE,
      version: 1,
      datasetId: 'ds',
      manifestCid: fakeCid('guqee', 0),
      pageReplicas: 256,
      pages: entries,
    });
    assert.ok(page.bytes.length <= 1 * MiB, `page: ${page.bytes.length} bytes`);
    assert.ok(root.bytes.length <= 1 * MiB, `root: ${root.bytes.length} bytes`);
    const sum = summarize(root.cid.toString(), { pages: entries });
    assert.equal(sum.replicas, 300_003);
    assert.equal(sum.pieces, 100_001);
    assert.equal(sum.minHealthy, 3);
  });

  it('pages hold whole pieces: all copies of a piece in one page', () => {
    const all = [0, 1, 2, 3, 4].flatMap((s) => ['a', 'b', 'c'].map((p) => replica(s, p)));
    const pages = paginate(all.reverse(), 4);
    for (const p of pages) assert.ok(p.length <= 4);
    const pageOf = new Map<string, number>();
    pages.forEach((p, i) =>
      p.forEach((r) => {
        assert.equal(pageOf.get(r.pieceCid) ?? i, i, `${r.pieceCid} split across pages`);
        pageOf.set(r.pieceCid, i);
      }),
    );
    assert.deepEqual(
      pages.flat().map((r) => r.shard),
      [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4],
    );
  });

  it('counts health per page: a piece with no healthy copy is lost, fewer than the copies is the minimum', () => {
    const reps = [
      replica(0, 'a'),
      replica(0, 'b', { state: 'corrupt' }),
      replica(1, 'a', { state: 'missing' }),
      replica(1, 'b', { state: 'unreachable' }),
    ];
    const e = pageEntry(CID.parse('bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'), reps);
    assert.deepEqual(
      { pieces: e.pieces, replicas: e.replicas, minHealthy: e.minHealthy, lostPieces: e.lostPieces },
      { pieces: 2, replicas: 4, minHealthy: 0, lostPieces: 1 },
    );
    assert.deepEqual(e.byState, { healthy: 1, corrupt: 1, missing: 1, unreachable: 1 });
  });

  it('stores blocks on providers, reads them back from any worker, and rejects a copy that does not hash to its CID', async () => {
    const dir = tmpDir('pv-table-');
    const providers = [new LocalProvider('a', path.join(dir, 'a')), new LocalProvider('b', path.join(dir, 'b'))];
    const writer = new TableStore(providers, path.join(dir, 'cache-writer'));
    const reps = [0, 1, 2, 3, 4, 5].flatMap((s) => ['a', 'b'].map((p) => replica(s, p)));
    const sum = await writer.build({ datasetId: 'ds', manifestCid: 'm', pageReplicas: 4 }, reps);
    assert.equal(sum.pages, 3);
    assert.equal(sum.replicas, 12);
    // Another worker (no cache) reads the same table from the providers.
    const reader = new TableStore(providers, path.join(dir, 'cache-reader'));
    const back: StewardReplica[] = [];
    for await (const p of reader.replicas(sum.tableCid)) back.push(...p);
    assert.deepEqual(back, reps);
    // Every stored copy of the first page edited: reading it fails with an integrity error.
    const root = await reader.root(sum.tableCid!);
    const pageCid = root.pages[0]!.cid.toString();
    for (const p of ['a', 'b']) {
      const pieceCid = fs.readFileSync(path.join(dir, p, 'roots', pageCid), 'utf8');
      const file = path.join(dir, p, 'pieces', `${pieceCid}.car`);
      fs.writeFileSync(file, Buffer.from(fs.readFileSync(file, 'latin1').replace('healthy', 'HEALTHY'), 'latin1'));
    }
    const fresh = new TableStore(providers, path.join(dir, 'cache-third'));
    await assert.rejects(fresh.page(pageCid), (e: Error) => e.name === 'IntegrityError');
    // An edited cache entry is not trusted either: the block is fetched again (and found edited).
    fs.writeFileSync(path.join(dir, 'cache-reader', pageCid), Buffer.from('{}'));
    await assert.rejects(reader.page(pageCid), (e: Error) => e.name === 'IntegrityError');
  });
});

describe('placement journal', () => {
  it('keeps one placement per piece and provider, created if any attempt created it', async () => {
    const dir = tmpDir('pv-journal-');
    const piece = { pieceCid: 'p1', carCid: 'c1', rootCid: 'r1', bytes: 10 };
    const at = (providerId: string, existed: boolean) => ({
      providerId,
      pieceCid: 'p1',
      existed,
      storedAt: '2026-01-01T00:00:00.000Z',
    });
    await journalPlacement(dir, { shard: 3, piece, placement: at('a', false) });
    await journalPlacement(dir, { shard: 3, piece, placement: at('a', true) }); // a retried put
    await journalPlacement(dir, { shard: 3, piece, placement: at('b', true) }); // already there before this run
    fs.appendFileSync(path.join(dir, 'placements.ndjson'), '{"shard": 4, "pie'); // torn by a crash
    const lines = await readJournal(dir);
    assert.deepEqual(
      lines.map((l) => [l.placement.providerId, l.created]),
      [
        ['a', true],
        ['b', false],
      ],
    );
    assert.equal(replicaOf(lines[0]!).shard, 3);
    assert.equal(replicaOf(lines[0]!).state, 'healthy');
    assert.equal(shardOfFile('shard-000012.car'), 12);
    assert.equal(shardOfFile('manifest.car'), -1);
  });
});

describe('a page of a steward round', () => {
  const settings = {
    renewWindowMs: 86_400_000,
    unreachableGraceMs: 86_400_000,
    detectionProbability: 0.99,
    lossFraction: 0.01,
  };
  const providers = ['a', 'b', 'c'].map((id) => ({ id, kind: 'local' }));
  const fakeOps = (states: Record<string, VerifyResult['state']>) => {
    const calls: string[] = [];
    const ops: PageOps = {
      verify: async (r) => ({
        pieceCid: r.pieceCid,
        providerId: r.providerId,
        state: states[`${r.shard}/${r.providerId}`] ?? 'healthy',
        challenges: 3,
        failed: 0,
        detectionProbability: 0.99,
        evidence: 'x',
      }),
      renew: async () => ({ renewed: false }),
      copy: async (r) => {
        calls.push(`copy ${r.piece.pieceCid.slice(-3)} ${r.from.join('/')}→${r.to}`);
        return { providerId: r.to, pieceCid: r.piece.pieceCid, existed: false, storedAt: 'now' };
      },
      retire: async (r) => {
        calls.push(`retire ${r.providerId}`);
        return { deleted: true };
      },
    };
    return { ops, calls };
  };

  it('replaces a corrupt copy on a provider without one and retires the corrupt one', async () => {
    const page = [
      replica(0, 'a', { expiresAt: undefined }),
      replica(0, 'b', { expiresAt: undefined }),
      replica(1, 'a', { expiresAt: undefined }),
      replica(1, 'b', { expiresAt: undefined }),
    ];
    const { ops, calls } = fakeOps({ '0/b': 'corrupt' });
    const out = await stewardPage(ops, page, {
      now: Date.parse('2026-12-01T00:00:00Z'),
      copies: 2,
      providers,
      policy: NO_POLICY,
      settings,
      down: [],
    });
    assert.deepEqual(
      out.replicas
        .filter((r) => r.shard === 0)
        .map((r) => [r.providerId, r.state])
        .sort(),
      [
        ['a', 'healthy'],
        ['c', 'healthy'],
      ],
    );
    assert.equal(out.replicas.length, 4);
    assert.deepEqual(out.counters, { repairs: 1, renewals: 0, retired: 1 });
    assert.equal(out.checked, 4);
    assert.equal(out.healthy, 3);
    assert.ok(
      calls.some((c) => c.startsWith('copy') && c.endsWith('a→c')),
      calls.join('; '),
    );
    assert.ok(calls.includes('retire b'));
    assert.deepEqual(
      out.events.map((e) => e.kind),
      ['verify', 'repair', 'retire'],
    );
  });

  it('keeps an unreachable copy within the grace period and copies nothing onto a provider known to be down', async () => {
    const page = [replica(0, 'a', { expiresAt: undefined }), replica(0, 'b', { expiresAt: undefined })];
    const { ops, calls } = fakeOps({ '0/b': 'unreachable' });
    const out = await stewardPage(ops, page, {
      now: Date.now(),
      copies: 2,
      providers,
      policy: NO_POLICY,
      settings,
      down: ['c'],
    });
    assert.equal(out.replicas.length, 2);
    assert.ok(out.replicas.find((r) => r.providerId === 'b')!.unreachableSince);
    assert.deepEqual(calls, []);
    assert.deepEqual([...out.down].sort(), ['b', 'c']);
  });
});
