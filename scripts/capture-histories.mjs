#!/usr/bin/env node
/**
 * Capture replay fixtures: run today's workflows for real on a Temporal dev server and write
 * their histories as JSON for `Worker.runReplayHistory` (tests/replay/replay.test.ts).
 *
 *   node scripts/capture-histories.mjs <built Provenant tree> [out dir]
 *
 * The tree is imported from `<tree>/dist/...` at run time (this file is plain JS, not compiled
 * with the main tree), so histories can be captured from an older commit checked out elsewhere:
 * see tests/replay/capture.md. The Temporal CLI comes from TEMPORAL_CLI_PATH or
 * ~/.cache/provenant/bin/temporal (built by scripts/setup.sh). Nothing here calls the network.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [treeArg, outArg] = process.argv.slice(2);
if (!treeArg) {
  console.error('usage: capture-histories.mjs <built Provenant tree> [out dir]');
  process.exit(2);
}
const tree = path.resolve(treeArg);
const outDir = path.resolve(outArg ?? path.join(tree, 'tests/replay/fixtures'));
const temporalBin = process.env.TEMPORAL_CLI_PATH ?? path.join(os.homedir(), '.cache/provenant/bin/temporal');
if (!fs.existsSync(path.join(tree, 'dist/workflows/index.js')))
  throw new Error(`${tree} is not built (no dist/workflows/index.js)`);
if (!fs.existsSync(temporalBin))
  throw new Error(`no Temporal CLI at ${temporalBin} (run scripts/setup.sh or set TEMPORAL_CLI_PATH)`);

// The tree's own copies of the SDK (CommonJS), so its plugin and ours share one Temporal runtime.
const treeRequire = createRequire(path.join(tree, 'package.json'));
const { TestWorkflowEnvironment } = treeRequire('@temporalio/testing');
const { Runtime, DefaultLogger, Worker } = treeRequire('@temporalio/worker');
const { defineSearchAttributeKey, SearchAttributeType } = treeRequire('@temporalio/common');
const sdkHistoryToJSON = treeRequire('@temporalio/common/lib/proto-utils').historyToJSON;
/**
 * History → the JSON of Temporal's tools (what `historyFromJSON` reads). The SDK's own
 * `historyToJSON` throws "type must be a Type" when npm installs more than one copy of protobufjs
 * (its protojson and @temporalio/proto's types then come from different copies), so fall back to
 * the protojson of the copy @temporalio/proto itself loads.
 */
function historyToJSON(history) {
  try {
    return sdkHistoryToJSON(history);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    const protoRequire = createRequire(treeRequire.resolve('@temporalio/proto'));
    const proto = protoRequire('@temporalio/proto');
    const { patchProtobufRoot } = protoRequire('@temporalio/proto/lib/patch-protobuf-root');
    const type = patchProtobufRoot(proto).lookupType('temporal.api.history.v1.History');
    return JSON.stringify(
      protoRequire('protobufjs/ext/protojson').toJson(type, proto.temporal.api.history.v1.History.fromObject(history)),
    );
  }
}
const dist = (p) => import(pathToFileURL(path.join(tree, 'dist', p)).href);
const { parseConfig } = await dist('config/load.js');
const { ProvenantPlugin } = await dist('workers/plugin.js');
const { startArchive, startRestore } = await dist('workers/client.js');
const { fleetSweep } = await dist('workflows/index.js');

const MiB = 1024 * 1024;
/** Deterministic pseudo-random bytes (as tests/helpers/env.ts bytesOf). */
function bytesOf(n, seed) {
  const out = Buffer.alloc(n);
  for (let off = 0, i = 0; off < n;)
    off += crypto.createHash('sha256').update(`${seed}/${i++}`).digest().copy(out, off);
  return out;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what, fn, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'pv-capture-'));
const src = path.join(work, 'src');
for (const [rel, data] of Object.entries({
  'weights/model.bin': bytesOf(5 * MiB + 123, 'replay-model'),
  'weights/extra.bin': bytesOf(MiB + 7, 'replay-extra'),
  'config.json': '{"layers":2}',
  'README.txt': 'replay fixture dataset',
})) {
  fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
  fs.writeFileSync(path.join(src, rel), data);
}
const providers = ['local-1', 'local-2'].map((id) => ({ kind: 'local', id, path: path.join(work, 'providers', id) }));
const config = parseConfig({
  dataDir: path.join(work, 'home'),
  temporal: { taskQueue: 'pv-replay-capture', heartbeatTimeout: '5 seconds' },
  pack: { shardBytes: 2 * MiB },
  providers,
  replication: { copies: 2 },
  // Short timers so rounds run on their own; a few rounds per run so each run ends in continue-as-new.
  steward: { verifyEvery: '5 seconds', maxRoundsPerRun: 3, searchAttributes: true },
});

