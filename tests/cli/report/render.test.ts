/** The report's model (folding stewards and replica pages) and its HTML (escaped, offline, bounded). */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, it } from 'node:test';
import { keyIdOf, type SigningKey } from '../../../activities/evidence/keys.js';
import { signManifest } from '../../../activities/evidence/sign.js';
import { encodeBlock } from '../../../activities/steward/table.js';
import { DEFAULT_LIMITS, manifestEvidence, ReportBuilder, type ReportData } from '../../../cli/report/model.js';
import { escapeHtml, html, renderReport } from '../../../cli/report/render.js';
import type { StewardReplica, StewardStatus } from '../../../shared/types.js';

const NOW = Date.parse('2026-06-15T12:00:00.000Z');
const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();
const server = { address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'provenant' };
const noSigning = { configured: false, previousKeys: 0 };

function status(datasetId: string, over: Partial<StewardStatus> = {}): StewardStatus {
  return {
    datasetId,
    manifestCid: encodeBlock({ datasetId }).cid.toString(),
    health: 'healthy',
    copies: 2,
    pieces: 2,
    replicaCount: 4,
    lastVerifiedAt: iso(NOW - 2 * DAY),
    nextVerificationAt: iso(NOW + 3 * DAY),
    auditHead: null,
    auditRecords: 5,
    rounds: 3,
    runs: 1,
    counters: { verifications: 3, repairs: 1, renewals: 0, retired: 0 },
    retired: false,
    unauditedEvents: 0,
    ...over,
  };
}

function replica(shard: number, providerId: string, over: Partial<StewardReplica> = {}): StewardReplica {
  return {
    shard,
    pieceCid: `piece-${shard}`,
    carCid: `car-${shard}`,
    rootCid: `root-${shard}`,
    bytes: 1000,
    providerId,
    state: 'healthy',
    lastCheckedAt: iso(NOW - 2 * DAY),
    ...over,
  };
}

