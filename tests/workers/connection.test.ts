/**
 * Connections (workers/connection.ts) on the real dev server: mTLS through a TLS-terminating proxy
 * in front of it (the dev server has no TLS), a Temporal TOML profile, and the API key.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InterceptingCall, type Interceptor } from '@grpc/grpc-js';
import { Client, defaultGrpcRetryOptions, makeGrpcRetryInterceptor, WorkflowNotFoundError } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig, parseConfig } from '../../config/load.js';
import { archiveWorkflowId } from '../../shared/api.js';
import { stewardStatusQuery } from '../../workflows/index.js';
import { ConfigError, TemporalUnavailableError } from '../../shared/errors.js';
import { connectClient, connectionSettings, connectNative } from '../../workers/connection.js';
import { bytesOf, REQUIRE_ALL, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import { haveOpenssl, makeTestPki, startTlsProxy, type TestPki, type TlsProxy } from '../helpers/tls-proxy.js';

const CLI = fileURLToPath(new URL('../../cli/provenant.js', import.meta.url));
const API_KEY = 'pv-test-api-key-5b1f0c9e7d';

/** The environment without any Temporal or Provenant setting, so that only the test's count. */
function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env))
    if (v !== undefined && !/^(TEMPORAL_|PROVENANT_)/.test(k)) env[k] = v;
  // No ~/.config/temporalio/temporal.toml of the machine's user.
  env.XDG_CONFIG_HOME = tmpDir('pv-conn-xdg-');
  return env;
}

function run(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string; pid: number }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr, pid: p.pid ?? -1 }));
  });
}

/** Identities of the workers that polled a task queue's workflow tasks. */
async function pollers(env: TestWorkflowEnvironment, taskQueue: string): Promise<string[]> {
  const r = await env.connection.workflowService.describeTaskQueue({
    namespace: 'default',
    taskQueue: { name: taskQueue, kind: 1 },
    taskQueueType: 1,
  });
  return (r.pollers ?? []).map((p) => p.identity ?? '');
}

/** Every event of a workflow's history and of its children's, as JSON text. */
async function historiesText(client: Client, workflowId: string, seen = new Set<string>()): Promise<string> {
  if (seen.has(workflowId)) return '';
  seen.add(workflowId);
  const h = await client.workflow.getHandle(workflowId).fetchHistory();
  let text = JSON.stringify(h);
  for (const e of h.events ?? []) {
    const child = e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId;
    if (child) text += await historiesText(client, child, seen).catch(() => '');
  }
  return text;
}

