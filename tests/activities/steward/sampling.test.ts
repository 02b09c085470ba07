/**
 * Shard sampling of steward rounds: the dataset-level detection probability against hand-computed
 * values and a seeded Monte-Carlo run of the real sampler; the permutation and its rotating window
 * (every shard within ⌈S/n⌉ rounds); and one page of a round verifying only its sampled shards.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stewardPage, type PageOps } from '../../../activities/steward/round.js';
import { ConfigSchema } from '../../../config/schema.js';
import { NO_POLICY } from '../../../shared/placement.js';
import {
  blockChallenges,
  blockDetection,
  blockDetectionBound,
  coverRounds,
  datasetDetection,
  describeDetection,
  isShardSampled,
  permute,
  roundDetection,
  sampleSize,
} from '../../../shared/sampling.js';
import type { StewardReplica, VerifyResult } from '../../../shared/types.js';

/** mulberry32: a small seeded PRNG, so the Monte-Carlo runs are the same every time. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** k distinct integers of [0, n), uniformly. */
function choose(rand: () => number, n: number, k: number): Set<number> {
  const out = new Set<number>();
  while (out.size < k) out.add(Math.floor(rand() * n));
  return out;
}

const near = (actual: number, expected: number, eps = 1e-12) =>
  assert.ok(Math.abs(actual - expected) <= eps, `${actual} ≠ ${expected}`);

describe('dataset detection probability', () => {
  it('matches hand-computed hypergeometric values', () => {
    // One bad shard of 10, 3 sampled, always caught when sampled: 3/10.
    near(datasetDetection({ shards: 10, sampled: 3, damaged: 1, q: 1 }), 0.3);
    // Two bad of 10, 3 sampled: 1 − C(8,3)/C(10,3) = 1 − 56/120.
    near(datasetDetection({ shards: 10, sampled: 3, damaged: 2, q: 1 }), 64 / 120);
    // The same with q = 1/2: P(j=0,1,2) = 56/120, 56/120, 8/120; miss = (56 + 28 + 2)/120.
    near(datasetDetection({ shards: 10, sampled: 3, damaged: 2, q: 0.5 }), 34 / 120);
    // Every shard sampled: 1 − (1 − q)^k.
    near(datasetDetection({ shards: 7, sampled: 7, damaged: 3, q: 0.9 }), 1 - 0.001);
    // More bad shards than unsampled ones: at least one is in the sample.
    near(datasetDetection({ shards: 10, sampled: 8, damaged: 3, q: 1 }), 1);
    // One shard of 100,000, 1,000 sampled, q = 0.99: 0.0099.
    near(datasetDetection({ shards: 100_000, sampled: 1000, damaged: 1, q: 0.99 }), 0.0099, 1e-9);
    near(datasetDetection({ shards: 10, sampled: 0, damaged: 2, q: 1 }), 0);
    near(datasetDetection({ shards: 10, sampled: 3, damaged: 0, q: 1 }), 0);
  });

  it('grows with the sample and with the damage', () => {
    let last = 0;
    for (let n = 1; n <= 50; n++) {
      const p = datasetDetection({ shards: 50, sampled: n, damaged: 2, q: 0.7 });
      assert.ok(p > last, `n=${n}: ${p} ≤ ${last}`);
      last = p;
    }
    last = 0;
    for (let k = 1; k <= 50; k++) {
      const p = datasetDetection({ shards: 50, sampled: 5, damaged: k, q: 0.7 });
      assert.ok(p > last || p === 1, `k=${k}: ${p} ≤ ${last}`);
      last = p;
    }
  });

  it('block checks: exact hypergeometric, above the 1 − (1 − f)^b bound the steward reports', () => {
    near(blockDetection({ blocks: 100, checked: 10, bad: 1 }), 0.1);
    near(blockDetection({ blocks: 10, checked: 3, bad: 2 }), 64 / 120);
    near(blockDetection({ blocks: 10, checked: 9, bad: 2 }), 1);
    near(blockDetection({ blocks: 10, checked: 20, bad: 1 }), 1); // every block read
    assert.equal(blockChallenges(0.99, 0.01), 459); // ⌈ln 0.01 / ln 0.99⌉
    const bound = blockDetectionBound(0.99, 0.01);
    assert.ok(bound >= 0.99 && bound < 0.9901, `${bound}`);
    for (const B of [459, 460, 1000, 1024, 4096, 100_000]) {
      const exact = blockDetection({ blocks: B, checked: 459, bad: Math.ceil(0.01 * B) });
      assert.ok(exact >= bound, `B=${B}: ${exact} < ${bound}`);
    }
  });

  it('a seeded Monte-Carlo run of the real sampler agrees with the formula', () => {
    const rand = prng(11);
    const cases = [
      { shards: 40, spec: 7, damaged: 3, q: 0.6 },
      { shards: 23, spec: 0.25, damaged: 1, q: 1 },
      { shards: 64, spec: 10, damaged: 6, q: 0.3 },
    ];
    const trials = 20_000;
    for (const c of cases) {
      const n = sampleSize(c.spec, c.shards);
      const expected = datasetDetection({ shards: c.shards, sampled: n, damaged: c.damaged, q: c.q });
      let hits = 0;
      for (let t = 0; t < trials; t++) {
        // A steward (its key) and a round, neither known to the damage.
        const plan = { seed: `mc/${t}/${Math.floor(rand() * 1e9)}`, round: Math.floor(rand() * 1000), spec: c.spec };
        const bad = choose(rand, c.shards, c.damaged);
        let caught = false;
        for (const shard of bad) if (isShardSampled(shard, c.shards, plan) && rand() < c.q) caught = true;
        if (caught) hits++;
      }
      const p = hits / trials;
      const sigma = Math.sqrt((expected * (1 - expected)) / trials);
      assert.ok(Math.abs(p - expected) <= 4 * sigma + 1e-9, `${JSON.stringify(c)}: ${p} vs ${expected} (σ ${sigma})`);
    }
  });

  it('a seeded Monte-Carlo run of block checks agrees with blockDetection', () => {
    const rand = prng(7);
    const B = 50;
    const b = 8;
    const d = 5;
    const trials = 20_000;
    let hits = 0;
    for (let t = 0; t < trials; t++) {
      const bad = choose(rand, B, d);
      if ([...choose(rand, B, b)].some((x) => bad.has(x))) hits++;
    }
    const expected = blockDetection({ blocks: B, checked: b, bad: d });
    const sigma = Math.sqrt((expected * (1 - expected)) / trials);
    assert.ok(Math.abs(hits / trials - expected) <= 4 * sigma, `${hits / trials} vs ${expected}`);
  });

  it('reports one damaged shard of S and the lossFraction spread, with the cover', () => {
    const d = roundDetection({
      shards: 50,
      sampled: 10,
      checkedShards: 10,
      round: 3,
      detectionProbability: 0.99,
      lossFraction: 0.01,
    });
    assert.equal(d.damagedShards, 1);
    near(d.damageFraction, 0.0002);
    near(d.probability, (10 / 50) * blockDetectionBound(0.99, 0.01));
    assert.equal(d.spreadShards, 1); // ⌈1% of 50⌉
    assert.equal(d.coverRounds, 5);
    const line = describeDetection(d);
    assert.match(line, /^this round: P\(detect\) ≥ 0\.1980 for damage to 0\.02% of the dataset/);
    assert.match(line, /10\/50 shards sampled, every shard within 5 rounds$/);
    const all = roundDetection({
      shards: 400,
      sampled: 400,
      checkedShards: 400,
      round: 0,
      detectionProbability: 0.99,
      lossFraction: 0.01,
    });
    assert.equal(all.spreadShards, 4);
    assert.ok(all.probability >= 0.99 && all.spreadProbability > all.probability);
    assert.doesNotMatch(line, /so damaged/); // one shard is the spread of 1% of 50
    assert.match(
      describeDetection(all),
      /; ≥ 0\.9999 if 4 shards are so damaged; 400\/400 shards sampled, every shard within 1 round$/,
    );
  });
});