function ed25519(): SigningKey {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  return {
    keyId: keyIdOf(publicKey),
    algorithm: 'ed25519',
    privateKey,
    publicKey,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

function build(f: (b: ReportBuilder) => void, limits = DEFAULT_LIMITS): ReportData {
  const b = new ReportBuilder(NOW, limits);
  f(b);
  return b.build({ server, signing: noSigning });
}

describe('report model', () => {
  it('counts replicas per provider and state, and each dataset once per provider', () => {
    const d = build((b) => {
      b.dataset(status('a'), { state: 'unsigned' });
      b.replicas('a', [replica(-1, 'p1'), replica(-1, 'p2'), replica(0, 'p1')]);
      b.replicas('a', [replica(0, 'p2', { state: 'corrupt' })]);
      b.dataset(status('b'), { state: 'unsigned' });
      b.replicas('b', [replica(0, 'p1', { bytes: 50 })]);
    });
    assert.deepEqual(
      d.providers.map((p) => [p.id, p.replicas, p.bytes, p.datasets, p.byState]),
      [
        ['p1', 3, 2050, 2, { healthy: 3 }],
        ['p2', 2, 2000, 1, { healthy: 1, corrupt: 1 }],
      ],
    );
    const a = d.datasets.find((r) => r.datasetId === 'a')!;
    assert.deepEqual(a.providers, { p1: 2, p2: 2 });
    assert.deepEqual(a.byState, { healthy: 3, corrupt: 1 });
    assert.equal(a.replicas, 4);
  });

  it('lists the worst health first and caps the rows, counting every dataset', () => {
    const d = build(
      (b) => {
        for (let i = 0; i < 10; i++) b.dataset(status(`ok-${i}`), { state: 'unsigned' });
        b.dataset(status('z-lost', { health: 'lost' }), { state: 'unsigned' });
        b.dataset(status('y-degraded', { health: 'degraded' }), { state: 'unsigned' });
      },
      { ...DEFAULT_LIMITS, datasets: 3, listRows: 4 },
    );
    assert.equal(d.datasetCount, 12);
    assert.deepEqual(
      d.datasets.map((r) => r.datasetId),
      ['z-lost', 'y-degraded', 'ok-0'],
    );
    assert.deepEqual(d.health, { healthy: 10, degraded: 1, lost: 1, unknown: 0 });
    assert.equal(d.timeline.recent.length, 4);
    assert.equal(d.timeline.recentTotal, 12);
    assert.equal(d.timeline.upcoming.length, 4);
    assert.equal(d.timeline.upcomingTotal, 12);
  });

  it('puts each replica on the day of its last check, and the next rounds on their days', () => {
    const d = build((b) => {
      b.dataset(status('a', { nextVerificationAt: iso(NOW + 3 * DAY) }), { state: 'unsigned' });
      b.replicas('a', [
        replica(0, 'p1', { lastCheckedAt: iso(NOW - 2 * DAY) }),
        replica(1, 'p1', { lastCheckedAt: iso(NOW - 2 * DAY), state: 'missing' }),
        replica(2, 'p1', { lastCheckedAt: iso(NOW - 400 * DAY) }),
        replica(3, 'p1', { lastCheckedAt: undefined }),
      ]);
    });
    const days = d.timeline.days;
    assert.equal(days.length, DEFAULT_LIMITS.timelineDays + DEFAULT_LIMITS.upcomingDays);
    assert.equal(days.at(-1)!.day, iso(NOW + DEFAULT_LIMITS.upcomingDays * DAY).slice(0, 10));
    const past = days.find((x) => x.day === iso(NOW - 2 * DAY).slice(0, 10))!;
    assert.deepEqual([past.healthy, past.failed], [1, 1]);
    assert.equal(days.find((x) => x.day === iso(NOW + 3 * DAY).slice(0, 10))!.scheduled, 1);
    assert.equal(d.timeline.earlier, 1);
    assert.equal(d.timeline.neverChecked, 1);
  });

  it('puts expiries in their month per provider, later ones together, and counts the expired', () => {
    const d = build((b) => {
      b.dataset(status('a', { earliestExpiry: iso(NOW + 20 * DAY), nextRenewalAt: iso(NOW + 10 * DAY) }), {
        state: 'unsigned',
      });
      b.replicas('a', [
        replica(0, 'p1', { expiresAt: iso(NOW + 20 * DAY) }),
        replica(1, 'p2', { expiresAt: iso(NOW + 20 * DAY) }),
        replica(2, 'p2', { expiresAt: iso(NOW + 900 * DAY) }),
        replica(3, 'p2', { expiresAt: iso(NOW - DAY) }),
        replica(4, 'p2'),
      ]);
    });
    const m = d.calendar.months;
    assert.equal(m.length, DEFAULT_LIMITS.calendarMonths + 1);
    const july = m.find((x) => x.month === '2026-07')!;
    assert.deepEqual(july.byProvider, { p1: 1, p2: 1 });
    assert.equal(m[0]!.month, '2026-06');
    assert.equal(m[0]!.renewals, 1);
    assert.deepEqual(m.at(-1), { month: 'later', byProvider: { p2: 1 }, replicas: 1, renewals: 0 });
    assert.equal(d.calendar.expired, 1);
    assert.equal(d.calendar.noExpiry, 1);
    assert.deepEqual(d.calendar.soonest, [
      { datasetId: 'a', earliestExpiry: iso(NOW + 20 * DAY), nextRenewalAt: iso(NOW + 10 * DAY) },
    ]);
  });

  it('counts audit chains by state and lists those not intact, worst first', () => {
    const health = (state: 'intact' | 'broken' | 'repaired') => ({
      state,
      records: 4,
      checked: 4,
      lastCheckedAt: iso(NOW),
      repairedLastRound: 0,
      repairs: 0,
      problems: state === 'broken' ? ['record 2: no intact copy'] : [],
      problemCount: state === 'broken' ? 1 : 0,
    });
    const d = build((b) => {
      b.dataset(status('a', { audit: health('intact') }), { state: 'unsigned' });
      b.dataset(status('b', { audit: health('repaired') }), { state: 'unsigned' });
      b.dataset(status('c', { audit: health('broken'), unauditedEvents: 2 }), { state: 'unsigned' });
      b.dataset(status('d'), { state: 'unsigned' });
    });
    assert.deepEqual(d.audit.byState, { intact: 1, repaired: 1, degraded: 0, broken: 1, unchecked: 1 });
    assert.deepEqual(
      d.audit.problems.map((p) => [p.datasetId, p.state]),
      [
        ['c', 'broken'],
        ['b', 'repaired'],
      ],
    );
    assert.equal(d.audit.unauditedEvents, 2);
    assert.equal(d.audit.records, 4 + 4 + 4 + 5);
  });
});

describe('report evidence: the manifest signature in a table root', () => {
  const manifestCid = encodeBlock({ m: 1 }).cid.toString();
  const key = ed25519();

  it('is unsigned without a signature and unknown without a table', () => {
    assert.equal(manifestEvidence({ manifestCid }, [key]).state, 'unsigned');
    assert.equal(manifestEvidence(undefined, [key]).state, 'unknown');
  });

  it('is trusted when a key of this host verifies it', () => {
    const root = { manifestCid, manifestSignature: signManifest(manifestCid, 'ds', key) };
    assert.deepEqual(manifestEvidence(root, [key]), { state: 'trusted', keyId: key.keyId });
  });

  it('is unchecked when this host has no key', () => {
    const root = { manifestCid, manifestSignature: signManifest(manifestCid, 'ds', key) };
    assert.equal(manifestEvidence(root, []).state, 'unchecked');
  });

  it('is bad when another key made it or it signs another manifest', () => {
    const root = { manifestCid, manifestSignature: signManifest(manifestCid, 'ds', ed25519()) };
    assert.equal(manifestEvidence(root, [key]).state, 'bad');
    const other = encodeBlock({ m: 2 }).cid.toString();
    const moved = { manifestCid, manifestSignature: signManifest(other, 'ds', key) };
    assert.equal(manifestEvidence(moved, [key]).state, 'bad');
  });
});

describe('report HTML', () => {
  const hostile = `<script>alert("x")</script>&'`;

  function sample(): ReportData {
    return build((b) => {
      b.dataset(
        status(hostile, {
          health: 'degraded',
          lastRoundError: { at: iso(NOW), message: '<b>boom</b>', retryAt: iso(NOW) },
        }),
        {
          state: 'bad',
          detail: '<img src=x onerror=alert(1)>',
        },
      );
      b.replicas(hostile, [replica(0, '<i>evil-provider</i>', { expiresAt: iso(NOW + 40 * DAY) })]);
      b.dataset(status('plain-ds'), { state: 'trusted', keyId: 'k1' });
      b.replicas('plain-ds', [replica(0, 'local-1'), replica(0, 'local-2', { state: 'missing' })]);
    });
  }

  it('escapes every value it prints', () => {
    assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    assert.equal(
      html`<p title="${'"><x'}">${['<', html`<b>b</b>`]}${undefined}${null}${false}${0}</p>`.markup,
      '<p title="&quot;&gt;&lt;x">&lt;<b>b</b>0</p>',
    );
    const page = renderReport(sample());
    assert.ok(!page.includes('<script'), 'no script element, not even an injected one');
    assert.ok(!page.includes('<i>evil'), 'a provider id is text');
    assert.ok(!page.includes('<img'), 'an error message is text');
    assert.ok(!page.includes('<b>boom'), 'a round error is text');
    assert.ok(page.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;'));
    assert.ok(page.includes('&lt;i&gt;evil-provider&lt;/i&gt;'));
  });

  it('is one file that loads nothing: no script, no external link, image, stylesheet or font', () => {
    const page = renderReport(sample());
    assert.doesNotMatch(page, /<script|<link|<iframe|<object|<embed|<img|@import|url\(/i);
    assert.doesNotMatch(page, /(src|href)\s*=\s*"(?!#)/i, 'only in-page anchors');
    assert.doesNotMatch(page, /https?:\/\//i);
    assert.match(page, /^<!doctype html>/);
    assert.match(page, /<style>[\s\S]+<\/style>/);
  });

  it('shows every section with the datasets, providers, audit and evidence states', () => {
    const page = renderReport(sample());
    for (const id of ['datasets', 'providers', 'timeline', 'calendar', 'audit', 'evidence'])
      assert.match(page, new RegExp(`<section id="${id}">`));
    for (const text of [
      'plain-ds',
      'local-1',
      'local-2',
      'degraded',
      'healthy',
      'signature INVALID',
      'signed, verified',
    ])
      assert.ok(page.includes(text), text);
    assert.match(page, /<svg[^>]+aria-label="verification timeline"/);
    assert.match(page, /<svg[^>]+aria-label="replicas per provider"/);
    assert.ok(page.includes('2026-07'), 'the expiry month');
  });

  it('says how many datasets it left out', () => {
    const d = build(
      (b) => {
        for (let i = 0; i < 7; i++) b.dataset(status(`ds-${i}`), { state: 'unsigned' });
      },
      { ...DEFAULT_LIMITS, datasets: 2 },
    );
    const page = renderReport(d);
    assert.match(page, /5 more datasets \(the healthiest\) not shown \(of 7\)/);
    assert.ok(page.includes('ds-1') && page.includes('ds-6'), 'the upcoming list still names them');
  });

  it('stays bounded for a large fleet: capped rows and lists, fixed-size charts', () => {
    const n = 20_000;
    const d = build((b) => {
      for (let i = 0; i < n; i++) {
        const id = `fleet-${String(i).padStart(5, '0')}`;
        b.dataset(
          status(id, {
            health: i % 1000 === 0 ? 'degraded' : 'healthy',
            lastVerifiedAt: iso(NOW - (i % 40) * DAY),
            nextVerificationAt: iso(NOW + (i % 20) * DAY),
            earliestExpiry: iso(NOW + (i % 500) * DAY),
          }),
          { state: 'trusted' },
        );
        b.replicas(id, [
          replica(0, `p${i % 7}`, { lastCheckedAt: iso(NOW - (i % 40) * DAY), expiresAt: iso(NOW + (i % 500) * DAY) }),
          replica(0, `p${(i + 1) % 7}`, { lastCheckedAt: iso(NOW - (i % 40) * DAY) }),
        ]);
      }
    });
    assert.equal(d.datasetCount, n);
    assert.equal(d.datasets.length, DEFAULT_LIMITS.datasets);
    assert.equal(d.datasets[0]!.health, 'degraded', 'the datasets needing attention come first');
    assert.equal(d.timeline.days.length, DEFAULT_LIMITS.timelineDays + DEFAULT_LIMITS.upcomingDays);
    assert.equal(d.timeline.upcoming.length, DEFAULT_LIMITS.listRows);
    assert.equal(d.calendar.soonest.length, DEFAULT_LIMITS.listRows);
    assert.equal(d.providers.length, 7);
    const page = renderReport(d);
    assert.ok(page.length < 2_000_000, `${page.length} characters`);
    assert.match(page, /19,500 more datasets \(the healthiest\) not shown \(of 20,000\)/);
  });

  it('renders an empty fleet', () => {
    const page = renderReport(build(() => {}));
    assert.match(page, /No running steward/);
  });
});
