/**
 * The report as one static HTML page: inline CSS and SVG, no script, no external asset, so that
 * the file opens offline and can be mailed or archived as it is. Pure (data in, string out).
 * Every value goes through `html`, which escapes whatever it interpolates unless it is markup
 * built by `html` itself: a dataset id or a provider's error message cannot inject markup.
 */
import type { DatasetHealth, ReplicaHealth } from '../../shared/types.js';
import type { CalendarMonth, DatasetRow, EvidenceState, ReportData, TimelineDay } from './model.js';

/** Markup made by `html` (interpolated as it is). */
export class Html {
  constructor(readonly markup: string) {}
  toString(): string {
    return this.markup;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text made safe for an element's content or a quoted attribute value. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function part(v: unknown): string {
  if (v instanceof Html) return v.markup;
  if (Array.isArray(v)) return v.map(part).join('');
  if (v === undefined || v === null || v === false) return '';
  return escapeHtml(String(v));
}

/** A template whose interpolations are escaped (arrays are joined; Html is kept; null, undefined, false vanish). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let s = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) s += part(values[i]) + (strings[i + 1] ?? '');
  return new Html(s);
}

const HEALTH_COLOR: Record<DatasetHealth, string> = {
  healthy: '#2e7d32',
  degraded: '#e0a100',
  lost: '#c62828',
  unknown: '#8a8a8a',
};
const REPLICA_STATES: ReplicaHealth[] = ['healthy', 'unknown', 'unreachable', 'missing', 'corrupt', 'expired'];
const REPLICA_COLOR: Record<ReplicaHealth, string> = {
  healthy: '#2e7d32',
  unknown: '#8a8a8a',
  unreachable: '#e0a100',
  missing: '#ef6c00',
  corrupt: '#c62828',
  expired: '#6a1b9a',
};
const AUDIT_COLOR: Record<string, string> = {
  intact: '#2e7d32',
  repaired: '#1565c0',
  degraded: '#e0a100',
  broken: '#c62828',
  unchecked: '#8a8a8a',
};
const EVIDENCE_COLOR: Record<EvidenceState, string> = {
  trusted: '#2e7d32',
  unchecked: '#1565c0',
  unsigned: '#8a8a8a',
  bad: '#c62828',
  unknown: '#e0a100',
};
const EVIDENCE_TEXT: Record<EvidenceState, string> = {
  trusted: 'signed, verified',
  unchecked: 'signed, not checked here',
  unsigned: 'unsigned',
  bad: 'signature INVALID',
  unknown: 'unknown',
};

const CSS = `
:root{--fg:#1d1f23;--muted:#5f6670;--line:#d9dde3;--bg:#f6f7f9;--card:#fff}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#22303c;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#c9d3dc}
nav{padding:8px 28px;background:#2d3e4c}
nav a{color:#e8eef3;margin-right:16px;text-decoration:none;font-size:13px}
main{padding:12px 28px 40px;max-width:1400px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 18px;margin:16px 0}
h2{margin:0 0 10px;font-size:17px}
h3{margin:14px 0 6px;font-size:14px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;min-width:150px;background:#fbfcfd}
.card b{display:block;font-size:22px}
.card span{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:#eef1f4;font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;white-space:nowrap}
.muted{color:var(--muted)}
.note{color:var(--muted);font-size:12px;margin:6px 0 0}
.legend span{margin-right:14px;font-size:12px;white-space:nowrap}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.months{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.month{border:1px solid var(--line);border-radius:6px;padding:8px 10px;background:#fbfcfd}
.month.busy{border-color:#e0a100;background:#fff8e6}
.month h4{margin:0 0 4px;font-size:13px}
.month ul{margin:0;padding-left:16px;font-size:12px}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px}
.err{color:#c62828}
svg text{font:11px system-ui,sans-serif;fill:#5f6670}
`;

const nf = new Intl.NumberFormat('en-US');
const num = (n: number) => nf.format(n);

function bytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  for (; n >= 1024 && i < u.length - 1; i++) n /= 1024;
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

/** 'YYYY-MM-DD HH:MM' (UTC) and how far from the report's time. */
function when(iso: string | undefined, nowMs: number): Html {
  if (!iso) return html`<span class="muted">—</span>`;
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return html`${iso}`;
  const d = ms - nowMs;
  const a = Math.abs(d);
  const rel =
    a < 60_000
      ? 'now'
      : (() => {
          const [n, u] =
            a < 3_600_000
              ? [Math.round(a / 60_000), 'min']
              : a < 86_400_000
                ? [Math.round(a / 3_600_000), 'h']
                : [Math.round(a / 86_400_000), 'd'];
          return d < 0 ? `${n} ${u} ago` : `in ${n} ${u}`;
        })();
  return html`<span title="${iso}">${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')}</span>
    <span class="muted">(${rel})</span>`;
}

const badge = (text: string, color: string) => html`<span class="badge" style="background:${color}">${text}</span>`;

function legend(items: [string, string][]): Html {
  return html`<div class="legend">
    ${items.map(([label, color]) => html`<span><i style="background:${color}"></i>${label}</span>`)}
  </div>`;
}

/** "N more not shown" under a capped list. */
function more(shown: number, total: number, what: string): Html {
  return total > shown
    ? html`<p class="note">${num(total - shown)} more ${what} not shown (of ${num(total)}).</p>`
    : html``;
}

function summary(d: ReportData): Html {
  const intact = d.audit.byState.intact + d.audit.byState.repaired;
  const card = (value: string, label: string, color?: string) =>
    html`<div class="card"><b style="${color ? `color:${color}` : ''}">${value}</b><span>${label}</span></div>`;
  return html`<div class="cards">
    ${card(num(d.datasetCount), 'datasets stewarded')} ${card(num(d.health.healthy), 'healthy', HEALTH_COLOR.healthy)}
    ${card(num(d.health.degraded), 'degraded', d.health.degraded ? HEALTH_COLOR.degraded : undefined)}
    ${card(num(d.health.lost), 'lost', d.health.lost ? HEALTH_COLOR.lost : undefined)}
    ${d.health.unknown ? card(num(d.health.unknown), 'health unknown', HEALTH_COLOR.unknown) : ''}
    ${card(num(d.providers.length), 'providers holding replicas')}
    ${card(
      `${num(intact)}/${num(d.datasetCount)}`,
      'audit chains intact',
      d.audit.byState.broken ? AUDIT_COLOR.broken : undefined,
    )}
    ${card(d.evidence.signing.configured ? 'on' : 'off', 'signing on this host')}
  </div>`;
}

function providerCounts(r: DatasetRow): Html {
  const ids = Object.keys(r.providers).sort();
  if (!ids.length) return html`<span class="muted">—</span>`;
  return html`${ids.map((id, i) => html`${i ? ', ' : ''}${id}&nbsp;×${num(r.providers[id]!)}`)}`;
}

function stateCounts(byState: Partial<Record<ReplicaHealth, number>>): Html {
  const parts = REPLICA_STATES.filter((s) => byState[s]);
  if (!parts.length) return html`<span class="muted">—</span>`;
  return html`${parts.map(
    (s, i) => html`${i ? ' ' : ''}<span style="color:${REPLICA_COLOR[s]}">${num(byState[s]!)}&nbsp;${s}</span>`,
  )}`;
}

function datasets(d: ReportData, nowMs: number): Html {
  if (!d.datasetCount) return html`<p class="muted">No running steward: archive a dataset first.</p>`;
  return html`<table>
      <thead>
        <tr>
          <th>dataset</th>
          <th>health</th>
          <th class="num">copies</th>
          <th class="num">pieces</th>
          <th>replicas by state</th>
          <th>replicas per provider</th>
          <th>last verified</th>
          <th>next round</th>
          <th>earliest expiry</th>
          <th>audit</th>
          <th>evidence</th>
        </tr>
      </thead>
      <tbody>
        ${d.datasets.map(
          (r) =>
            html`<tr>
              <td>
                <b>${r.datasetId}</b><br /><code class="muted" title="manifest CID">${r.manifestCid}</code>
                ${r.lastRoundError ? html`<br /><span class="err">last round: ${r.lastRoundError}</span>` : ''}
                ${r.tableError ? html`<br /><span class="err">replica table: ${r.tableError}</span>` : ''}
              </td>
              <td>${badge(r.health, HEALTH_COLOR[r.health])}</td>
              <td class="num">${num(r.copies)}</td>
              <td class="num">${num(r.pieces)}</td>
              <td>${stateCounts(r.byState)}</td>
              <td>${providerCounts(r)}</td>
              <td>
                ${when(r.lastVerifiedAt, nowMs)}
                ${
                  r.detectionProbability !== undefined
                    ? html`<br /><span class="muted">P(detect) ≥ ${r.detectionProbability.toFixed(4)}</span>`
                    : ''
                }
              </td>
              <td>${when(r.nextVerificationAt, nowMs)}</td>
              <td>${when(r.earliestExpiry, nowMs)}</td>
              <td>
                ${badge(r.audit.state, AUDIT_COLOR[r.audit.state] ?? '#8a8a8a')}
                <span class="muted">${num(r.audit.records)} records</span>
                ${r.unauditedEvents ? html`<br /><span class="err">${num(r.unauditedEvents)} events waiting</span>` : ''}
              </td>
              <td>${badge(EVIDENCE_TEXT[r.evidence.state], EVIDENCE_COLOR[r.evidence.state])}</td>
            </tr>`,
        )}
      </tbody>
    </table>
    ${more(d.datasets.length, d.datasetCount, 'datasets (the healthiest)')}`;
}

/** One horizontal bar per provider, split by replica state. */
function providerBars(d: ReportData): Html {
  const max = Math.max(1, ...d.providers.map((p) => p.replicas));
  const W = 520;
  const rowH = 22;
  const labelW = 140;
  const h = d.providers.length * rowH + 4;
  return html`<svg
    role="img"
    aria-label="replicas per provider"
    width="${labelW + W + 70}"
    height="${h}"
    viewBox="0 0 ${labelW + W + 70} ${h}"
  >
    ${d.providers.map((p, i) => {
      let x = labelW;
      const y = i * rowH + 2;
      return html`<text x="${labelW - 6}" y="${y + 14}" text-anchor="end">${p.id}</text>
        ${REPLICA_STATES.filter((s) => p.byState[s]).map((s) => {
          const w = (p.byState[s]! / max) * W;
          const r = html`<rect
            x="${x.toFixed(1)}"
            y="${y}"
            width="${Math.max(w, 1).toFixed(1)}"
            height="${rowH - 6}"
            fill="${REPLICA_COLOR[s]}"
            ><title>${p.id}: ${num(p.byState[s]!)} ${s}</title></rect
          >`;
          x += w;
          return r;
        })}
        <text x="${(x + 6).toFixed(1)}" y="${y + 14}">${num(p.replicas)}</text>`;
    })}
  </svg>`;
}

function providers(d: ReportData): Html {
  if (!d.providers.length) return html`<p class="muted">No replica is recorded on any provider.</p>`;
  return html`${legend(REPLICA_STATES.map((s): [string, string] => [s, REPLICA_COLOR[s]]))} ${providerBars(d)}
    <table>
      <thead>
        <tr>
          <th>provider</th>
          <th class="num">replicas</th>
          ${REPLICA_STATES.map((s) => html`<th class="num">${s}</th>`)}
          <th class="num">bytes</th>
          <th class="num">datasets</th>
        </tr>
      </thead>
      <tbody>
        ${d.providers.map(
          (p) =>
            html`<tr>
              <td><b>${p.id}</b></td>
              <td class="num">${num(p.replicas)}</td>
              ${REPLICA_STATES.map((s) => html`<td class="num">${p.byState[s] ? num(p.byState[s]!) : ''}</td>`)}
              <td class="num">${bytes(p.bytes)}</td>
              <td class="num">${num(p.datasets)}</td>
            </tr>`,
        )}
      </tbody>
    </table>`;
}

/** Replica checks per day (healthy and failed, stacked) up to today, then scheduled rounds. */
function timelineChart(days: TimelineDay[], today: string): Html {
  const bw = 18;
  const H = 120;
  const top = 8;
  const maxPast = Math.max(1, ...days.map((x) => x.healthy + x.failed));
  const maxNext = Math.max(1, ...days.map((x) => x.scheduled));
  const W = days.length * bw + 40;
  // Weekly date labels, but none that would overlap today's.
  const todayAt = days.findIndex((x) => x.day === today);
  return html`<svg
    role="img"
    aria-label="verification timeline"
    width="${W}"
    height="${H + 40}"
    viewBox="0 0 ${W} ${H + 40}"
  >
    <line x1="0" y1="${top + H}" x2="${W}" y2="${top + H}" stroke="#d9dde3" />
    ${days.map((x, i) => {
      const bx = i * bw + 2;
      const future = x.day > today;
      const label =
        (i % 7 === 0 && Math.abs(i - todayAt) > 2) || x.day === today
          ? html`<text x="${bx}" y="${top + H + 14}">${x.day.slice(5)}</text>`
          : '';
      const mark =
        x.day === today
          ? html`<line
                x1="${bx + bw - 2}"
                y1="${top}"
                x2="${bx + bw - 2}"
                y2="${top + H}"
                stroke="#22303c"
                stroke-dasharray="3 3"
              /><text x="${bx}" y="${top + H + 28}">today</text>`
          : '';
      if (future) {
        const h = (x.scheduled / maxNext) * (H * 0.6);
        return html`${label}${
          x.scheduled
            ? html`<rect
                x="${bx}"
                y="${(top + H - h).toFixed(1)}"
                width="${bw - 4}"
                height="${h.toFixed(1)}"
                fill="#90a4ae"
                ><title>${x.day}: ${num(x.scheduled)} rounds scheduled</title></rect
              >`
            : ''
        }`;
      }
      const hh = (x.healthy / maxPast) * H;
      const hf = (x.failed / maxPast) * H;
      return html`${label}${mark}${
        x.healthy
          ? html`<rect
              x="${bx}"
              y="${(top + H - hh).toFixed(1)}"
              width="${bw - 4}"
              height="${hh.toFixed(1)}"
              fill="${REPLICA_COLOR.healthy}"
              ><title>${x.day}: ${num(x.healthy)} replicas last checked healthy</title></rect
            >`
          : ''
      }${
        x.failed
          ? html`<rect
              x="${bx}"
              y="${(top + H - hh - hf).toFixed(1)}"
              width="${bw - 4}"
              height="${hf.toFixed(1)}"
              fill="${REPLICA_COLOR.corrupt}"
              ><title>${x.day}: ${num(x.failed)} replicas last checked not healthy</title></rect
            >`
          : ''
      }`;
    })}
  </svg>`;
}

function timeline(d: ReportData, nowMs: number): Html {
  const t = d.timeline;
  const today = new Date(nowMs).toISOString().slice(0, 10);
  return html`${legend([
      ['last check healthy', REPLICA_COLOR.healthy],
      ['last check failed', REPLICA_COLOR.corrupt],
      ['rounds scheduled', '#90a4ae'],
    ])}
    ${timelineChart(t.days, today)}
    <p class="note">
      Each replica counts on the day of its last check (${num(d.limits.timelineDays)} days shown; ${num(t.earlier)}
      replicas last checked earlier, ${num(t.neverChecked)} never checked), then each dataset on the day its next round
      is due (${num(d.limits.upcomingDays)} days ahead).
    </p>
    <div class="cols">
      <div>
        <h3>Latest rounds</h3>
        ${
          t.recent.length
            ? html`<table>
                <thead>
                  <tr>
                    <th>dataset</th>
                    <th>verified</th>
                    <th>health</th>
                    <th class="num">P(detect)</th>
                  </tr>
                </thead>
                <tbody>
                  ${t.recent.map(
                    (r) =>
                      html`<tr>
                        <td>${r.datasetId}</td>
                        <td>${when(r.at, nowMs)}</td>
                        <td>${badge(r.health, HEALTH_COLOR[r.health])}</td>
                        <td class="num">
                          ${r.detectionProbability !== undefined ? r.detectionProbability.toFixed(4) : '—'}
                        </td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
            : html`<p class="muted">No round has completed yet.</p>`
        }
        ${more(t.recent.length, t.recentTotal, 'verified datasets')}
      </div>
      <div>
        <h3>Next rounds</h3>
        ${
          t.upcoming.length
            ? html`<table>
                <thead>
                  <tr>
                    <th>dataset</th>
                    <th>due</th>
                  </tr>
                </thead>
                <tbody>
                  ${t.upcoming.map(
                    (r) =>
                      html`<tr>
                        <td>${r.datasetId}</td>
                        <td>${when(r.at, nowMs)}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
            : html`<p class="muted">No round is scheduled.</p>`
        }
        ${more(t.upcoming.length, t.upcomingTotal, 'scheduled rounds')}
      </div>
    </div>`;
}

function monthCard(m: CalendarMonth): Html {
  const ids = Object.keys(m.byProvider).sort();
  const title = m.month === 'later' ? 'later' : m.month;
  return html`<div class="month${m.replicas || m.renewals ? ' busy' : ''}">
    <h4>${title}</h4>
    ${
      m.replicas
        ? html`<div>${num(m.replicas)} replicas expire</div>
            <ul>
              ${ids.map((id) => html`<li>${id}: ${num(m.byProvider[id]!)}</li>`)}
            </ul>`
        : html`<div class="muted">no expiry</div>`
    }
    ${m.renewals ? html`<div>${num(m.renewals)} datasets renew</div>` : ''}
  </div>`;
}

function calendar(d: ReportData, nowMs: number): Html {
  const c = d.calendar;
  return html`<div class="months">${c.months.map(monthCard)}</div>
    <p class="note">
      ${num(c.noExpiry)} replicas never expire (their provider keeps them until deleted);
      ${c.expired ? html`<span class="err">${num(c.expired)} replicas are past their expiry</span>` : '0 are past their expiry'}.
    </p>
    <h3>Soonest expiries and renewals</h3>
    ${
      c.soonest.length
        ? html`<table>
            <thead>
              <tr>
                <th>dataset</th>
                <th>earliest expiry</th>
                <th>next renewal</th>
              </tr>
            </thead>
            <tbody>
              ${c.soonest.map(
                (r) =>
                  html`<tr>
                    <td>${r.datasetId}</td>
                    <td>${when(r.earliestExpiry, nowMs)}</td>
                    <td>${when(r.nextRenewalAt, nowMs)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
        : html`<p class="muted">No replica expires: nothing to renew.</p>`
    }
    ${more(c.soonest.length, c.soonestTotal, 'datasets')}`;
}

function audit(d: ReportData): Html {
  const a = d.audit;
  const states = ['intact', 'repaired', 'degraded', 'broken', 'unchecked'] as const;
  return html`<div class="cards">
      ${states.map(
        (s) =>
          html`<div class="card">
            <b style="color:${a.byState[s] ? AUDIT_COLOR[s] : 'inherit'}">${num(a.byState[s])}</b
            ><span>chains ${s}</span>
          </div>`,
      )}
      <div class="card"><b>${num(a.records)}</b><span>audit records</span></div>
      <div class="card">
        <b style="color:${a.unauditedEvents ? AUDIT_COLOR.degraded : 'inherit'}">${num(a.unauditedEvents)}</b
        ><span>events waiting for a provider</span>
      </div>
    </div>
    <p class="note">
      Each steward reads back its audit log's stored copies every round (the newest records and a rotating window) and
      re-stores a missing or corrupt copy from an intact one. 'unchecked': no check has run yet. Run
      <code>provenant audit &lt;dataset&gt;</code> to read a whole chain and check every link.
    </p>
    ${
      a.problems.length
        ? html`<h3>Chains repaired, degraded or broken</h3>
            <table>
              <thead>
                <tr>
                  <th>dataset</th>
                  <th>state</th>
                  <th>problems</th>
                </tr>
              </thead>
              <tbody>
                ${a.problems.map(
                  (p) =>
                    html`<tr>
                      <td>${p.datasetId}</td>
                      <td>${badge(p.state, AUDIT_COLOR[p.state]!)}</td>
                      <td>
                        ${p.problems.map((x) => html`<div>${x}</div>`)}
                        ${
                          p.problemCount > p.problems.length
                            ? html`<div class="muted">${num(p.problemCount - p.problems.length)} more</div>`
                            : ''
                        }
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>
            ${more(a.problems.length, a.problemsTotal, 'datasets')}`
        : ''
    }`;
}

function evidence(d: ReportData): Html {
  const e = d.evidence;
  const s = e.signing;
  const states: EvidenceState[] = ['trusted', 'unchecked', 'unsigned', 'bad', 'unknown'];
  return html`<p>
      ${
        s.configured
          ? html`Signing is <b>on</b> here: key <code>${s.keyId ?? '?'}</code> (${s.algorithm ?? '?'})${
                s.previousKeys ? html`, and ${num(s.previousKeys)} previous public keys` : ''
              }.
              Manifests, audit records and evidence bundles are signed (DSSE over in-toto statements).`
          : s.previousKeys
            ? html`No signing key here; ${num(s.previousKeys)} previous public keys check old signatures.`
            : html`Signing is <b>off</b> here (no <code>signing.keyFile</code>): manifest signatures cannot be checked.`
      }
      ${s.error ? html`<br /><span class="err">signing key: ${s.error}</span>` : ''}
    </p>
    <div class="cards">
      ${states.map(
        (st) =>
          html`<div class="card">
            <b style="color:${e.byState[st] ? EVIDENCE_COLOR[st] : 'inherit'}">${num(e.byState[st])}</b
            ><span>manifests ${EVIDENCE_TEXT[st]}</span>
          </div>`,
      )}
    </div>
    <p>
      ${num(e.committedReplicas)} of ${num(e.replicas)} replicas have a chain record that their provider holds the piece
      (Filecoin providers: a PDP transaction, a deal or a claim).
    </p>
    <p class="note">
      A manifest's signature is made when its steward's replica table is first built and rides in the table's root.
      <code>provenant evidence &lt;dataset&gt; --out FILE</code> writes a bundle that
      <code>provenant verify-evidence</code> checks offline.
    </p>
    ${
      e.problems.length
        ? html`<h3>Manifests whose signature does not check</h3>
            <table>
              <thead>
                <tr>
                  <th>dataset</th>
                  <th>state</th>
                  <th>why</th>
                </tr>
              </thead>
              <tbody>
                ${e.problems.map(
                  (p) =>
                    html`<tr>
                      <td>${p.datasetId}</td>
                      <td>${badge(EVIDENCE_TEXT[p.state], EVIDENCE_COLOR[p.state])}</td>
                      <td>${p.detail ?? ''}</td>
                    </tr>`,
                )}
              </tbody>
            </table>
            ${more(e.problems.length, e.problemsTotal, 'datasets')}`
        : ''
    }`;
}

/** The whole page. */
export function renderReport(d: ReportData): string {
  const nowMs = Date.parse(d.generatedAt);
  const page = html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="generator" content="provenant report" />
        <title>Provenant report — ${d.generatedAt.slice(0, 16).replace('T', ' ')} UTC</title>
        <style>
          ${new Html(CSS)}
        </style>
      </head>
      <body>
        <header>
          <h1>Provenant report</h1>
          <p>
            Generated ${d.generatedAt} from ${d.server.address}, namespace ${d.server.namespace}, task queue
            ${d.server.taskQueue}.
          </p>
        </header>
        <nav>
          <a href="#datasets">Datasets</a><a href="#providers">Replicas per provider</a
          ><a href="#timeline">Verification timeline</a><a href="#calendar">Expiry and renewal</a
          ><a href="#audit">Audit chain</a><a href="#evidence">Evidence</a>
        </nav>
        <main>
          <section id="summary">${summary(d)}</section>
          <section id="datasets">
            <h2>Datasets</h2>
            ${datasets(d, nowMs)}
          </section>
          <section id="providers">
            <h2>Replicas per provider</h2>
            ${providers(d)}
          </section>
          <section id="timeline">
            <h2>Verification timeline</h2>
            ${timeline(d, nowMs)}
          </section>
          <section id="calendar">
            <h2>Expiry and renewal calendar</h2>
            ${calendar(d, nowMs)}
          </section>
          <section id="audit">
            <h2>Audit chain</h2>
            ${audit(d)}
          </section>
          <section id="evidence">
            <h2>Evidence and signing</h2>
            ${evidence(d)}
          </section>
        </main>
      </body>
    </html> `;
  return page.markup;
}