describe('shard sample', () => {
  it('sizes: all, a fraction (at least one shard) or a count (at most every shard)', () => {
    assert.equal(sampleSize('all', 37), 37);
    assert.equal(sampleSize(undefined, 37), 37);
    assert.equal(sampleSize(0.1, 37), 4);
    assert.equal(sampleSize(0.001, 37), 1);
    assert.equal(sampleSize(5, 37), 5);
    assert.equal(sampleSize(500, 37), 37);
    assert.equal(sampleSize(5, 0), 0);
    assert.equal(coverRounds(37, 5), 8);
  });

  it('the config takes all, a fraction or a whole number, and defaults to every shard', () => {
    assert.equal(ConfigSchema.parse({}).steward.sampleShards, 'all');
    assert.equal(ConfigSchema.parse({ steward: { sampleShards: 0.05 } }).steward.sampleShards, 0.05);
    assert.equal(ConfigSchema.parse({ steward: { sampleShards: 12 } }).steward.sampleShards, 12);
    for (const bad of [0, -1, 1.5, 'some'])
      assert.equal(ConfigSchema.safeParse({ steward: { sampleShards: bad } }).success, false, `${bad}`);
  });

  it('permute is a bijection of [0, n) that depends on its key', () => {
    for (const n of [1, 2, 3, 5, 16, 17, 100, 1000, 4099]) {
      const seen = new Set<number>();
      for (let x = 0; x < n; x++) seen.add(permute(x, n, 'k'));
      assert.equal(seen.size, n, `n=${n}`);
      assert.ok([...seen].every((y) => y >= 0 && y < n));
    }
    const a = Array.from({ length: 100 }, (_, x) => permute(x, 100, 'one'));
    const b = Array.from({ length: 100 }, (_, x) => permute(x, 100, 'two'));
    assert.notDeepEqual(a, b);
    assert.deepEqual(
      a,
      Array.from({ length: 100 }, (_, x) => permute(x, 100, 'one')),
    );
    assert.throws(() => permute(100, 100, 'one'), RangeError);
  });

  it('each round samples exactly n shards, and any ⌈S/n⌉ consecutive rounds cover every shard', () => {
    for (const [S, spec] of [
      [23, 5],
      [40, 0.1],
      [7, 7],
      [1000, 33],
    ] as const) {
      const n = sampleSize(spec, S);
      const W = coverRounds(S, n);
      const sampled = (round: number) =>
        Array.from({ length: S }, (_, i) => i).filter((i) => isShardSampled(i, S, { seed: 'wf/key', round, spec }));
      for (const start of [0, 3, 17]) {
        const union = new Set<number>();
        for (let r = start; r < start + W; r++) {
          const s = sampled(r);
          assert.equal(s.length, n, `S=${S} round ${r}`);
          s.forEach((i) => union.add(i));
        }
        assert.equal(union.size, S, `S=${S}: rounds ${start}..${start + W - 1} cover ${union.size}`);
      }
      if (n < S) assert.notDeepEqual(sampled(0), sampled(1));
    }
  });
});

