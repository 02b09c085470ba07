/** The `provenant` CLI on its embedded default: dev server + in-process worker + local providers. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { locateManifest } from '../../activities/restore/restore.js';
import { LocalProvider } from '../../activities/providers/local.js';
import { resolveTemporalCli } from '../../workers/temporal-cli.js';
import { bytesOf, readTree, REQUIRE_ALL, tmpDir, writeTree } from '../helpers/env.js';

const CLI = path.resolve('dist/cli/provenant.js');

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The environment minus every variable that would win over a config file's Temporal settings. */
function envWithoutTemporal(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of [
    'TEMPORAL_ADDRESS',
    'TEMPORAL_NAMESPACE',
    'PROVENANT_TASK_QUEUE',
    'PROVENANT_CONFIG',
    'PROVENANT_EMBEDDED',
  ])
    delete env[k];
  return env;
}

function run(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('provenant CLI', () => {
  it('archives, reports status across restarts, restores, and refuses a non-empty target', async (t) => {
    if (!resolveTemporalCli({ build: true })) {
      if (REQUIRE_ALL) throw new Error('Temporal CLI unavailable');
      return t.skip('Temporal CLI unavailable');
    }
    const root = tmpDir('pv-cli-');
    const src = path.join(root, 'src');
    writeTree(src, { 'weights.bin': bytesOf(3 * 1024 * 1024 + 1, 'cli'), 'cfg/a.json': '{"a":1}', empty: '' });
    const env = {
      PROVENANT_DATA_DIR: path.join(root, 'home'),
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      PROVENANT_EMBEDDED: 'auto',
    };

    const a = await run(
      ['archive', src, '--id', 'cli-ds', '--replicas', '2', '--meta', 'model=llama-ft', '--meta', 'run=abc', '--json'],
      env,
    );
    assert.equal(a.code, 0, a.stderr);
    const summary = JSON.parse(a.stdout);
    assert.equal(summary.files, 3);
    assert.match(summary.manifestCid, /^bagu/);

    // The manifest records the user metadata and provenance.
    const provs = ['local-1', 'local-2', 'local-3'].map(
      (id) => new LocalProvider(id, path.join(env.PROVENANT_DATA_DIR, 'providers', id)),
    );
    const work = tmpDir('pv-cli-m-');
    const { manifest } = await locateManifest(summary.manifestCid, provs, work);
    assert.deepEqual(manifest.meta, { model: 'llama-ft', run: 'abc' });
    assert.equal(manifest.tool.name, 'provenant');
    assert.equal(manifest.totals.files, 3);

    // A new process restarts the embedded server on the same database: the archive is still known.
    const s = await run(['status', 'cli-ds', '--json'], env);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(JSON.parse(s.stdout).status, 'COMPLETED');
    assert.equal(JSON.parse(s.stdout).manifestCid, summary.manifestCid);

    // Fleet view and the audit log.
    const fleet = await run(['status', '--json'], env);
    assert.equal(fleet.code, 0, fleet.stderr);
    const rows = JSON.parse(fleet.stdout) as { datasetId: string; health: string }[];
    assert.deepEqual(
      rows.map((r) => r.datasetId),
      ['cli-ds'],
    );
    assert.ok(['healthy', 'unknown'].includes(rows[0]!.health));
    const audit = await run(['audit', 'cli-ds', '--json'], env);
    assert.equal(audit.code, 0, audit.stderr);
    const log = JSON.parse(audit.stdout);
    assert.deepEqual(log.problems, []);
    assert.equal(log.records[0].kind, 'archive');

    const target = path.join(root, 'out');
    const r = await run(['restore', 'cli-ds', target, '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(readTree(target), readTree(src));

    const again = await run(['restore', summary.manifestCid, target], env);
    assert.equal(again.code, 1);
    const reason = again.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('provenant:'));
    assert.equal(reason.length, 1, 'one-line reason');
    assert.match(reason[0]!, /^provenant: TargetNotEmptyError: /);
  });

  it('exits non-zero with a one-line typed reason on bad input', async () => {
    const root = tmpDir('pv-cli-');
    const env = {
      PROVENANT_DATA_DIR: path.join(root, 'home'),
      TEMPORAL_ADDRESS: '127.0.0.1:1',
      PROVENANT_EMBEDDED: 'never',
    };
    const usage = await run(['archive', root, '--replicas', 'zero'], env);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /UsageError/);
    const badMeta = await run(['archive', root, '--meta', 'novalue'], env);
    assert.equal(badMeta.code, 2);
    const cfg = path.join(root, 'bad.yaml');
    fs.writeFileSync(cfg, 'pack:\n  shardBytes: 5\nreplication:\n  copies: -1\n');
    const bad = await run(['archive', root, '--config', cfg], env);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^provenant: ConfigError: .*pack\.shardBytes.*replication\.copies/);
    const unknown = await run(['archive', root, '--provider', 'nope'], {
      ...env,
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
    });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /UnknownProviderError/);
    const cmd = await run(['frobnicate'], env);
    assert.equal(cmd.code, 2);
  });

  it('worker --config FILE connects to the address the file names', async () => {
    // Nothing but a TCP listener: the worker's first connection to it proves it read FILE (it
    // would dial the default localhost:7233 otherwise). No Temporal server is needed.
    const root = tmpDir('pv-cli-worker-');
    const server = net.createServer();
    const dialled = new Promise<boolean>((resolve) => {
      server.once('connection', (sock) => {
        sock.destroy();
        resolve(true);
      });
      setTimeout(() => resolve(false), 20_000).unref();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const cfg = path.join(root, 'worker.yaml');
    fs.writeFileSync(
      cfg,
      `dataDir: ${JSON.stringify(path.join(root, 'home'))}\ntemporal:\n  address: 127.0.0.1:${port}\n  taskQueue: pv-worker-cfg\n`,
    );
    const worker = spawn(process.execPath, [CLI, 'worker', '--config', cfg], {
      env: envWithoutTemporal(),
      stdio: 'ignore',
    });
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    try {
      assert.equal(await dialled, true, 'the worker never dialled the address from --config');
    } finally {
      worker.kill('SIGKILL');
      await exited;
      server.close();
    }
  });
});
