/**
 * provenant report [--out FILE] [--limit N]: one static HTML page (cli/report/render.ts) with every
 * stewarded dataset's health, the replicas per provider, a verification timeline, an expiry and
 * renewal calendar, the audit chains' state and the manifests' signatures. It reads what `status`
 * and `providers` read: each running steward's status query (a running worker answers, else one
 * in this process), then its replica table page by page and the table's root, which carries the
 * manifest signature (blocks cached per host, each checked against its CID). Memory holds one
 * page and the report's counts (cli/report/model.ts), whatever the fleet size; --limit caps the
 * dataset rows (the healthiest are left out first).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Envelope } from '../../activities/evidence/dsse.js';
import { verifyingKeysOf, type VerifyingKey } from '../../activities/evidence/keys.js';
import { ProviderSet } from '../../activities/providers/registry.js';
import { tableStoreOf } from '../../activities/steward/activities.js';
import { stewardsQuery } from '../../activities/steward/rehome.js';
import type { Config } from '../../config/schema.js';
import type { StewardStatus } from '../../shared/types.js';
import { stewardStatusQuery } from '../../workflows/index.js';
import { NoWorkerAnswered, withRuntime } from '../../workers/runtime.js';
import { humanBytes, UsageError } from '../kit.js';
import { DEFAULT_LIMITS, manifestEvidence, ReportBuilder, type ReportData } from '../report/model.js';
import { renderReport } from '../report/render.js';
import { command } from './run.js';

/** Stewards read at once (as `provenant providers` does). */
const CONCURRENCY = 4;

/** The signing set-up of this host, and the keys that check manifest signatures here. */
function signingOf(config: Config): { info: ReportData['evidence']['signing']; keys: VerifyingKey[] } {
  const s = config.signing;
  const base = { configured: !!s.keyFile, previousKeys: s.previousPublicKeyFiles.length };
  try {
    const keys = verifyingKeysOf(config);
    const current = s.keyFile ? keys[0] : undefined;
    return {
      info: { ...base, ...(current ? { keyId: current.keyId, algorithm: current.algorithm } : {}) },
      keys,
    };
  } catch (err) {
    return { info: { ...base, error: (err as Error).message.split('\n')[0] }, keys: [] };
  }
}

export const report = command(
  'report [--out FILE] [--limit N]   one offline HTML page: health, replicas, verifications, expiries, audit, evidence',
  { out: { type: 'string' }, limit: { type: 'string' } },
  async ({ config, out, values }) => {
    const file = path.resolve((values.out as string | undefined) ?? 'report.html');
    const limit = values.limit === undefined ? DEFAULT_LIMITS.datasets : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1)
      throw new UsageError(`--limit must be a whole number ≥ 1, got ${String(values.limit)}`);
    const signing = signingOf(config);
    const set = new ProviderSet(config.providers);
    try {
      const store = tableStoreOf({ config, providers: set });
      let skipped = 0;
      const data = await withRuntime(
        config,
        // Run again from the start when the worker seen polling stops answering: start afresh.
        async ({ client, query, config: cfg }) => {
          const b = new ReportBuilder(Date.now(), { ...DEFAULT_LIMITS, datasets: limit });
          skipped = 0;
          const one = async (workflowId: string) => {
            let st: StewardStatus;
            try {
              st = await query(() => client.workflow.getHandle(workflowId).query(stewardStatusQuery));
            } catch (err) {
              if (err instanceof NoWorkerAnswered) throw err;
              skipped++; // ended between the listing and the query
              out.info(`skipped ${workflowId}: ${(err as Error).message.split('\n')[0]}`);
              return;
            }
            if (st.replicas) {
              // A steward from before replica tables: its replicas are inline, its manifest unsigned.
              b.dataset(st, manifestEvidence({ manifestCid: st.manifestCid }, signing.keys));
              b.replicas(st.datasetId, st.replicas);
              return;
            }
            const tableCid = st.replicaTable?.tableCid ?? null;
            if (!tableCid) {
              b.dataset(st, manifestEvidence(undefined, signing.keys));
              return;
            }
            let listed = false;
            try {
              const root = (await store.root(tableCid)) as { manifestCid: string; manifestSignature?: Envelope };
              b.dataset(st, manifestEvidence(root, signing.keys));
              listed = true;
              for await (const page of store.replicas(tableCid)) b.replicas(st.datasetId, page);
            } catch (err) {
              const why = (err as Error).message.split('\n')[0] ?? 'unreadable';
              if (!listed) b.dataset(st, { state: 'unknown', detail: why });
              b.tableUnreadable(st, why);
            }
          };
          let batch: Promise<void>[] = [];
          for await (const w of client.workflow.list({ query: stewardsQuery(cfg.temporal.taskQueue) })) {
            batch.push(one(w.workflowId));
            if (batch.length >= CONCURRENCY) {
              await Promise.all(batch);
              batch = [];
            }
          }
          await Promise.all(batch);
          return b.build({
            server: {
              address: cfg.temporal.address,
              namespace: cfg.temporal.namespace,
              taskQueue: cfg.temporal.taskQueue,
            },
            signing: signing.info,
          });
        },
        { worker: 'auto', log: out.info },
      );
      const page = renderReport(data);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const tmp = `${file}.tmp-${process.pid}`;
      fs.writeFileSync(tmp, page);
      fs.renameSync(tmp, file);
      const bytes = Buffer.byteLength(page);
      const h = data.health;
      out.result(
        {
          out: file,
          bytes,
          datasets: data.datasetCount,
          shown: data.datasets.length,
          skipped,
          health: h,
          providers: data.providers.map((p) => p.id),
          audit: data.audit.byState,
          evidence: data.evidence.byState,
        },
        [
          `wrote ${file} (${humanBytes(bytes)}): ${data.datasetCount} datasets, ${h.healthy} healthy, ${h.degraded} degraded, ${h.lost} lost` +
            (h.unknown ? `, ${h.unknown} unknown` : ''),
          `  providers: ${data.providers.map((p) => p.id).join(', ') || 'none'}`,
          ...(data.datasets.length < data.datasetCount
            ? [`  ${data.datasetCount - data.datasets.length} healthiest datasets not listed (--limit ${limit})`]
            : []),
        ].join('\n'),
      );
    } finally {
      await set.close();
    }
  },
);