describe('a page of a sampled round', () => {
  const providers = [
    { id: 'a', kind: 'local' },
    { id: 'b', kind: 'local' },
  ];
  const settings = {
    renewWindowMs: 45 * 86_400_000,
    unreachableGraceMs: 86_400_000,
    detectionProbability: 0.99,
    lossFraction: 0.01,
  };
  const replica = (shard: number, providerId: string, over: Partial<StewardReplica> = {}): StewardReplica => ({
    shard,
    pieceCid: `piece-${shard}`,
    carCid: `car-${shard}`,
    rootCid: `root-${shard}`,
    bytes: 1000,
    providerId,
    state: 'healthy',
    lastCheckedAt: '2026-01-01T00:00:00.000Z',
    ...over,
  });

  it('verifies the sampled shards, the manifest and replicas not healthy; renews the others all the same', async () => {
    const now = Date.parse('2026-06-01T00:00:00Z');
    const page: StewardReplica[] = [replica(-1, 'a'), replica(-1, 'b')];
    for (let shard = 0; shard < 10; shard++) page.push(replica(shard, 'a'), replica(shard, 'b'));
    // Shard 7's copy on b was unreachable at its last check; shard 8's on a expires soon.
    page[2 + 7 * 2 + 1] = replica(7, 'b', {
      state: 'unreachable',
      unreachableSince: new Date(now - 1000).toISOString(),
    });
    page[2 + 8 * 2] = replica(8, 'a', { expiresAt: new Date(now + 86_400_000).toISOString() });
    const verified: string[] = [];
    const renewed: string[] = [];
    const ops: PageOps = {
      verify: async (r): Promise<VerifyResult> => {
        verified.push(`${r.shard}/${r.providerId}`);
        return {
          pieceCid: r.pieceCid,
          providerId: r.providerId,
          state: 'healthy',
          challenges: 3,
          failed: 0,
          detectionProbability: 1,
          evidence: 'ok',
        };
      },
      renew: async (r) => {
        renewed.push(`${r.pieceCid}/${r.providerId}`);
        return { renewed: true, expiresAt: new Date(now + 400 * 86_400_000).toISOString() };
      },
      copy: async () => assert.fail('nothing to copy'),
      retire: async () => assert.fail('nothing to retire'),
    };
    const inSample = new Set([2, 5]);
    const out = await stewardPage(ops, page, {
      now,
      copies: 2,
      providers,
      policy: NO_POLICY,
      settings,
      down: [],
      sampled: (shard) => inSample.has(shard),
    });
    assert.deepEqual(verified.sort(), ['-1/a', '-1/b', '2/a', '2/b', '5/a', '5/b', '7/b'].sort());
    assert.equal(out.checked, 7);
    assert.equal(out.skipped, page.length - 7);
    assert.equal(out.checkedShards, 3);
    assert.deepEqual(renewed, ['piece-8/a']);
    const at = new Date(now).toISOString();
    for (const r of out.replicas) {
      const checked = verified.includes(`${r.shard}/${r.providerId}`);
      assert.equal(r.lastCheckedAt === at, checked, `${r.shard}/${r.providerId}`);
    }
    assert.equal(out.replicas.length, page.length);
  });
});
