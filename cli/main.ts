#!/usr/bin/env node
/**
 * provenant — archive, check and restore datasets through durable Temporal workflows.
 *
 *   provenant archive <dir | s3://bucket/prefix | URL...> [--replicas N] [--meta k=v]... [--id ID] [--provider ID]...
 *   provenant status [<dataset>]
 *   provenant restore <dataset|manifest-cid> <dir> [--path PREFIX]... [--force]
 *   provenant audit <dataset>   the audit log, with its hash chain checked
 *   provenant export <dataset|manifest-cid> --format croissant|hf-card|oms|slsa --out FILE [--key FILE]
 *   provenant dev        embedded dev server + worker in the foreground
 *   provenant worker     a standalone worker for the configured server
 *   provenant demo       archive a generated sample dataset and restore it
 * Common: --json (machine output), --config FILE. Exit 0 on success, 1 with a one-line reason.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import type { Config } from '../config/schema.js';
import type { ArchiveStart } from '../workers/client.js';
import type { ArchiveSummary, StewardReplica } from '../shared/types.js';
import type { ExportFormat } from '../activities/evidence/export.js';
import type { ArchiveInvocation } from '../activities/evidence/slsa.js';
import { COMMANDS } from './commands/index.js';
import { humanBytes, makeOut, UsageError, type Out } from './out.js';

/*
 * Every module past these is imported by the command that needs it (`await import()` below), so
 * that `--help` loads none and the read-only commands (status, audit) load no worker, bundler,
 * progress bars or provider SDKs they do not use: each costs Node's start-up time.
 */
const temporalClient = () => import('@temporalio/client');
const runtime = () => import('../workers/runtime.js');
const archiveClient = () => import('../workers/client.js');
const kit = () => import('./kit.js');
const api = () => import('../shared/api.js');
const errors = () => import('../activities/errors.js');
const auditCheck = () => import('../activities/steward/audit-check.js');

const USAGE = `usage:
  provenant archive <dir | s3://bucket/prefix | [path=]URL...> [--replicas N] [--meta k=v]... [--derived-from MANIFEST-CID]... [--id ID] [--provider ID]... [--json]
      s3: [--s3-endpoint URL] [--s3-region R] [--s3-path-style] [--s3-access-key-id-env VAR --s3-secret-access-key-env VAR]
      URLs: [--http-authorization-env VAR]
  provenant status [<dataset>] [--json]
  provenant restore <dataset|manifest-cid> <dir> [--path PREFIX]... [--force] [--json]
  provenant audit <dataset> [--json]      print the audit log and check its hash chain
  provenant export <dataset|manifest-cid> --format croissant|hf-card|oms|slsa --out FILE [--key PEM] [--json]
  provenant schedule-sweeps [--every 1d]  a Temporal Schedule that asks every steward to verify
  provenant dev | worker [--metrics-port N] | demo    --metrics-port: serve Prometheus metrics at http://127.0.0.1:N/metrics
${Object.values(COMMANDS)
  .map((c) => `  provenant ${c.usage}`)
  .join('\n')}
options: --config FILE (JSON or YAML), --json`;