Runtime.install({ logger: new DefaultLogger('ERROR') });
const env = await TestWorkflowEnvironment.createLocal({
  server: {
    executable: { type: 'existing-path', path: temporalBin },
    ip: '127.0.0.1',
    searchAttributes: [
      defineSearchAttributeKey('ProvenantHealth', SearchAttributeType.KEYWORD),
      defineSearchAttributeKey('ProvenantDataset', SearchAttributeType.KEYWORD),
    ],
  },
});
const client = env.client;
const captured = [];
/** Fetch one closed (or running) run's history and remember it under `name`. */
async function capture(name, workflowId, runId, notes) {
  const handle = client.workflow.getHandle(workflowId, runId);
  const desc = await handle.describe();
  const history = await handle.fetchHistory();
  captured.push({
    name,
    workflowId,
    runId: desc.runId,
    workflowType: desc.type,
    status: desc.status.name,
    notes,
    json: historyToJSON(history),
  });
}
/** What each fixture must show, so a re-capture cannot quietly lose coverage. */
const WANT = {
  archive: [
    'START_CHILD_WORKFLOW_EXECUTION_INITIATED',
    'WORKFLOW_EXECUTION_SIGNALED',
    'WORKFLOW_EXECUTION_COMPLETED',
    'activity:provenantPutPiece',
  ],
  restore: ['WORKFLOW_EXECUTION_COMPLETED', 'activity:provenantRestore'],
  'steward-run1': [
    'WORKFLOW_EXECUTION_UPDATE_COMPLETED',
    'TIMER_FIRED',
    'UPSERT_WORKFLOW_SEARCH_ATTRIBUTES',
    'WORKFLOW_EXECUTION_CONTINUED_AS_NEW',
    'activity:provenantCopyPiece',
    'activity:provenantRetirePiece',
  ],
  'fleet-sweep': ['WORKFLOW_EXECUTION_COMPLETED', 'activity:provenantSweepStewards'],
  'steward-run2': [
    'signal:sweep',
    'signal:addReplicas',
    'WORKFLOW_EXECUTION_CONTINUED_AS_NEW',
    'activity:provenantVerifyReplicas',
  ],
};
/** Event types (without the EVENT_TYPE_ prefix), plus `activity:<type>` and `signal:<name>`. */
function features(events) {
  const out = [];
  for (const e of events) {
    out.push(e.eventType.replace(/^EVENT_TYPE_/, ''));
    if (e.activityTaskScheduledEventAttributes)
      out.push(`activity:${e.activityTaskScheduledEventAttributes.activityType.name}`);
    if (e.workflowExecutionSignaledEventAttributes)
      out.push(`signal:${e.workflowExecutionSignaledEventAttributes.signalName}`);
  }
  return out;
}

