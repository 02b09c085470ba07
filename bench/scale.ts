/**
 * `npm run bench:scale [-- options]`: an archive of many shards, end to end, on an embedded
 * Temporal dev server with the real worker: generated files in 64 KiB shards of 16 KiB leaves
 * (10,000 shards by default, about 480 MiB), 2 copies on 2 local providers; then a steward
 * verification round (verifyNow), the status view (every piece listed in the replica table with
 * its copies), a full restore and a `--path` restore, both compared byte for byte with the
 * source. Prints wall times, and the largest payload and the longest history of every workflow
 * involved, read from the server: it fails (exit 1) over 256 KiB or over 10,000 events.
 *
 * Options: --shards N   shards to make, about (default 10000; a few more are made)
 *          --dir DIR    where the data is generated (default: the OS temp dir)
 *          --keep       keep the generated data
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ConfigInput } from '../config/schema.js';
import { readReplicaTable } from '../activities/steward/activities.js';
import { stewardStatusQuery, verifyNowUpdate } from '../shared/api.js';
import { startArchive, startRestore } from '../workers/client.js';
import { startTemporal, testConfig, withWorker } from '../tests/helpers/env.js';
import { workflowTree, type WorkflowHistory } from '../tests/helpers/histories.js';

const KiB = 1024;
const MAX_PAYLOAD = 256 * KiB;
const MAX_EVENTS = 10_000;
const SHARD_BYTES = 64 * KiB;
const CHUNK_BYTES = 16 * KiB;
/** Content per shard, about (measured): the rest is CAR framing, file nodes and shards closed early. */
const CONTENT_PER_SHARD = 48 * KiB;
const FILE_BYTES = 300 * KiB;
const FILES_PER_DIR = 200;

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const opts = {
  shards: Number(option('shards', '10000')),
  dir: option('dir', os.tmpdir()),
  keep: process.argv.includes('--keep'),
  /** Pack in units of this many shards (pack.unitShards); 0: one pack on the scanning host. */
  units: Number(option('units', '0')),
};

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const log = (m: string) => console.log(`[scale] ${m}`);

/** Files of random bytes, FILES_PER_DIR per directory, about `opts.shards` shards' worth. */
function generate(src: string): { files: number; bytes: number } {
  const total = opts.shards * CONTENT_PER_SHARD;
  let bytes = 0;
  let files = 0;
  while (bytes < total) {
    const dir = path.join(src, `d${String(Math.floor(files / FILES_PER_DIR)).padStart(4, '0')}`);
    if (files % FILES_PER_DIR === 0) fs.mkdirSync(dir, { recursive: true });
    // Sizes vary around FILE_BYTES (files split across shards, and small ones).
    const size = Math.min(total - bytes, files % 7 === 0 ? 3 * KiB + files : FILE_BYTES + (files % 13) * 1111);
    fs.writeFileSync(path.join(dir, `f${files}.bin`), crypto.randomBytes(size));
    bytes += size;
    files++;
  }
  return { files, bytes };
}

