/**
 * Metrics, traces and lineage on the real Temporal dev server: a worker with the built-in
 * Prometheus endpoint is scraped while it archives, verifies, repairs and restores; a worker given
 * the user's own span processor reports workflow and activity spans to it; and OpenLineage run
 * events of archives reach a local HTTP receiver.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { readReplicaTable } from '../../activities/steward/activities.js';
import { METRICS } from '../../activities/telemetry.js';
import type { Config } from '../../config/schema.js';
import { startArchive, startRestore } from '../../workers/client.js';
import { ProvenantPlugin } from '../../workers/plugin.js';
import { verifyNowUpdate } from '../../workflows/index.js';
import { bytesOf, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import { CLI, runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/servers.js';

const MiB = 1024 * 1024;

interface LineageEvent {
  eventType: string;
  eventTime: string;
  run: { runId: string; facets: { errorMessage?: { message: string } } };
  job: { namespace: string; name: string };
  inputs: { namespace: string; name: string }[];
  outputs: { namespace: string; name: string }[];
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (comments and blank lines skipped). */
function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of the samples named `name` whose labels include `want`. */
function total(samples: Sample[], name: string, want: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + s.value, 0);
}

async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  return parseExposition(await res.text());
}

function piecesDir(config: Config, providerId: string): string {
  const p = config.providers.find((x) => x.id === providerId)!;
  if (p.kind !== 'local') throw new Error('local providers only');
  return path.join(p.path, 'pieces');
}

