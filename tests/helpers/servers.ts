/**
 * Real storage servers for tests: MinIO (S3) and Kubo (IPFS), each on loopback, on a free port,
 * with a temporary data directory and, for MinIO, credentials generated per run and handed over
 * through environment variables. When a binary cannot be had, `start…` says why and `serverOr`
 * skips the test with that reason, except under PROVENANT_REQUIRE_ALL=1, where the test fails.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { resolveKubo, resolveMinio } from '../../workers/binaries.js';
import { REQUIRE_ALL, tmpDir } from './env.js';

export type Started<T> = { ok: true; server: T } | { ok: false; reason: string };

const log = (m: string) => console.error(`[test] ${m}`);

function unavailable<T>(reason: string): Started<T> {
  return { ok: false, reason };
}

/**
 * The started server, or undefined after skipping the test with the reason it is missing;
 * under PROVENANT_REQUIRE_ALL=1 a missing server fails the test instead.
 */
export function serverOr<T>(t: { skip(message: string): void }, started: Started<T> | undefined): T | undefined {
  if (started?.ok) return started.server;
  const reason = started?.reason ?? 'server not started (its start-up failed; see the hook error above)';
  if (REQUIRE_ALL) throw new Error(reason);
  t.skip(reason);
  return undefined;
}

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** A child process with the tail of its output kept for error messages. */
class Child {
  private tail = '';
  readonly exited: Promise<number | null>;
  constructor(readonly proc: ChildProcess) {
    const keep = (b: Buffer) => (this.tail = (this.tail + b.toString()).slice(-4000));
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    live.add(this);
  }
  get output(): string {
    return this.tail;
  }
  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    live.delete(this);
    if (!this.running) return;
    this.proc.kill(signal);
    const done = await Promise.race([this.exited.then(() => true), sleep(15_000, false, { ref: false })]);
    if (!done) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}

const live = new Set<Child>();
// Never leave a server behind, even when a test file dies early.
process.once('exit', () => {
  for (const c of live) c.proc.kill('SIGKILL');
});

async function waitFor(what: string, child: Child, probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!child.running) throw new Error(`${what} exited during start-up:\n${child.output}`);
    if (await probe().catch(() => false)) return;
    await sleep(100);
  }
  await child.stop('SIGKILL');
  throw new Error(`${what} did not become ready within ${timeoutMs} ms:\n${child.output}`);
}

// ---- MinIO ---------------------------------------------------------------------------------------

export class MinioServer {
  private constructor(
    private readonly child: Child,
    readonly endpoint: string,
    readonly accessKeyId: string,
    readonly secretAccessKey: string,
    readonly dataDir: string,
  ) {}

