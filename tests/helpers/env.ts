/** Shared test plumbing: real Temporal dev server, temp dirs, generated trees, skip rules. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { Runtime, DefaultLogger, Worker } from '@temporalio/worker';
import { resolveTemporalCli } from '../../workers/temporal-cli.js';
import { parseConfig } from '../../config/load.js';
import type { Config, ConfigInput } from '../../config/schema.js';
import { ProvenantPlugin } from '../../workers/plugin.js';

/**
 * CI mode: a test that cannot run fails instead of skipping. The helpers below throw; any other
 * skip (a direct `t.skip()`) is failed by tests/helpers/require-all-reporter.ts.
 */
export const REQUIRE_ALL = process.env.PROVENANT_REQUIRE_ALL === '1';

/**
 * A node binary that any uid can execute: this one when every directory above it lets others
 * through, else a copy under the temp directory (e.g. a Node kept under root's home).
 */
export function nodeForAnyUid(): string {
  const others = (p: string, bits: number) => (fs.statSync(p).mode & bits) === bits;
  let ok = others(process.execPath, 0o005);
  for (let dir = path.dirname(process.execPath); ok && dir !== path.dirname(dir); dir = path.dirname(dir))
    ok = others(dir, 0o001);
  if (ok) return process.execPath;
  const dir = path.join(os.tmpdir(), `pv-node-${process.version}-${process.arch}`);
  const copy = path.join(dir, 'node');
  if (!fs.existsSync(copy)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    const tmp = `${copy}.${process.pid}`;
    fs.copyFileSync(process.execPath, tmp);
    fs.chmodSync(tmp, 0o755);
    fs.renameSync(tmp, copy);
  }
  fs.chmodSync(dir, 0o755);
  return copy;
}

/**
 * Every temp dir of this process lives under one root, `pv-run-<pid>`, removed when the process
 * exits (each test file runs in a process of its own). The `npm test` reporter also removes the
 * roots of test processes that died without exiting (tests/helpers/require-all-reporter.ts), so
 * a run leaves nothing behind in the temp directory: repeated runs used to fill the disk.
 */
const tmpRoot = path.join(os.tmpdir(), `pv-run-${process.pid}`);
let tmpRootMade = false;

export function tmpDir(prefix = 'pv-test-'): string {
  if (!tmpRootMade) {
    // 0o755: some tests run a process as another uid inside their temp dirs.
    fs.mkdirSync(tmpRoot, { recursive: true, mode: 0o755 });
    process.once('exit', () => removeTmpRoot(tmpRoot));
    tmpRootMade = true;
  }
  return fs.mkdtempSync(path.join(tmpRoot, prefix));
}

/** Remove a run's temp root; a mount or a still-running server's files may keep part of it. */
export function removeTmpRoot(dir: string): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
  } catch {
    // Best effort: what is left is reported by nobody and swept by the next run's reporter.
  }
}

/** Deterministic pseudo-random bytes. */
export function bytesOf(n: number, seed: string): Buffer {
  const out = Buffer.alloc(n);
  let off = 0;
  let i = 0;
  while (off < n) off += crypto.createHash('sha256').update(`${seed}/${i++}`).digest().copy(out, off);
  return out;
}

export function writeTree(root: string, files: Record<string, Buffer | string>): void {
  for (const [rel, data] of Object.entries(files)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, data);
  }
}

/** Every regular file below `root`, relative path → contents. */
export function readTree(root: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (rel: string) => {
    for (const d of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) walk(r);
      else if (d.isFile()) out.set(r, fs.readFileSync(path.join(root, r)));
    }
  };
  walk('');
  return out;
}

let runtimeInstalled = false;
function quietRuntime() {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: new DefaultLogger('ERROR') });
}

/**
 * Start the real Temporal dev server (from the CLI binary), or skip with the reason when no
 * binary can be had — except in CI (PROVENANT_REQUIRE_ALL=1), where that is a failure.
 */
export async function startTemporal(
  t: TestContext | { skip(msg: string): void },
  o: {
    /** Server dynamic config, e.g. lowered limits: `{ 'limit.blobSize.error': 16384 }`. */
    dynamicConfig?: Record<string, number | string>;
  } = {},
): Promise<TestWorkflowEnvironment | undefined> {
  const bin = resolveTemporalCli({ build: true, log: (m) => console.error(`[test] ${m}`) });
  if (!bin) {
    const why = 'Temporal CLI not found and could not be built (run `npm run setup`)';
    if (REQUIRE_ALL) throw new Error(why);
    t.skip(why);
    return undefined;
  }
  quietRuntime();
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: bin },
      ip: '127.0.0.1',
      searchAttributes: [
        defineSearchAttributeKey('ProvenantHealth', SearchAttributeType.KEYWORD),
        defineSearchAttributeKey('ProvenantDataset', SearchAttributeType.KEYWORD),
      ],
      extraArgs: Object.entries(o.dynamicConfig ?? {}).flatMap(([k, v]) => ['--dynamic-config-value', `${k}=${v}`]),
    },
  });
}

export function testConfig(dataDir: string, over: Partial<ConfigInput> = {}): Config {
  return parseConfig({
    dataDir,
    temporal: { taskQueue: `pv-${crypto.randomBytes(4).toString('hex')}`, heartbeatTimeout: '5 seconds' },
    pack: { shardBytes: 2 * 1024 * 1024 },
    ...over,
  } as ConfigInput);
}

/** Run `fn` with an in-process Provenant worker (plugin) on the test server. */
export async function withWorker<T>(env: TestWorkflowEnvironment, config: Config, fn: () => Promise<T>): Promise<T> {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue: config.temporal.taskQueue,
    plugins: [new ProvenantPlugin({ config })],
  });
  return worker.runUntil(fn());
}