describe('Temporal connections', () => {
  let env: TestWorkflowEnvironment | undefined;
  let pki: TestPki | undefined;
  let proxy: TlsProxy | undefined;
  let root: string;
  let src: string;
  const why = { skip: '' };
  before(async (t) => {
    env = await startTemporal(t as never);
    root = tmpDir('pv-conn-');
    src = path.join(root, 'src');
    writeTree(src, { 'weights.bin': bytesOf(200_000, 'conn'), 'cfg.json': '{"a":1}' });
    if (!env) return;
    if (!haveOpenssl()) {
      why.skip = 'openssl not found (needed to make the test certificates)';
      if (REQUIRE_ALL) throw new Error(why.skip);
      return;
    }
    pki = makeTestPki(fs.mkdtempSync(path.join(root, 'pki-')));
    proxy = await startTlsProxy({ target: env.address, pki });
  });
  after(async () => {
    await proxy?.close();
    await env?.teardown();
  });

  /** CLI environment for the proxy: TLS files named by the variables the Temporal SDKs read. */
  const tlsEnv = (o: { clientCert: boolean; queue: string }): Record<string, string> => ({
    ...cleanEnv(),
    PROVENANT_DATA_DIR: path.join(root, 'home'),
    PROVENANT_EMBEDDED: 'never',
    PROVENANT_TASK_QUEUE: o.queue,
    TEMPORAL_ADDRESS: proxy!.address,
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: pki!.caCert,
    TEMPORAL_TLS_SERVER_NAME: 'localhost',
    ...(o.clientCert
      ? { TEMPORAL_TLS_CLIENT_CERT_PATH: pki!.clientCert, TEMPORAL_TLS_CLIENT_KEY_PATH: pki!.clientKey }
      : {}),
  });

  it('archives and reports status through an mTLS proxy, client and worker both on TLS, the API key out of history', async (t) => {
    if (!env) return t.skip('no Temporal server');
    if (!proxy) return t.skip(why.skip);
    const accepted = proxy.accepted;
    const e = { ...tlsEnv({ clientCert: true, queue: 'pv-conn-tls' }), TEMPORAL_API_KEY: API_KEY };
    const a = await run(['archive', src, '--id', 'tls-ds', '--json'], e);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(JSON.parse(a.stdout).files, 2);
    // The client (grpc-js) and the worker (Rust core) both came through the proxy.
    assert.ok(proxy.accepted >= accepted + 2, `connections through the proxy: ${proxy.accepted - accepted}`);
    const s = await run(['status', 'tls-ds', '--json'], e);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(JSON.parse(s.stdout).status, 'COMPLETED');
    // Secrets never enter workflow history: not the API key, not the client key.
    const text = await historiesText(env.client, archiveWorkflowId('tls-ds'));
    assert.ok(text.includes('tls-ds'), 'the history was read');
    assert.ok(!text.includes(API_KEY), 'the API key is not in any history');
    const keyBody = fs.readFileSync(pki!.clientKey, 'utf8').split('\n')[1]!;
    assert.ok(!text.includes(keyBody), 'the client key is not in any history');
  });

  it('fails with TemporalUnavailableError, naming the TLS settings, without a client certificate', async (t) => {
    if (!env) return t.skip('no Temporal server');
    if (!proxy) return t.skip(why.skip);
    const refused = proxy.refused;
    const r = await run(['status', '--json'], tlsEnv({ clientCert: false, queue: 'pv-conn-nocert' }));
    assert.equal(r.code, 1, r.stderr);
    const reason = r.stderr.split('\n').filter((l) => l.startsWith('provenant:'));
    assert.equal(reason.length, 1, r.stderr);
    assert.match(
      reason[0]!,
      /^provenant: TemporalUnavailableError: cannot connect to Temporal at 127\.0\.0\.1:\d+, .*TLS, no client certificate.*: TLS handshake: the server requires a client certificate/,
    );
    assert.ok(proxy.refused > refused, 'the proxy refused the handshake');

    // In-process, client and worker connections: a certificate of another CA is refused too.
    const stranger = parseConfig({
      temporal: {
        address: proxy.address,
        tls: {
          serverCaCertFile: pki!.caCert,
          serverName: 'localhost',
          clientCertFile: pki!.strangerCert,
          clientKeyFile: pki!.strangerKey,
        },
      },
    });
    const settings = connectionSettings(stranger.temporal, {});
    assert.ok(settings.tls?.clientCertPair);
    await assert.rejects(connectClient(settings), TemporalUnavailableError);
    await assert.rejects(connectNative(settings), TemporalUnavailableError);
    // The right certificate, in-process: both connect.
    const ok = parseConfig({
      temporal: {
        address: proxy.address,
        tls: {
          serverCaCertFile: pki!.caCert,
          serverName: 'localhost',
          clientCertFile: pki!.clientCert,
          clientKeyFile: pki!.clientKey,
        },
      },
    });
    const good = connectionSettings(ok.temporal, {});
    const c = await connectClient(good);
    const info = await c.workflowService.getSystemInfo({});
    assert.ok(info.capabilities, 'the server answered through the proxy');
    await c.close();
    await (await connectNative(good)).close();
  });

  it('honours a TOML profile: TEMPORAL_CONFIG_FILE and TEMPORAL_PROFILE alone name the server, namespace and TLS', async (t) => {
    if (!env) return t.skip('no Temporal server');
    if (!proxy) return t.skip(why.skip);
    const namespace = 'pv-profile-ns';
    await env.connection.workflowService.registerNamespace({
      namespace,
      workflowExecutionRetentionPeriod: msToTs('1 day'),
    });
    // Until the frontend knows the new namespace (its cache refreshes on its own schedule).
    for (let i = 0; ; i++) {
      try {
        await env.connection.workflowService.countWorkflowExecutions({ namespace });
        break;
      } catch (err) {
        if (i > 120) throw err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const toml = path.join(root, 'temporal.toml');
    fs.writeFileSync(
      toml,
      [
        '[profile.default]',
        'address = "127.0.0.1:1"',
        '',
        '[profile.plain]',
        `address = "${env.address}"`,
        `namespace = "${namespace}"`,
        '',
        '[profile.mtls]',
        `address = "${proxy.address}"`,
        `namespace = "${namespace}"`,
        '[profile.mtls.tls]',
        'server_name = "localhost"',
        `server_ca_cert_path = "${pki!.caCert}"`,
        `client_cert_path = "${pki!.clientCert}"`,
        `client_key_path = "${pki!.clientKey}"`,
        '',
      ].join('\n'),
    );
    const base = { ...cleanEnv(), TEMPORAL_CONFIG_FILE: toml, PROVENANT_DATA_DIR: path.join(root, 'home-profile') };

    // The config as loaded: the profile under the config file and the environment.
    const cfg = loadConfig({ env: { ...base, TEMPORAL_PROFILE: 'mtls' } });
    assert.equal(cfg.temporal.address, proxy.address);
    assert.equal(cfg.temporal.namespace, namespace);
    assert.deepEqual(cfg.temporal.tls, {
      serverName: 'localhost',
      serverCaCertFile: pki!.caCert,
      clientCertFile: pki!.clientCert,
      clientKeyFile: pki!.clientKey,
    });
    assert.equal(
      loadConfig({ env: { ...base, TEMPORAL_PROFILE: 'mtls', TEMPORAL_ADDRESS: 'x:1' } }).temporal.address,
      'x:1',
    );
    assert.throws(() => loadConfig({ env: { ...base, TEMPORAL_PROFILE: 'nope' } }), ConfigError);

    // Archive with the plain profile, then read its status with the mTLS one.
    const a = await run(['archive', src, '--id', 'profile-ds', '--json'], { ...base, TEMPORAL_PROFILE: 'plain' });
    assert.equal(a.code, 0, a.stderr);
    const inNs = new Client({ connection: env.connection, namespace });
    assert.equal((await inNs.workflow.getHandle(archiveWorkflowId('profile-ds')).describe()).status.name, 'COMPLETED');
    await assert.rejects(
      env.client.workflow.getHandle(archiveWorkflowId('profile-ds')).describe(),
      WorkflowNotFoundError,
    );
    const accepted = proxy.accepted;
    const s = await run(['status', 'profile-ds', '--json'], { ...base, TEMPORAL_PROFILE: 'mtls' });
    assert.equal(s.code, 0, s.stderr);
    assert.equal(JSON.parse(s.stdout).status, 'COMPLETED');
    assert.ok(proxy.accepted > accepted, 'status went through the proxy');
    // The default profile (a closed port) when none is named.
    const d = await run(['status', '--json'], { ...base, PROVENANT_EMBEDDED: 'never' });
    assert.equal(d.code, 1);
    assert.match(d.stderr, /TemporalUnavailableError: cannot connect to Temporal at 127\.0\.0\.1:1,/);
  });

  it('sends TEMPORAL_API_KEY as a bearer token on every call, never in messages, and refuses a key in the config', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const cfg = parseConfig({ temporal: { address: env.address } });
    // An API key turns TLS on, as in the Temporal SDKs; the dev server has none, so TEMPORAL_TLS=false.
    assert.ok(connectionSettings(cfg.temporal, { TEMPORAL_API_KEY: API_KEY }).tls);
    const settings = connectionSettings(cfg.temporal, { TEMPORAL_API_KEY: API_KEY, TEMPORAL_TLS: 'false' });
    assert.equal(settings.apiKey, API_KEY);
    assert.equal(settings.tls, undefined);
    assert.ok(!settings.describe.includes(API_KEY));
    assert.match(settings.describe, /API key/);
    // apiKeyEnv names another variable; unset, it is a ConfigError.
    const named = parseConfig({ temporal: { address: env.address, apiKeyEnv: 'MY_KEY', tls: { enabled: false } } });
    assert.equal(connectionSettings(named.temporal, { MY_KEY: 'k2', TEMPORAL_API_KEY: API_KEY }).apiKey, 'k2');
    assert.throws(() => connectionSettings(named.temporal, {}), ConfigError);
    assert.throws(() => parseConfig({ temporal: { apiKey: 'secret' } }), ConfigError);

    // On the wire: every call carries `authorization: Bearer <key>`.
    const seen: string[] = [];
    const record: Interceptor = (options, nextCall) =>
      new InterceptingCall(nextCall(options), {
        start(metadata, listener, next) {
          seen.push(String(metadata.get('authorization')[0] ?? ''));
          next(metadata, listener);
        },
      });
    const c = await connectClient(settings, {
      interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions()), record],
    });
    await c.workflowService.getSystemInfo({});
    await c.close();
    assert.ok(seen.length > 0);
    assert.deepEqual([...new Set(seen)], [`Bearer ${API_KEY}`]);
    // The worker's connection takes it too (the dev server ignores it).
    await (await connectNative(settings)).close();
  });

  it('status and audit use the running worker and start none; with none answering they run one in-process', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const queue = 'pv-conn-readonly';
    const e = {
      ...cleanEnv(),
      PROVENANT_DATA_DIR: path.join(root, 'home-ro'),
      PROVENANT_EMBEDDED: 'never',
      PROVENANT_TASK_QUEUE: queue,
      TEMPORAL_ADDRESS: env.address,
    };
    const a = await run(['archive', src, '--id', 'ro-ds', '--json'], e);
    assert.equal(a.code, 0, a.stderr);
    const config = testConfig(path.join(root, 'home-ro'), { temporal: { taskQueue: queue } } as never);
    // A worker of another process (this one) polls the queue.
    await withWorker(env, config, async () => {
      for (let i = 0; !(await pollers(env!, queue)).includes(`${process.pid}@${os.hostname()}`); i++) {
        if (i > 200) throw new Error('the test worker never polled');
        await new Promise((r) => setTimeout(r, 100));
      }
      // The archive's worker (the CLI's, gone) held the steward in its sticky queue: one query
      // from here moves it to this worker, so that the commands below meet a worker that answers.
      const summary = await env!.client.workflow.getHandle(archiveWorkflowId('ro-ds')).result();
      await env!.client.workflow.getHandle(summary.stewardWorkflowId!).query(stewardStatusQuery);
      for (const cmd of ['status', 'audit']) {
        const r = await run([cmd, 'ro-ds'], e);
        assert.equal(r.code, 0, r.stderr);
        assert.doesNotMatch(r.stderr, /running one in this process/, r.stderr);
        assert.ok(!(await pollers(env!, queue)).includes(`${r.pid}@${os.hostname()}`), `${cmd} polled the queue`);
      }
      const s = await run(['status', 'ro-ds', '--json'], e);
      assert.equal(JSON.parse(s.stdout).steward.datasetId, 'ro-ds', 'the steward answered its query');
    });
    // The worker is gone but still listed as polling: the query gets no answer, status runs a worker itself.
    const r = await run(['status', 'ro-ds'], e);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /did not answer.*: running one in this process|no worker polls/);
    assert.match(r.stdout, /health: /);
  });
});
