/**
 * Archiving a dataset id again: attach to a running archive, return a completed one's result, and
 * archive anew after a failed, cancelled, terminated or timed-out one (issue 12: a failed archive
 * used to block its dataset for ever). On the real Temporal dev server, through the CLI and the client helper.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startArchive } from '../../workers/client.js';
import { resolveTemporalCli } from '../../workers/temporal-cli.js';
import { bytesOf, REQUIRE_ALL, startTemporal, testConfig, tmpDir, writeTree } from '../helpers/env.js';

const CLI = path.resolve('dist/cli/provenant.js');

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
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

describe('provenant archive, run again for the same dataset', () => {
  it('archives anew after a failed archive, then returns the completed one', async (t) => {
    if (!resolveTemporalCli({ build: true })) {
      if (REQUIRE_ALL) throw new Error('Temporal CLI unavailable');
      return t.skip('Temporal CLI unavailable');
    }
    const root = tmpDir('pv-cli-rerun-');
    const src = path.join(root, 'src');
    writeTree(src, { 'weights.bin': bytesOf(64 * 1024, 'rerun'), 'cfg/a.json': '{"a":1}' });
    // A host with two providers.
    const cfg = path.join(root, 'two.yaml');
    fs.writeFileSync(
      cfg,
      [
        'providers:',
        `  - { kind: local, id: nas-a, path: ${JSON.stringify(path.join(root, 'nas-a'))} }`,
        `  - { kind: local, id: nas-b, path: ${JSON.stringify(path.join(root, 'nas-b'))} }`,
        '',
      ].join('\n'),
    );
    const env = {
      PROVENANT_DATA_DIR: path.join(root, 'home'),
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      PROVENANT_EMBEDDED: 'auto',
    };
    const archive = (...more: string[]) => run(['archive', src, '--id', 'rerun', '--config', cfg, ...more], env);

    // Three copies cannot be placed on two providers: the archive fails, as it should.
    const failed = await archive('--replicas', '3');
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(failed.stderr, /^provenant: PolicyUnsatisfiableError: /m);

    // Two can: the failed archive does not block the dataset, it is archived anew.
    const again = await archive('--replicas', '2');
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /started a new archive after a failed one/);
    const manifestCid = /manifest CID: (\S+)/.exec(again.stdout)?.[1];
    assert.ok(manifestCid, again.stdout);

    // Completed: its result, no second archive.
    const done = await archive('--replicas', '2', '--json');
    assert.equal(done.code, 0, done.stderr);
    const summary = JSON.parse(done.stdout);
    assert.equal(summary.outcome, 'completed');
    assert.equal(summary.manifestCid, manifestCid);
    assert.equal(summary.copies, 2);
  });
});

describe('startArchive', () => {
  let env: TestWorkflowEnvironment | undefined;
  before(async (t) => {
    env = await startTemporal(t as never);
  });
  after(async () => {
    await env?.teardown();
  });

  it('attaches to a running archive and starts anew after a terminated one', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const root = tmpDir('pv-start-');
    writeTree(path.join(root, 'src'), { 'a.txt': 'a' });
    // No worker polls this queue: the archive stays running for as long as the test needs.
    const config = testConfig(path.join(root, 'data'));
    const args = { dir: path.join(root, 'src'), datasetId: 'held', noSteward: true };

    const first = await startArchive(env.client, config, args);
    assert.equal(first.outcome, 'started');
    assert.equal(first.existing, false);
    const firstRun = (await first.handle.describe()).runId;

    const attached = await startArchive(env.client, config, args);
    assert.equal(attached.outcome, 'attached');
    assert.equal(attached.existing, true);
    assert.equal((await attached.handle.describe()).runId, firstRun);

    await first.handle.terminate('test: the archive dies');
    const anew = await startArchive(env.client, config, args);
    assert.equal(anew.outcome, 'restarted');
    assert.equal(anew.existing, false);
    assert.equal(anew.previous?.status, 'TERMINATED');
    const d = await anew.handle.describe();
    assert.notEqual(d.runId, firstRun);
    assert.equal(d.status.name, 'RUNNING');
    await anew.handle.terminate('test: done');
  });
});