/** Follow a running archive with progress bars (TTY) or stage lines. */
async function follow(client: Client, workflowId: string, out: Out): Promise<void> {
  const [{ default: cliProgress }, { archiveProgressQuery }] = await Promise.all([import('cli-progress'), api()]);
  const handle = client.workflow.getHandle(workflowId);
  const tty = process.stderr.isTTY && !out.json;
  const bars = tty
    ? new cliProgress.MultiBar(
        { format: ' {stage} |{bar}| {value}/{total} {unit}', hideCursor: true, clearOnComplete: false },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const made: Record<string, InstanceType<typeof cliProgress.SingleBar>> = {};
  let lastStage = '';
  let lastRetry = '';
  const done = handle.result().then(
    () => undefined,
    () => undefined,
  );
  let finished = false;
  void done.then(() => (finished = true));
  while (!finished) {
    try {
      const p = await handle.query(archiveProgressQuery);
      const d = await handle.describe();
      const hb = d.raw.pendingActivities?.[0]?.heartbeatDetails?.payloads?.[0]?.data;
      const details = hb
        ? (JSON.parse(Buffer.from(hb).toString()) as { files?: number; bytes?: number; shardsDone?: number })
        : {};
      if (p.stage !== lastStage) {
        lastStage = p.stage;
        if (!tty) out.info(`stage: ${p.stage}`);
      }
      // A stage being retried says why (an unreachable source, a provider down), once per new reason.
      const pending = d.raw.pendingActivities?.[0];
      const why = pending?.lastFailure?.message;
      if (pending && (pending.attempt ?? 1) > 1 && why && why !== lastRetry) {
        lastRetry = why;
        out.info(`retrying ${pending.activityType?.name ?? 'a stage'} (attempt ${pending.attempt}): ${why}`);
      }
      if (bars) {
        const bar = (k: string, total: number, unit: string) =>
          (made[k] ??= bars.create(Math.max(total, 1), 0, { stage: k.padEnd(9), unit }));
        if (p.stage === 'scan' || p.stage === 'pack')
          bar(p.stage, Math.max(details.files ?? 0, 1), 'files').setTotal(Math.max(details.files ?? 1, 1));
        if (p.stage === 'pack' && details.files !== undefined)
          made.pack?.update(details.files, { unit: `files, ${details.shardsDone ?? 0} shards` });
        if (p.stage === 'scan' && details.files !== undefined) made.scan?.update(details.files);
        if (p.shards > 0) {
          bar('replicate', p.shards, 'shards').setTotal(p.shards);
          made.replicate?.update(p.shardsReplicated);
        }
      }
    } catch {
      /* not started yet, or finished between calls */
    }
    await Promise.race([done, new Promise((r) => setTimeout(r, 500))]);
  }
  bars?.stop();
}

function parseMeta(values: string[] | undefined): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const kv of values ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new UsageError(`--meta expects key=value, got ${JSON.stringify(kv)}`);
    meta[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return meta;
}

function describeArchive(s: ArchiveSummary): string {
  return [
    `archived ${s.datasetId}: ${s.files} files, ${humanBytes(s.bytes)} in ${s.shards} shard(s), ${s.copies} copies`,
    `  manifest CID: ${s.manifestCid}   (keep this: it restores the dataset)`,
    `  root CID:     ${s.rootCid}`,
    `  replicas:     ${Object.entries(s.replicas)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
    ...(s.skippedSpecialFiles.length ? [`  skipped special files: ${s.skippedSpecialFiles.join(', ')}`] : []),
  ].join('\n');
}

/** The line saying how an archive start met its dataset id (`fresh`: what a new archive prints). */
function describeStart({ handle, outcome, previous }: ArchiveStart, fresh: string): string {
  switch (outcome) {
    case 'started':
      return fresh;
    case 'attached':
      return `attached to a running archive of this dataset: ${handle.workflowId}`;
    case 'completed':
      return `dataset already archived: returned a completed archive's result (${handle.workflowId}; pass --id to archive anew)`;
    case 'restarted': {
      // FAILED, CANCELLED, TERMINATED, TIMED_OUT → failed, cancelled, terminated, timed-out
      const how = (previous?.status ?? 'FAILED').toLowerCase().replace('_', '-');
      return `${fresh}: started a new archive after a ${how} one (run ${previous?.runId ?? '?'})`;
    }
  }
}

async function cmdArchive(config: Config, pos: string[], v: Record<string, unknown>, out: Out): Promise<void> {
  if (pos.length === 0) throw new UsageError('archive needs a directory, an s3://bucket/prefix or http(s) URLs');
  const [{ archiveInput, sourceFromArgs, startArchive }, { withRuntime }] = await Promise.all([
    archiveClient(),
    runtime(),
  ]);
  const str = (k: string) => v[k] as string | undefined;
  const source = sourceFromArgs(pos, {
    s3Endpoint: str('s3-endpoint'),
    s3Region: str('s3-region'),
    s3PathStyle: v['s3-path-style'] as boolean | undefined,
    s3AccessKeyIdEnv: str('s3-access-key-id-env'),
    s3SecretAccessKeyEnv: str('s3-secret-access-key-env'),
    httpAuthorizationEnv: str('http-authorization-env'),
  });
  const replicas = v.replicas === undefined ? undefined : Number(v.replicas);
  if (replicas !== undefined && (!Number.isInteger(replicas) || replicas < 1))
    throw new UsageError(`--replicas must be a whole number ≥ 1, got ${String(v.replicas)}`);
  const meta = parseMeta(v.meta as string[] | undefined);
  const derivedFrom = (v['derived-from'] as string[] | undefined) ?? [];
  // Validate the whole request before touching Temporal.
  const input = archiveInput(config, {
    source,
    copies: replicas,
    meta,
    derivedFrom,
    datasetId: v.id as string | undefined,
    providers: v.provider as string[] | undefined,
  });
  // Each parent must be an archive the configured providers hold (ManifestNotFoundError otherwise).
  const { readManifestHeaders } = await import('../activities/evidence/manifest-facts.js');
  for (const parent of await readManifestHeaders(config, derivedFrom))
    out.info(`derived from ${parent.datasetId} (manifest ${parent.manifestCid}, archived ${parent.createdAt})`);
  await withRuntime(
    config,
    async ({ client, config: cfg, embedded }) => {
      if (embedded) cfg.steward.searchAttributes = true; // the embedded server registers them
      const start = await startArchive(client, cfg, {
        source,
        copies: replicas,
        meta,
        derivedFrom,
        datasetId: v.id as string | undefined,
        providers: v.provider as string[] | undefined,
      });
      const { handle, outcome } = start;
      const what =
        input.source.kind === 'local'
          ? input.source.path
          : input.source.kind === 's3'
            ? `s3://${input.source.bucket}/${input.source.prefix}`
            : `${input.source.urls.length} URL(s)`;
      out.info(describeStart(start, `archiving ${what} as ${handle.workflowId}`));
      await follow(client, handle.workflowId, out);
      const s = await handle.result();
      out.result({ ...s, outcome }, describeArchive(s));
    },
    { log: out.info },
  );
}

/** Replicas grouped by piece, in shard order (the manifest, shard -1, first). */
function piecesOf(replicas: StewardReplica[]) {
  const byPiece = new Map<
    string,
    {
      shard: number;
      pieceCid: string;
      copies: { providerId: string; state: string; lastCheckedAt?: string; expiresAt?: string }[];
    }
  >();
  for (const r of replicas) {
    const p = byPiece.get(r.pieceCid) ?? { shard: r.shard, pieceCid: r.pieceCid, copies: [] };
    p.copies.push({ providerId: r.providerId, state: r.state, lastCheckedAt: r.lastCheckedAt, expiresAt: r.expiresAt });
    byPiece.set(r.pieceCid, p);
  }
  return [...byPiece.values()].sort((a, b) => a.shard - b.shard);
}

/**
 * Read-only commands (status, audit) use the worker already polling the task queue (`provenant dev`
 * or `provenant worker`) and load no worker code; with none polling they run one in-process, as
 * before (workers/runtime.ts, worker: 'auto'). Provider reads load the providers' SDKs on demand.
 */
const readOnly = (out: Out) => ({ worker: 'auto' as const, log: out.info });
const stewardReads = () => import('../activities/steward/activities.js');

async function cmdStatus(config: Config, pos: string[], out: Out): Promise<void> {
  const [
    { WorkflowNotFoundError },
    { NoWorkerAnswered, withRuntime },
    { archiveProgressQuery, archiveWorkflowId, stewardStatusQuery },
    { ManifestNotFoundError },
    { describeDetection },
  ] = await Promise.all([temporalClient(), runtime(), api(), errors(), import('../shared/sampling.js')]);
  await withRuntime(
    config,
    async ({ client, query }) => {
      if (!pos[0]) {
        // Fleet view: every stewarded dataset with health, next verification and earliest expiry.
        const rows: {
          datasetId: string;
          health: string;
          nextVerificationAt: string;
          earliestExpiry: string | null;
          manifestCid: string;
          replicas: number;
        }[] = [];
        for await (const w of client.workflow.list({
          query: `WorkflowType = 'stewardDataset' AND ExecutionStatus = 'Running'`,
        })) {
          const st = await query(() => client.workflow.getHandle(w.workflowId).query(stewardStatusQuery));
          rows.push({
            datasetId: st.datasetId,
            health: st.health,
            nextVerificationAt: st.nextVerificationAt,
            earliestExpiry: st.earliestExpiry ?? null,
            manifestCid: st.manifestCid,
            replicas: st.replicaCount ?? st.replicas?.length ?? 0,
          });
        }
        rows.sort((a, b) => a.datasetId.localeCompare(b.datasetId));
        out.result(
          rows,
          rows.length
            ? [
                'dataset\thealth\tnext verification\tearliest expiry',
                ...rows.map((r) => `${r.datasetId}\t${r.health}\t${r.nextVerificationAt}\t${r.earliestExpiry ?? '-'}`),
              ].join('\n')
            : 'no stewarded datasets',
        );
        return;
      }
      const handle = client.workflow.getHandle(archiveWorkflowId(pos[0]));
      let d;
      try {
        d = await handle.describe();
      } catch (err) {
        if (err instanceof WorkflowNotFoundError)
          throw new ManifestNotFoundError(`no dataset '${pos[0]}' is known to this Temporal server`);
        throw err;
      }
      if (d.status.name === 'COMPLETED') {
        const s = await handle.result();
        const steward = s.stewardWorkflowId
          ? await query(() => client.workflow.getHandle(s.stewardWorkflowId!).query(stewardStatusQuery)).catch(
              (err: unknown) => {
                if (err instanceof NoWorkerAnswered) throw err;
                return undefined;
              },
            )
          : undefined;
        const health = steward
          ? `\n  health:       ${steward.health} (last verified ${steward.lastVerifiedAt ?? 'never'}, next ${steward.nextVerificationAt}, earliest expiry ${steward.earliestExpiry ?? 'none'})`
          : '';
        const trouble = steward?.lastRoundError
          ? `\n  last round:   not completed at ${steward.lastRoundError.at}: ${steward.lastRoundError.message} (next try ${steward.lastRoundError.retryAt})`
          : '';
        const detection = steward?.detection ? `\n  verification: ${describeDetection(steward.detection)}` : '';
        const unaudited =
          (steward?.audit ? `\n  audit log:    ${(await auditCheck()).describeAuditHealth(steward.audit)}` : '') +
          (steward?.unauditedEvents
            ? `\n  audit:        ${steward.unauditedEvents} events waiting for a provider to store them`
            : '');
        // Every piece and its copies, read from the replica table the steward references (checked block by block).
        const replicas = steward
          ? (steward.replicas ??
            (await (await stewardReads()).readReplicaTable(config, steward.replicaTable?.tableCid ?? null)).replicas)
          : [];
        const pieces = piecesOf(replicas);
        const lines = pieces.map(
          (p) =>
            `  ${p.shard < 0 ? 'manifest' : `shard ${p.shard}`}\t${p.pieceCid}\t${p.copies.map((c) => `${c.providerId}:${c.state}`).join(' ')}`,
        );
        const table = pieces.length ? `\n  pieces (${pieces.length}):\n${lines.join('\n')}` : '';
        out.result(
          { status: d.status.name, ...s, steward, pieces },
          `status: COMPLETED\n${describeArchive(s)}${health}${detection}${trouble}${unaudited}${table}`,
        );
      } else if (d.status.name === 'RUNNING') {
        const p = await query(() => handle.query(archiveProgressQuery));
        out.result(
          { status: d.status.name, progress: p },
          `status: RUNNING, stage ${p.stage}, shards ${p.shardsReplicated}/${p.shards} replicated`,
        );
      } else {
        out.result({ status: d.status.name }, `status: ${d.status.name}`);
      }
    },
    readOnly(out),
  );
}

/** Create (or update) the Temporal Schedule that sweeps every steward periodically. */
async function cmdScheduleSweeps(config: Config, v: Record<string, unknown>, out: Out): Promise<void> {
  const every = (v.every as string | undefined) ?? '1 day';
  const [{ ScheduleAlreadyRunning }, { withRuntime }, { fleetSweep }] = await Promise.all([
    temporalClient(),
    runtime(),
    import('../workflows/index.js'),
  ]);
  await withRuntime(
    config,
    async ({ client, config: cfg }) => {
      const scheduleId = 'provenant-fleet-sweep';
      const action = {
        type: 'startWorkflow' as const,
        workflowType: fleetSweep,
        taskQueue: cfg.temporal.taskQueue,
        args: [{}] as [Record<string, never>],
      };
      try {
        await client.schedule.create({ scheduleId, spec: { intervals: [{ every: every as never }] }, action });
      } catch (err) {
        if (!(err instanceof ScheduleAlreadyRunning)) throw err;
        await client.schedule
          .getHandle(scheduleId)
          .update((prev) => ({ ...prev, spec: { intervals: [{ every: every as never }] }, action }));
      }
      out.result(
        { scheduleId, every },
        `schedule ${scheduleId}: every ${every}, a fleet sweep asks every steward to verify`,
      );
    },
    { worker: false, log: out.info },
  );
}

async function cmdAudit(config: Config, pos: string[], out: Out): Promise<number> {
  if (!pos[0]) throw new UsageError('audit needs a dataset id');
  const [{ withRuntime }, { stewardOf }, { stewardStatusQuery }, { ManifestNotFoundError }] = await Promise.all([
    runtime(),
    kit(),
    api(),
    errors(),
  ]);
  return withRuntime(
    config,
    async ({ client, query }) => {
      const steward = await stewardOf(client, pos[0]!);
      const st = await query(() => steward.query(stewardStatusQuery));
      if (!st.auditHead) throw new ManifestNotFoundError(`dataset '${pos[0]}' has no audit records yet`);
      const { records, problems } = await (await stewardReads()).readAudit(config, st.auditHead);
      const lines = records.map(
        (r) =>
          `#${r.seq} ${r.time} ${r.kind.padEnd(7)} ${r.providerId ?? '-'} ${r.pieceCid ? r.pieceCid.slice(-12) : '-'} ${r.result}${r.challenges !== undefined ? ` (${r.challenges} challenges)` : ''}`,
      );
      lines.push(
        problems.length
          ? `CHAIN BROKEN: ${problems.map((p) => `${p.problem} ${p.providerId ?? ''} ${p.cid}: ${p.detail}`).join('; ')}`
          : `chain intact: ${records.length} records, head ${st.auditHead}`,
      );
      // The steward's own check of the stored copies (it re-stores missing or corrupt ones each round).
      if (st.audit) lines.push(`steward's last check: ${(await auditCheck()).describeAuditHealth(st.audit)}`);
      out.result({ head: st.auditHead, records, problems, steward: st.audit ?? null }, lines.join('\n'));
      return problems.length ? 1 : 0;
    },
    readOnly(out),
  );
}

async function cmdRestore(config: Config, pos: string[], v: Record<string, unknown>, out: Out): Promise<void> {
  const [ref, target] = pos;
  if (!ref || !target) throw new UsageError('restore needs <dataset|manifest-cid> <dir>');
  const [{ startRestore }, { withRuntime }, { resolveManifest }] = await Promise.all([
    archiveClient(),
    runtime(),
    kit(),
  ]);
  await withRuntime(
    config,
    async ({ client, config: cfg }) => {
      const manifestCid = await resolveManifest(client, ref);
      out.info(`restoring ${manifestCid} into ${path.resolve(target)}`);
      const paths = (v.path as string[] | undefined) ?? [];
      const handle = await startRestore(client, cfg, {
        manifestCid,
        target,
        force: !!v.force,
        ...(paths.length ? { paths } : {}),
      });
      const s = await handle.result();
      out.result(
        s,
        `restored ${s.files} files (${humanBytes(s.bytes)}) of ${s.datasetId} into ${s.target}; every block and file verified`,
      );
    },
    { log: out.info },
  );
}

/** Write an export of a manifest read from the providers; a dataset id needs the server to find its manifest. */
async function cmdExport(config: Config, pos: string[], v: Record<string, unknown>, out: Out): Promise<void> {
  const [ref] = pos;
  const format = v.format as string | undefined;
  const file = v.out as string | undefined;
  if (!ref || !format || !file) throw new UsageError('export needs <dataset|manifest-cid> --format F --out FILE');
  const [{ withRuntime }, { resolveManifest }, { parseCid }] = await Promise.all([
    runtime(),
    kit(),
    import('../activities/pack/cids.js'),
  ]);
  // Loaded here: the exports (and the providers they read) are not needed by any other command.
  const { EXPORT_FORMATS, exportManifest } = await import('../activities/evidence/export.js');
  if (!(EXPORT_FORMATS as readonly string[]).includes(format))
    throw new UsageError(`unknown export format '${format}' (one of ${EXPORT_FORMATS.join(', ')})`);
  const manifestCid = parseCid(ref)
    ? ref
    : await withRuntime(config, ({ client }) => resolveManifest(client, ref), { worker: false, log: out.info });
  const keyFile = v.key as string | undefined;
  const r = await exportManifest(config, manifestCid, format as ExportFormat, file, {
    ...(keyFile ? { keyFile } : {}),
    // SLSA names the archive run: ask the server for it (the manifest gives the dataset id).
    ...(format === 'slsa'
      ? {
          invocation: (datasetId: string) =>
            withRuntime(config, ({ client }) => archiveInvocation(client, config, datasetId, manifestCid, out), {
              worker: false,
              log: out.info,
            }),
        }
      : {}),
  });
  const signed = r.keyId ? `, signed by key ${r.keyId}` : '';
  out.result(
    r,
    `wrote ${r.format} export of ${r.datasetId} (manifest ${manifestCid}, ${r.files} files${signed}) to ${r.out}`,
  );
}

/** The archive run that wrote `manifestCid`: its workflow id always, its run id while the server keeps it. */
async function archiveInvocation(
  client: Client,
  config: Config,
  datasetId: string,
  manifestCid: string,
  out: Out,
): Promise<ArchiveInvocation> {
  const [{ WorkflowNotFoundError }, { archiveWorkflowId }] = await Promise.all([temporalClient(), api()]);
  const workflowId = archiveWorkflowId(datasetId);
  const known = { namespace: config.temporal.namespace, workflowId };
  try {
    const handle = client.workflow.getHandle(workflowId);
    const d = await handle.describe();
    const s = d.status.name === 'COMPLETED' ? ((await handle.result()) as ArchiveSummary) : undefined;
    if (s?.manifestCid !== manifestCid) {
      out.info(`the last run of ${workflowId} did not write ${manifestCid}: the provenance names no run id`);
      return known;
    }
    return {
      ...known,
      runId: d.runId,
      startedOn: d.startTime.toISOString(),
      ...(d.closeTime ? { finishedOn: d.closeTime.toISOString() } : {}),
    };
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
    out.info(`the server no longer knows ${workflowId}: the provenance names no run id`);
    return known;
  }
}

function genDemo(dir: string): void {
  const rnd = (n: number, seed: string) => {
    const out = Buffer.alloc(n);
    let off = 0;
    let i = 0;
    while (off < n) {
      const h = crypto.createHash('sha256').update(`${seed}:${i++}`).digest();
      off += h.copy(out, off);
    }
    return out;
  };
  const files: Record<string, Buffer> = {
    'README.txt': Buffer.from('Provenant demo dataset: a few files shaped like a small model release.\n'),
    'model/config.json': Buffer.from(JSON.stringify({ layers: 4, hidden: 256, vocab: 32000 }, null, 2)),
    'model/weights.bin': rnd(3 * 1024 * 1024 + 17, 'weights'),
    'data/train/part-0000.jsonl': rnd(200_000, 'train0'),
    'data/train/part-0001.jsonl': rnd(200_001, 'train1'),
    'data/eval/empty.txt': Buffer.alloc(0),
    'data/ünïcode näme.txt': Buffer.from('unicode names survive\n'),
  };
  for (const [rel, bytes] of Object.entries(files)) {
    const p = path.join(dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (!fs.existsSync(p)) fs.writeFileSync(p, bytes);
    fs.utimesSync(p, new Date(1_700_000_000_000), new Date(1_700_000_000_000));
  }
}

async function cmdDemo(config: Config, out: Out): Promise<void> {
  const src = path.join(config.dataDir, 'demo', 'source');
  genDemo(src);
  const target = fs.mkdtempSync(path.join(os.tmpdir(), 'provenant-demo-restore-'));
  const [{ startArchive, startRestore }, { withRuntime }] = await Promise.all([archiveClient(), runtime()]);
  await withRuntime(
    config,
    async ({ client, config: cfg }) => {
      const start = await startArchive(client, cfg, {
        dir: src,
        datasetId: 'demo',
        meta: { purpose: 'quick-start demo' },
      });
      const { handle } = start;
      out.info(describeStart(start, `archiving ${src}`));
      await follow(client, handle.workflowId, out);
      const s = await handle.result();
      out.info(describeArchive(s));
      out.info(`restoring into ${target}`);
      const r = await (await startRestore(client, cfg, { manifestCid: s.manifestCid, target, force: false })).result();
      // Byte-compare the restored tree with the source.
      let compared = 0;
      const walk = (rel: string) => {
        for (const d of fs.readdirSync(path.join(src, rel), { withFileTypes: true })) {
          const r2 = rel ? `${rel}/${d.name}` : d.name;
          if (d.isDirectory()) walk(r2);
          else {
            if (!fs.readFileSync(path.join(src, r2)).equals(fs.readFileSync(path.join(target, r2))))
              throw new Error(`restored file differs: ${r2}`);
            compared++;
          }
        }
      };
      walk('');
      out.result(
        { archive: s, restore: r, identicalFiles: compared },
        `demo ok: ${compared} files restored byte-identical into ${target}`,
      );
    },
    { log: out.info },
  );
}

async function cmdDev(config: Config, out: Out): Promise<void> {
  const { withRuntime } = await runtime();
  await withRuntime(
    config,
    async ({ config: cfg, embedded }) => {
      out.info(
        `Temporal at ${cfg.temporal.address}${embedded ? ' (embedded dev server)' : ''}; worker on '${cfg.temporal.taskQueue}'. Ctrl-C to stop.`,
      );
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    },
    { log: out.info },
  );
}

/** `--metrics-port N` over the config's `telemetry.prometheus.port`. */
function withMetricsPort(config: Config, flag: string | undefined): Config {
  if (flag === undefined) return config;
  const port = Number(flag);
  if (!/^\d+$/.test(flag) || port < 1 || port > 65535)
    throw new UsageError(`--metrics-port: a TCP port (1-65535), not '${flag}'`);
  const { telemetry } = config;
  return { ...config, telemetry: { ...telemetry, prometheus: { ...telemetry.prometheus, port } } };
}

export async function main(argv: string[]): Promise<number> {
  // Commands in cli/commands/ parse their own arguments.
  const command = argv[0] !== undefined ? COMMANDS[argv[0]] : undefined;
  if (command) return command.run(argv.slice(1));
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        replicas: { type: 'string' },
        meta: { type: 'string', multiple: true },
        'derived-from': { type: 'string', multiple: true },
        id: { type: 'string' },
        provider: { type: 'string', multiple: true },
        force: { type: 'boolean' },
        json: { type: 'boolean' },
        path: { type: 'string', multiple: true },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        every: { type: 'string' },
        format: { type: 'string' },
        out: { type: 'string' },
        key: { type: 'string' },
        's3-endpoint': { type: 'string' },
        's3-region': { type: 'string' },
        's3-path-style': { type: 'boolean' },
        's3-access-key-id-env': { type: 'string' },
        's3-secret-access-key-env': { type: 'string' },
        'http-authorization-env': { type: 'string' },
        'metrics-port': { type: 'string' },
      },
    });
  } catch (err) {
    process.stderr.write(`provenant: UsageError: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  const [cmd, ...pos] = positionals;
  const out = makeOut(!!v.json);
  if (v.help || !cmd) {
    process.stdout.write(USAGE + '\n');
    return v.help ? 0 : 2;
  }
  try {
    const config = (await import('../config/load.js')).loadConfig({ file: v.config });
    switch (cmd) {
      case 'archive':
        await cmdArchive(config, pos, v, out);
        break;
      case 'status':
        await cmdStatus(config, pos, out);
        break;
      case 'restore':
        await cmdRestore(config, pos, v, out);
        break;
      case 'audit':
        return await cmdAudit(config, pos, out);
      case 'export':
        await cmdExport(config, pos, v, out);
        break;
      case 'schedule-sweeps':
        await cmdScheduleSweeps(config, v, out);
        break;
      case 'demo':
        await cmdDemo(config, out);
        break;
      case 'dev':
        await cmdDev(withMetricsPort(config, v['metrics-port']), out);
        break;
      case 'worker':
        await (await import('../workers/main.js')).runWorker(withMetricsPort(config, v['metrics-port']));
        break;
      default:
        throw new UsageError(`unknown command '${cmd}'`);
    }
    return 0;
  } catch (err) {
    const reason = (await kit()).failureReason(err).split('\n')[0];
    if (out.json) process.stdout.write(JSON.stringify({ error: reason }) + '\n');
    process.stderr.write(`provenant: ${reason}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}
