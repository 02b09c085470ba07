/**
 * Shard sampling of steward rounds, and what a round can detect (issue 11).
 *
 * Which shards a round verifies: a keyed pseudo-random permutation of the shard indices, fixed for
 * a steward, and a window of `size` positions on it that moves on by `size` with every completed
 * round (wrapping). Any `coverRounds` consecutive completed rounds therefore verify every shard;
 * a single round's window, under a permutation unknown to whatever damaged the data, is a
 * uniformly random `size`-subset of the shards, which is what the probability below assumes.
 * Membership is computed per shard (no list of the dataset's shards is ever built or sent).
 *
 * The detection probability of one round, for damage to `damaged` of the `shards` shards, each of
 * them missing or corrupt in at least a fraction f of its blocks: a damaged shard is caught when it
 * is in the sample (hypergeometric: `size` drawn from `shards` of which `damaged` are bad) and then
 * one of its spot-checked blocks is bad (probability ≥ q, independently per replica):
 *
 *   P(detect) = 1 − Σ_j  C(damaged, j) · C(shards − damaged, size − j) / C(shards, size) · (1 − q)^j
 *
 * With b of a shard's B blocks checked (distinct, uniform) and d ≥ f·B of them bad,
 * q = 1 − C(B − d, b) / C(B, b) ≥ 1 − (1 − f)^b; the steward picks b = ⌈ln(1 − p)/ln(1 − f)⌉ for its
 * target p (all blocks when B ≤ b), so q ≥ 1 − (1 − f)^b ≥ p for every shard, whatever its size.
 *
 * Pure (no Node built-ins): the workflow reports with it, the activities sample with it.
 */
import type { RoundDetection, ShardSampleSpec, StewardSampleRequest } from './types.js';

/** How many shards of `shards` a round samples: 'all', a fraction (0 < x < 1, at least one) or a count. */
export function sampleSize(spec: ShardSampleSpec | undefined, shards: number): number {
  if (shards <= 0) return 0;
  if (spec === undefined || spec === 'all') return shards;
  if (spec < 1) return Math.min(shards, Math.max(1, Math.ceil(spec * shards)));
  return Math.min(shards, Math.floor(spec));
}

/** Rounds after which every shard has been verified at least once (any that many consecutive rounds). */
export function coverRounds(shards: number, size: number): number {
  return shards <= 0 || size <= 0 ? 0 : Math.ceil(shards / size);
}

/** FNV-1a, 32 bits. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's finaliser: a bijection on 32-bit integers that mixes every bit. */
function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const FEISTEL_ROUNDS = 6;

/**
 * A keyed permutation of [0, n): a balanced Feistel network on the smallest even number of bits
 * covering n, with cycle walking (re-encrypt while the value is ≥ n, on average fewer than 4 times).
 */
export function permute(x: number, n: number, key: string): number {
  if (!Number.isInteger(x) || x < 0 || x >= n) throw new RangeError(`permute: ${x} is not in [0, ${n})`);
  if (n <= 1) return 0;
  let half = 1;
  while (2 ** (2 * half) < n) half++;
  const mask = 2 ** half - 1;
  const k = hashString(key);
  const enc = (v: number): number => {
    let l = Math.floor(v / 2 ** half);
    let r = v & mask;
    for (let i = 0; i < FEISTEL_ROUNDS; i++) {
      const f = mix32(k ^ mix32(r + Math.imul(i + 1, 0x9e3779b9))) & mask;
      [l, r] = [r, (l ^ f) & mask];
    }
    return l * 2 ** half + r;
  };
  let y = enc(x);
  while (y >= n) y = enc(y);
  return y;
}

/** What a round needs to know to sample: a seed and counts, never a list of shards. */
export type ShardSamplePlan = NonNullable<StewardSampleRequest['sample']>;

/** Whether shard `shard` (0 ≤ shard < shards) is in round `plan.round`'s sample. */
export function isShardSampled(shard: number, shards: number, plan: ShardSamplePlan): boolean {
  const size = sampleSize(plan.spec, shards);
  if (size >= shards) return shard >= 0 && shard < shards;
  const start = (plan.round * size) % shards;
  return (permute(shard, shards, plan.seed) - start + shards) % shards < size;
}

/** ln C(n, k), summed over the smaller side (exact enough for the probabilities below). */
function logChoose(n: number, k: number): number {
  if (k < 0 || k > n) return -Infinity;
  const m = Math.min(k, n - k);
  let s = 0;
  for (let i = 0; i < m; i++) s += Math.log(n - i) - Math.log(i + 1);
  return s;
}

/** Blocks spot-checked per replica for a target p against a loss of a fraction f (verify.ts uses the same rule). */
export function blockChallenges(p: number, f: number): number {
  return Math.max(1, Math.ceil(Math.log(1 - p) / Math.log(1 - f)));
}