describe('metrics, traces and lineage', () => {
  let env: TestWorkflowEnvironment | undefined;
  before(async (t) => {
    env = await startTemporal(t as never);
  });
  after(async () => {
    await env?.teardown();
  });

  it('serves /metrics while the worker runs, and its counters move with each provider as it archives, verifies, repairs and restores', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const dir = tmpDir('pv-metrics-');
    const src = path.join(dir, 'src');
    writeTree(src, { 'a.bin': bytesOf(5 * MiB + 11, 'm-a'), 'b/c.bin': bytesOf(MiB, 'm-c'), 'b/d.txt': 'metrics' });
    const srcBytes = 5 * MiB + 11 + MiB + 'metrics'.length;
    const port = await freePort();
    const config = testConfig(path.join(dir, 'home'), {
      telemetry: { prometheus: { port } },
      steward: { verifyEvery: '1 hour' },
    });
    const plugin = new ProvenantPlugin({ config });
    assert.equal(plugin.metrics?.url, `http://127.0.0.1:${port}/metrics`);
    const url = plugin.metrics.url;
    await assert.rejects(fetch(url), 'nothing listens before a worker runs');
    const worker = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      taskQueue: config.temporal.taskQueue,
      plugins: [plugin],
    });
    const seen: Sample[][] = [];
    const { before, summary, archived, verified, checked, round, repaired, restored } = await worker.runUntil(
      async () => {
        // The endpoint comes up with the worker.
        for (
          let i = 0;
          i < 50 &&
          !(await fetch(url).then(
            (r) => r.ok,
            () => false,
          ));
          i++
        )
          await sleep(100);
        const before = await scrape(url);
        const { handle } = await startArchive(env!.client, config, { dir: src, datasetId: 'metrics' });
        let done = false;
        const result = handle.result().finally(() => (done = true));
        while (!done) {
          seen.push(await scrape(url));
          await sleep(100);
        }
        const summary = await result;
        const archived = await scrape(url);
        const steward = env!.client.workflow.getHandle(summary.stewardWorkflowId!);
        const verified = await steward.executeUpdate(verifyNowUpdate);
        // A copy lost on local-1: the next round finds it missing and repairs it.
        const checked = await scrape(url);
        // A shard's copy lost on local-1: the next round finds it missing and repairs it.
        const { replicas } = await readReplicaTable(config, verified.replicaTable?.tableCid ?? null);
        const lost = replicas.find((r) => r.providerId === 'local-1' && r.shard >= 0);
        assert.ok(lost, 'local-1 holds a shard');
        fs.rmSync(path.join(piecesDir(config, 'local-1'), `${lost.pieceCid}.car`));
        const round = await steward.executeUpdate(verifyNowUpdate);
        const repaired = await scrape(url);
        const target = path.join(dir, 'restored');
        await (
          await startRestore(env!.client, config, { manifestCid: summary.manifestCid, target, force: false })
        ).result();
        const restored = await scrape(url);
        return { before, summary, archived, verified, checked, round, repaired, restored };
      },
    );

    const placed = (s: Sample[], provider?: string) =>
      total(s, `${METRICS.shardsPlaced}_total`, provider ? { provider } : {});
    assert.equal(placed(before), 0, 'nothing placed before the archive');
    assert.ok(seen.length > 0, 'scraped while the archive ran');
    // Scraped during the run: each scrape's count is at least the one before it, and the archive ends above the start.
    for (let i = 1; i < seen.length; i++) assert.ok(placed(seen[i]!) >= placed(seen[i - 1]!), 'counters never go back');

    assert.equal(total(archived, `${METRICS.scannedBytes}_total`), srcBytes, 'bytes scanned: the source');
    assert.ok(total(archived, `${METRICS.packedBytes}_total`) > srcBytes, 'CAR bytes packed: data plus framing');
    assert.ok(total(archived, `${METRICS.packedShards}_total`) >= summary.shards);
    // Each data shard twice, on the providers the summary names; the manifest's copies are places too.
    for (const [provider, n] of Object.entries(summary.replicas)) {
      assert.ok(
        placed(archived, provider) >= n,
        `${provider}: ${placed(archived, provider)} placed, summary says ${n}`,
      );
      assert.ok(total(archived, `${METRICS.placedBytes}_total`, { provider }) > 0, `${provider}: bytes placed`);
    }
    assert.ok(placed(archived) >= summary.shards * 2);
    assert.equal(total(archived, `${METRICS.shardsFailed}_total`), 0);
    // Replicas by health, from the replica table the archive built: the shards' copies and the manifest's.
    const healthy = total(archived, METRICS.replicas, { dataset: 'metrics', health: 'healthy' });
    assert.ok(healthy >= summary.shards * 2, `${healthy} healthy replicas`);
    assert.equal(total(archived, METRICS.replicas, { dataset: 'metrics' }), healthy, 'all of them healthy');

    // The verification round: every replica passed, on the providers holding them.
    const passed = (s: Sample[], provider: string) =>
      total(s, `${METRICS.verifications}_total`, { provider, result: 'passed' });
    for (const provider of Object.keys(summary.replicas))
      assert.ok(passed(checked, provider) > 0, `${provider} verified`);
    assert.equal(total(checked, `${METRICS.verifications}_total`, { result: 'failed' }), 0);

    // The lost copy: a failed verification on local-1, a repair, and the gauge healthy again.
    assert.equal(verified.health, 'healthy');
    assert.ok(round.counters.repairs >= 1, 'the steward repaired');
    assert.ok(total(repaired, `${METRICS.verifications}_total`, { provider: 'local-1', result: 'failed' }) >= 1);
    assert.ok(total(repaired, `${METRICS.repairs}_total`) >= 1);
    assert.equal(total(repaired, METRICS.replicas, { dataset: 'metrics', health: 'missing' }), 0);

    // The restore's latency, in the histogram.
    assert.equal(total(restored, `${METRICS.retrievalSeconds}_count`, { kind: 'full' }), 1);
    assert.ok(total(restored, `${METRICS.retrievalSeconds}_sum`, { kind: 'full' }) > 0);
    assert.ok(restored.some((s) => s.name === `${METRICS.retrievalSeconds}_bucket` && s.labels.le === '+Inf'));

    // The endpoint goes with the last worker.
    await assert.rejects(fetch(url), 'closed after the worker stopped');
  });

  it("reports workflow and activity spans to the user's own span processor and tracer provider", async (t) => {
    if (!env) return t.skip('no Temporal server');
    const dir = tmpDir('pv-tracing-');
    const src = path.join(dir, 'src');
    writeTree(src, { 'weights.bin': bytesOf(MiB + 3, 'trace'), 'card.md': 'traced' });
    const config = testConfig(path.join(dir, 'home'), { steward: { verifyEvery: '1 hour' } });
    const exporter = new InMemorySpanExporter();
    const spanProcessor = new SimpleSpanProcessor(exporter);
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [spanProcessor] });
    const plugin = new ProvenantPlugin({ config, tracing: { spanProcessor, tracerProvider } });
    assert.equal(plugin.metrics, undefined, 'no metrics endpoint unless configured');
    const worker = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      taskQueue: config.temporal.taskQueue,
      plugins: [plugin],
    });
    const summary = await worker.runUntil(async () =>
      (await startArchive(env!.client, config, { dir: src, datasetId: 'traced' })).handle.result(),
    );
    assert.ok(summary.manifestCid);
    await spanProcessor.forceFlush();
    const names = new Set(exporter.getFinishedSpans().map((s) => s.name));
    // Workflow spans, made in the sandbox and handed to the processor through the sink.
    assert.ok(names.has('RunWorkflow:archiveDataset'), `workflow span among ${[...names].join(', ')}`);
    assert.ok(names.has('StartActivity:provenantScan'), 'the workflow scheduling an activity');
    // Activity spans, from the tracer provider: on the task queue's worker and on the host-queue worker.
    assert.ok(names.has('RunActivity:provenantHostQueue'), 'an activity of the shared queue');
    assert.ok(names.has('RunActivity:provenantScan'), 'an activity of the host queue');
    await tracerProvider.shutdown();
  });

  it('sends OpenLineage run events to the configured endpoint: START and COMPLETE (source in, manifest out), START and FAIL', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const events: { path?: string; authorization?: string; body: LineageEvent }[] = [];
    const receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        events.push({
          path: req.url,
          authorization: req.headers.authorization,
          body: JSON.parse(body) as LineageEvent,
        });
        res.setHeader('content-type', 'application/json');
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => receiver.close(() => resolve())));
    const { port } = receiver.address() as AddressInfo;
    const dir = tmpDir('pv-lineage-');
    const src = path.join(dir, 'src');
    writeTree(src, { 'w.bin': bytesOf(MiB, 'lineage'), 'README.md': 'lineage' });
    process.env.PV_TEST_LINEAGE_TOKEN = 'secret-token';
    const config = testConfig(path.join(dir, 'home'), {
      telemetry: {
        openLineage: {
          url: `http://127.0.0.1:${port}/api/v1/lineage`,
          namespace: 'lab',
          apiKeyEnv: 'PV_TEST_LINEAGE_TOKEN',
        },
      },
      steward: { verifyEvery: '1 hour' },
    });
    const { summary, runId, failedRunId } = await withWorker(env, config, async () => {
      const { handle } = await startArchive(env!.client, config, { dir: src, datasetId: 'lineage' });
      const summary = await handle.result();
      const runId = (await handle.describe()).runId;
      // Four copies on three providers: refused by the placement check once the archive has started.
      const bad = await startArchive(env!.client, config, { dir: src, datasetId: 'lineage-bad', copies: 4 });
      await assert.rejects(bad.handle.result());
      return { summary, runId, failedRunId: (await bad.handle.describe()).runId };
    });
    const of = (id: string) => events.filter((e) => e.body.run.runId === id).map((e) => e.body);
    assert.deepEqual(
      of(runId).map((e) => e.eventType),
      ['START', 'COMPLETE'],
    );
    const [start, complete] = of(runId) as [LineageEvent, LineageEvent];
    assert.deepEqual(start.job, { namespace: 'lab', name: 'archive.lineage' });
    assert.deepEqual(
      start.inputs.map((d) => d.name),
      [path.resolve(src)],
    );
    assert.ok(start.inputs[0]!.namespace.startsWith('file://'));
    assert.deepEqual(start.outputs, []);
    assert.deepEqual(complete.outputs, [{ namespace: 'ipfs', name: summary.manifestCid }]);
    assert.ok(!Number.isNaN(Date.parse(complete.eventTime)));
    assert.ok(events.every((e) => e.path === '/api/v1/lineage' && e.authorization === 'Bearer secret-token'));
    const failed = of(failedRunId);
    assert.deepEqual(
      failed.map((e) => e.eventType),
      ['START', 'FAIL'],
    );
    assert.ok(failed[1]!.run.facets.errorMessage?.message, 'the failure says why');
  });

  it('provenant worker --metrics-port N serves /metrics on loopback; a bad port is a usage error', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const root = tmpDir('pv-metrics-cli-');
    const cfg = path.join(root, 'worker.yaml');
    fs.writeFileSync(
      cfg,
      `dataDir: ${JSON.stringify(path.join(root, 'home'))}\ntemporal:\n  address: ${env.address}\n  taskQueue: pv-metrics-cli\n`,
    );
    const bad = await runCli(['worker', '--config', cfg, '--metrics-port', 'ninety'], { isolated: true });
    assert.equal(bad.code, 2, bad.stderr);
    const port = await freePort();
    const isolated = { ...process.env };
    for (const k of ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'PROVENANT_TASK_QUEUE', 'PROVENANT_CONFIG'])
      delete isolated[k];
    const worker = spawn(process.execPath, [CLI, 'worker', '--config', cfg, '--metrics-port', String(port)], {
      env: isolated,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    worker.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    try {
      const url = `http://127.0.0.1:${port}/metrics`;
      let res: Response | undefined;
      for (let i = 0; i < 300 && !res?.ok; i++) {
        res = await fetch(url).catch(() => undefined);
        if (!res?.ok) await sleep(100);
      }
      assert.equal(res?.status, 200, `no /metrics at ${url}: ${stderr}`);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      assert.match(stderr, new RegExp(`metrics at ${url.replace(/[.]/g, '\\.')}`));
      assert.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);
    } finally {
      worker.kill('SIGTERM');
      await exited;
    }
  });
});