try {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue: config.temporal.taskQueue,
    plugins: [new ProvenantPlugin({ config })],
  });
  await worker.runUntil(async () => {
    // 1. Archive (≥ 3 shards over two local providers; starts the steward as a child).
    const { handle: archive } = await startArchive(client, config, {
      dir: src,
      datasetId: 'replay-fixture',
      meta: { purpose: 'replay' },
    });
    const summary = await archive.result();
    if (summary.shards < 3) throw new Error(`only ${summary.shards} shards`);
    console.error(`archived ${summary.manifestCid}: ${summary.shards} shards`);
    await capture(
      'archive',
      archive.workflowId,
      archive.firstExecutionRunId,
      `archiveDataset: ${summary.files} files, ${summary.shards} shards × 2 copies on two local providers, steward started`,
    );

    // 2. Steward run 1: lose a replica, verifyNow (a repair round), then timer rounds → continue-as-new.
    const steward = client.workflow.getHandle(summary.stewardWorkflowId);
    const run1 = (await steward.describe()).runId;
    const before = await steward.query('status');
    const victim = before.replicas.find((r) => r.providerId === 'local-2' && r.shard >= 0);
    fs.rmSync(path.join(providers[1].path, 'pieces', `${victim.pieceCid}.car`));
    const repaired = await steward.executeUpdate('verifyNow');
    if (repaired.counters.repairs < 1) throw new Error(`no repair: ${JSON.stringify(repaired.counters)}`);
    console.error(`steward run 1: repaired ${repaired.counters.repairs}, waiting for continue-as-new`);

    // 3. Restore the manifest to a temp dir (while the steward's timers run).
    const restore = await startRestore(client, config, {
      manifestCid: summary.manifestCid,
      target: path.join(work, 'restored'),
      force: false,
      workflowId: 'provenant-restore-replay-fixture',
    });
    const restored = await restore.result();
    console.error(`restored ${restored.files} files`);
    await capture(
      'restore',
      restore.workflowId,
      restore.firstExecutionRunId,
      'restoreDataset of the archive above to a temp dir',
    );

    const run2 = await waitFor('run 2', async () => {
      const d = await steward.describe();
      return d.runId !== run1 ? d.runId : undefined;
    });
    await capture(
      'steward-run1',
      steward.workflowId,
      run1,
      'stewardDataset run 1: archive audit, verifyNow update with a deleted replica repaired, timer-driven rounds, continue-as-new',
    );

    // 4. Steward run 2: a fleetSweep (sweep signal), addReplicas +1 (no third provider: degraded), addReplicas -1 → continue-as-new.
    const h2 = client.workflow.getHandle(steward.workflowId, run2);
    const status2 = () => h2.query('status');
    const r0 = (await status2()).rounds;
    const sweep = await client.workflow.start(fleetSweep, {
      taskQueue: config.temporal.taskQueue,
      workflowId: 'provenant-fleet-sweep-replay-fixture',
      args: [{}],
    });
    const swept = await sweep.result();
    if (swept.signalled < 1) throw new Error('fleetSweep signalled no steward');
    await capture(
      'fleet-sweep',
      sweep.workflowId,
      sweep.firstExecutionRunId,
      'fleetSweep signalling the running steward',
    );
    await waitFor('the sweep round', async () => (await status2()).rounds > r0);
    await h2.signal('addReplicas', 1);
    const r1 = (await status2()).rounds;
    await waitFor(
      'the addReplicas round',
      async () => (await steward.describe()).runId !== run2 || (await status2()).rounds > r1,
    );
    if ((await steward.describe()).runId === run2) await h2.signal('addReplicas', -1);
    await waitFor('run 3', async () => (await steward.describe()).runId !== run2);
    await capture(
      'steward-run2',
      steward.workflowId,
      run2,
      'stewardDataset run 2 (continued as new): sweep signal from fleetSweep, addReplicas +1 and -1 signals, rounds, continue-as-new',
    );
  });
} finally {
  await env.teardown();
}

// Write fixtures and an index with the ids replay needs (histories carry no workflow id).
fs.mkdirSync(outDir, { recursive: true });
const commit = (() => {
  try {
    return execFileSync('git', ['-C', tree, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
})();
const index = [];
for (const c of captured) {
  const file = `${c.name}.json`;
  const json = JSON.parse(c.json);
  const text = JSON.stringify(json, null, 1);
  if (text.includes(`${os.homedir()}/`) && os.homedir() !== '/') throw new Error(`${file} contains the home directory`);
  if (text.length > 300 * 1024)
    throw new Error(`${file} is ${Math.round(text.length / 1024)} KiB (keep fixtures under 300 KiB)`);
  const got = features(json.events);
  const missing = (WANT[c.name] ?? []).filter((w) => !got.includes(w));
  if (missing.length) throw new Error(`${file} lacks ${missing.join(', ')}: capture again`);
  fs.writeFileSync(path.join(outDir, file), `${text}\n`);
  index.push({
    file,
    workflowType: c.workflowType,
    workflowId: c.workflowId,
    runId: c.runId,
    status: c.status,
    events: json.events.length,
    notes: c.notes,
  });
  const tally = {};
  for (const f of got) tally[f] = (tally[f] ?? 0) + 1;
  console.error(
    `${file}: ${c.workflowType} ${c.status}, ${json.events.length} events, ${Math.round(text.length / 1024)} KiB\n  ${Object.entries(
      tally,
    )
      .map(([k, v]) => `${k}×${v}`)
      .join(' ')}`,
  );
}
fs.writeFileSync(
  path.join(outDir, 'index.json'),
  `${JSON.stringify({ capturedFrom: commit, capturedAt: new Date().toISOString(), fixtures: index }, null, 2)}\n`,
);
fs.rmSync(work, { recursive: true, force: true });
console.error(`wrote ${index.length} fixtures to ${outDir}`);