/** P(a check of `checked` distinct uniform blocks of `blocks` hits one of `bad`): 1 − C(B − d, b) / C(B, b). */
export function blockDetection(o: { blocks: number; checked: number; bad: number }): number {
  const { blocks: B, bad: d } = o;
  const b = Math.min(o.checked, B);
  if (d <= 0 || b <= 0) return 0;
  if (b > B - d) return 1;
  let miss = 1;
  for (let i = 0; i < b; i++) miss *= (B - d - i) / (B - i);
  return 1 - miss;
}

/** The per-shard bound the steward's spot checks guarantee for every shard: 1 − (1 − f)^b, b = blockChallenges(p, f). */
export function blockDetectionBound(p: number, f: number): number {
  return 1 - Math.pow(1 - f, blockChallenges(p, f));
}

/**
 * P(a round detects damage to `damaged` of `shards` shards), `sampled` of them verified (a uniform
 * sample), each damaged shard caught with probability `q` when verified. Exact for that model;
 * with q a lower bound on every shard's block detection, a lower bound.
 */
export function datasetDetection(o: { shards: number; sampled: number; damaged: number; q: number }): number {
  const S = o.shards;
  const n = Math.min(o.sampled, S);
  const k = Math.min(o.damaged, S);
  if (S <= 0 || n <= 0 || k <= 0 || o.q <= 0) return 0;
  const lo = Math.max(0, n - (S - k));
  const hi = Math.min(k, n);
  // pmf(lo) in log space, then the ratio pmf(j+1)/pmf(j) = (k−j)(n−j) / ((j+1)(S−k−n+j+1)).
  let pmf = Math.exp(logChoose(k, lo) + logChoose(S - k, n - lo) - logChoose(S, n));
  let miss = 0;
  for (let j = lo; j <= hi; j++) {
    miss += pmf * Math.pow(1 - o.q, j);
    pmf *= ((k - j) * (n - j)) / ((j + 1) * (S - k - n + j + 1));
  }
  return Math.min(1, Math.max(0, 1 - miss));
}

/**
 * A round's report under the stated damage model: one replica of `damaged` shards (default one)
 * missing or corrupt in a fraction `lossFraction` of its blocks. `damageFraction` is that damage
 * as a fraction of the dataset's blocks (one copy): lossFraction · damaged / shards.
 */
export function roundDetection(o: {
  shards: number;
  sampled: number;
  checkedShards: number;
  round: number;
  detectionProbability: number;
  lossFraction: number;
  damaged?: number;
}): RoundDetection {
  const q = blockDetectionBound(o.detectionProbability, o.lossFraction);
  const damaged = Math.min(o.shards, Math.max(1, o.damaged ?? 1));
  const spread = Math.min(o.shards, Math.max(1, Math.ceil(o.lossFraction * o.shards)));
  return {
    round: o.round,
    shards: o.shards,
    sampledShards: o.sampled,
    checkedShards: o.checkedShards,
    coverRounds: coverRounds(o.shards, o.sampled),
    blockDetection: q,
    lossFraction: o.lossFraction,
    damagedShards: damaged,
    damageFraction: o.shards > 0 ? (o.lossFraction * damaged) / o.shards : 0,
    probability: datasetDetection({ shards: o.shards, sampled: o.sampled, damaged, q }),
    spreadShards: spread,
    spreadProbability: datasetDetection({ shards: o.shards, sampled: o.sampled, damaged: spread, q }),
  };
}

/** A percentage for people: 0.0125 → "1.25%", 0.0002 → "0.02%". */
function pct(x: number): string {
  const v = x * 100;
  return `${v >= 1 ? +v.toFixed(2) : +v.toPrecision(2)}%`;
}

/** Probabilities are bounds: rounded down, never up. */
function floor4(x: number): string {
  return (Math.floor(x * 10_000) / 10_000).toFixed(4);
}

/** "this round: P(detect) ≥ x for damage to y% of the dataset (…)", as `provenant status` and the audit log print it. */
export function describeDetection(d: RoundDetection): string {
  const shard = d.damagedShards === 1 ? `1 of ${d.shards} shards` : `${d.damagedShards} of ${d.shards} shards`;
  const spread =
    d.spreadShards > d.damagedShards
      ? `; ≥ ${floor4(d.spreadProbability)} if ${d.spreadShards} shards are so damaged`
      : '';
  const within = `every shard within ${d.coverRounds} round${d.coverRounds === 1 ? '' : 's'}`;
  return (
    `this round: P(detect) ≥ ${floor4(d.probability)} for damage to ${pct(d.damageFraction)} of the dataset ` +
    `(${pct(d.lossFraction)} of the blocks of ${shard})${spread}; ${d.sampledShards}/${d.shards} shards sampled, ${within}`
  );
}