/** Both trees hold the same files with the same bytes (`only`: the source's files below it). */
function compareTrees(src: string, out: string, only?: string): number {
  let compared = 0;
  const walk = (rel: string) => {
    for (const d of fs.readdirSync(path.join(src, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) walk(r);
      else {
        const a = fs.readFileSync(path.join(src, r));
        const b = fs.readFileSync(path.join(out, r));
        if (!a.equals(b)) throw new Error(`${r}: restored bytes differ`);
        compared++;
      }
    }
  };
  walk(only ?? '');
  const count = (dir: string): number =>
    fs
      .readdirSync(dir, { withFileTypes: true })
      .reduce((n, d) => n + (d.isDirectory() ? count(path.join(dir, d.name)) : 1), 0);
  if (count(out) !== compared) throw new Error(`${out}: ${count(out)} files restored, ${compared} expected`);
  return compared;
}

async function main() {
  const root = fs.mkdtempSync(path.join(opts.dir, 'pv-scale-'));
  const src = path.join(root, 'src');
  try {
    let t = Date.now();
    const gen = generate(src);
    log(`generated ${gen.files} files, ${(gen.bytes / 1024 ** 2).toFixed(0)} MiB in ${seconds(Date.now() - t)}`);

    const env = await startTemporal({
      skip: (m: string) => {
        throw new Error(m);
      },
    });
    if (!env) throw new Error('no Temporal server');
    const config = testConfig(path.join(root, 'home'), {
      pack: { shardBytes: SHARD_BYTES, chunkBytes: CHUNK_BYTES, ...(opts.units ? { unitShards: opts.units } : {}) },
      replication: { copies: 2 },
      steward: { verifyEvery: '30 days' },
      providers: [1, 2].map((i) => ({ kind: 'local', id: `local-${i}`, path: path.join(root, `provider-${i}`) })),
    } as Partial<ConfigInput>);
    const figures = await withWorker(env, config, async () => {
      const histories: WorkflowHistory[] = [];
      t = Date.now();
      const { handle } = await startArchive(env.client, config, { dir: src, datasetId: 'scale' });
      const summary = await handle.result();
      const archiveMs = Date.now() - t;
      log(
        `archived ${summary.shards} shards (${summary.files} files) in ${seconds(archiveMs)}: ${summary.manifestCid}`,
      );
      histories.push(...(await workflowTree(env.client, handle.workflowId)));
      log(
        `archive and its ${histories.length - 1} children: longest history ${Math.max(...histories.map((h) => h.events))} events, largest payload ${Math.max(...histories.map((h) => h.largestPayload))} bytes`,
      );

      const steward = env.client.workflow.getHandle(summary.stewardWorkflowId!);
      t = Date.now();
      const verified = await steward.executeUpdate(verifyNowUpdate);
      const verifyMs = Date.now() - t;
      if (verified.health !== 'healthy' || verified.lastRoundError)
        throw new Error(`steward round: ${verified.health} ${verified.lastRoundError ?? ''}`);
      log(`verification round in ${seconds(verifyMs)}: ${verified.replicaCount} replicas, ${verified.health}`);

      // `provenant status <dataset>`: every piece and its copies, from the replica table.
      const status = await steward.query(stewardStatusQuery);
      const table = await readReplicaTable(config, status.replicaTable!.tableCid);
      const copies = new Map<string, number>();
      for (const r of table.replicas)
        if (r.state === 'healthy') copies.set(r.pieceCid, (copies.get(r.pieceCid) ?? 0) + 1);
      if (copies.size !== summary.shards + 1 || [...copies.values()].some((n) => n !== 2))
        throw new Error(`status lists ${copies.size} pieces (${summary.shards + 1} expected, 2 copies each)`);
      log(`status: ${copies.size} pieces listed, 2 healthy copies each`);

      t = Date.now();
      const full = await startRestore(env.client, config, {
        manifestCid: summary.manifestCid,
        target: path.join(root, 'restored'),
        force: false,
      });
      await full.result();
      const restoreMs = Date.now() - t;
      const n = compareTrees(src, path.join(root, 'restored'));
      log(`full restore in ${seconds(restoreMs)}: ${n} files byte-identical`);

      t = Date.now();
      const one = 'd0001';
      const partial = await startRestore(env.client, config, {
        manifestCid: summary.manifestCid,
        target: path.join(root, 'restored-path'),
        force: false,
        paths: [one],
      });
      await partial.result();
      const pathMs = Date.now() - t;
      const m = compareTrees(src, path.join(root, 'restored-path'), one);
      log(`--path ${one} restore in ${seconds(pathMs)}: ${m} files byte-identical`);

      histories.push(...(await workflowTree(env.client, summary.stewardWorkflowId!)));
      histories.push(...(await workflowTree(env.client, full.workflowId)));
      histories.push(...(await workflowTree(env.client, partial.workflowId)));
      return { summary, histories, archiveMs, verifyMs, restoreMs, pathMs };
    });
    await env.teardown();

    const { histories } = figures;
    const longest = histories.reduce((a, b) => (b.events > a.events ? b : a));
    const largest = histories.reduce((a, b) => (b.largestPayload > a.largestPayload ? b : a));
    console.log(
      [
        '',
        `shards                ${figures.summary.shards} (+ manifest), ${figures.summary.files} files, ${(figures.summary.bytes / 1024 ** 2).toFixed(0)} MiB`,
        `workflows read        ${histories.length} (runs: archive, replication children, steward, restores)`,
        `longest history       ${longest.events} events (${longest.workflowId}); bound ${MAX_EVENTS}`,
        `largest payload       ${largest.largestPayload} bytes (${largest.workflowId}); bound ${MAX_PAYLOAD}`,
        `archive               ${seconds(figures.archiveMs)}`,
        `verification round    ${seconds(figures.verifyMs)}`,
        `full restore          ${seconds(figures.restoreMs)}`,
        `--path restore        ${seconds(figures.pathMs)}`,
      ].join('\n'),
    );
    if (longest.events > MAX_EVENTS || largest.largestPayload > MAX_PAYLOAD) {
      console.error('[scale] over a bound');
      process.exitCode = 1;
    }
  } finally {
    if (opts.keep) log(`kept ${root}`);
    else fs.rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