  static async start(): Promise<Started<MinioServer>> {
    const bin = resolveMinio({ build: true, log });
    if (!bin)
      return unavailable('MinIO not found and could not be built (run `npm run setup`, or set PROVENANT_MINIO_BIN)');
    const dataDir = tmpDir('pv-minio-');
    const [port, consolePort] = [await freePort(), await freePort()];
    const accessKeyId = `pv${crypto.randomBytes(6).toString('hex')}`;
    const secretAccessKey = crypto.randomBytes(24).toString('base64url');
    const child = new Child(
      spawn(
        bin,
        [
          'server',
          '--quiet',
          '--address',
          `127.0.0.1:${port}`,
          '--console-address',
          `127.0.0.1:${consolePort}`,
          path.join(dataDir, 'data'),
        ],
        {
          env: {
            PATH: process.env.PATH,
            HOME: dataDir,
            MINIO_ROOT_USER: accessKeyId,
            MINIO_ROOT_PASSWORD: secretAccessKey,
            MINIO_BROWSER: 'off',
            MINIO_UPDATE: 'off',
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
    );
    const endpoint = `http://127.0.0.1:${port}`;
    await waitFor('MinIO', child, async () => (await fetch(`${endpoint}/minio/health/ready`)).ok);
    return { ok: true, server: new MinioServer(child, endpoint, accessKeyId, secretAccessKey, dataDir) };
  }

  /** An S3 client with the server's credentials (for test set-up, not for the code under test). */
  client(): S3Client {
    return new S3Client({
      endpoint: this.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: this.accessKeyId, secretAccessKey: this.secretAccessKey },
    });
  }

  async createBucket(name = `pv-${crypto.randomBytes(5).toString('hex')}`): Promise<string> {
    const c = this.client();
    try {
      await c.send(new CreateBucketCommand({ Bucket: name }));
    } finally {
      c.destroy();
    }
    return name;
  }

  /**
   * Put the credentials into environment variables with fresh names (in `env`, by default this
   * process's), as an operator would, and return the names for the provider config.
   */
  exportCredentials(env: NodeJS.ProcessEnv = process.env): { accessKeyIdEnv: string; secretAccessKeyEnv: string } {
    const tag = crypto.randomBytes(4).toString('hex').toUpperCase();
    const names = { accessKeyIdEnv: `PV_TEST_S3_KEY_ID_${tag}`, secretAccessKeyEnv: `PV_TEST_S3_SECRET_${tag}` };
    env[names.accessKeyIdEnv] = this.accessKeyId;
    env[names.secretAccessKeyEnv] = this.secretAccessKey;
    return names;
  }

  get running(): boolean {
    return this.child.running;
  }

  async stop(): Promise<void> {
    await this.child.stop('SIGTERM');
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

// ---- Kubo ----------------------------------------------------------------------------------------

export class KuboServer {
  private constructor(
    private readonly child: Child,
    readonly apiUrl: string,
    readonly gatewayUrl: string | undefined,
    readonly repo: string,
  ) {}

  /**
   * `ipfs init --profile test` in a temporary IPFS_PATH (loopback, no bootstrap peers, no mDNS),
   * API and gateway on free loopback ports, then `ipfs daemon --offline`.
   * `authSecret` turns on API authorization (`Authorization: Bearer <secret>`).
   */
  static async start(o: { authSecret?: string } = {}): Promise<Started<KuboServer>> {
    const bin = resolveKubo({ build: true, log });
    if (!bin)
      return unavailable(
        'Kubo (ipfs) not found and could not be built (run `npm run setup`, or set PROVENANT_KUBO_BIN)',
      );
    const repo = tmpDir('pv-kubo-');
    const env = { PATH: process.env.PATH, HOME: repo, IPFS_PATH: repo };
    const run = (...args: string[]) => {
      const r = spawnSync(bin, args, { env, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ipfs ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
    };
    run('init', '--profile', 'test');
    const [apiPort, gatewayPort] = [await freePort(), await freePort()];
    run('config', 'Addresses.API', `/ip4/127.0.0.1/tcp/${apiPort}`);
    run('config', 'Addresses.Gateway', `/ip4/127.0.0.1/tcp/${gatewayPort}`);
    run('config', '--json', 'Addresses.Swarm', '[]');
    if (o.authSecret) {
      run(
        'config',
        '--json',
        'API.Authorizations',
        JSON.stringify({ provenant: { AuthSecret: `bearer:${o.authSecret}`, AllowedPaths: ['/api/v0'] } }),
      );
    }
    const child = new Child(spawn(bin, ['daemon', '--offline'], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const headers: Record<string, string> = o.authSecret ? { authorization: `Bearer ${o.authSecret}` } : {};
    await waitFor('Kubo', child, async () => (await fetch(`${apiUrl}/api/v0/id`, { method: 'POST', headers })).ok);
    return { ok: true, server: new KuboServer(child, apiUrl, `http://127.0.0.1:${gatewayPort}`, repo) };
  }

  get running(): boolean {
    return this.child.running;
  }

  async stop(): Promise<void> {
    await this.child.stop('SIGINT');
    fs.rmSync(this.repo, { recursive: true, force: true });
  }
}
