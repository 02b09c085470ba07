/**
 * The embedded Temporal dev server: `temporal server start-dev` with a persistent SQLite file,
 * so work survives a restart. Started by the CLI when nothing answers at the configured address,
 * with the Temporal Web UI that ships with it (on the gRPC port + 1000, as the CLI's default, or
 * any free port when that one is taken), so that `provenant dev` users can watch archives and
 * stewards run. The test servers (tests/helpers/env.ts) stay headless.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { resolveTemporalCli } from './temporal-cli.js';

export interface DevServer {
  address: string;
  /** The Temporal Web UI, e.g. http://127.0.0.1:8233; undefined when started headless. */
  uiUrl?: string;
  stop(): Promise<void>;
}

export function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i) || '127.0.0.1', port: Number(address.slice(i + 1)) };
}

/** True when something accepts TCP connections at `address`. */
export function isListening(address: string, timeoutMs = 1000): Promise<boolean> {
  const { host, port } = splitAddress(address);
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export function isLocalAddress(address: string): boolean {
  const { host } = splitAddress(address);
  return host === 'localhost' || host === '127.0.0.1' || host === '::1' || host === '[::1]';
}

/** A port nothing listens on now: `preferred` when it is free, else one the system picks. */
async function freePort(preferred: number): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<number | undefined>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(undefined));
      srv.listen({ host: '127.0.0.1', port }, () => {
        const got = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(got));
      });
    });
  return (preferred <= 65535 ? await tryListen(preferred) : undefined) ?? (await tryListen(0))!;
}

export async function startDevServer(opts: {
  address: string;
  dataDir: string;
  namespace: string;
  log?: (m: string) => void;
  /** Serve the Temporal Web UI (default true); false starts the server headless. */
  ui?: boolean;
}): Promise<DevServer> {
  const log = opts.log ?? (() => {});
  const bin = resolveTemporalCli({ log });
  if (!bin) {
    throw new Error(
      'cannot find or build the Temporal CLI: set TEMPORAL_CLI_PATH, put `temporal` on PATH, or install Go and run `npm run setup`',
    );
  }
  const { port } = splitAddress(opts.address);
  fs.mkdirSync(opts.dataDir, { recursive: true });
  const dbFile = path.join(opts.dataDir, 'temporal.sqlite');
  const logFile = path.join(opts.dataDir, 'temporal-server.log');
  const out = fs.openSync(logFile, 'a');
  const uiPort = opts.ui === false ? undefined : await freePort(port + 1000);
  const ui = uiPort === undefined ? ['--headless'] : ['--ui-ip', '127.0.0.1', '--ui-port', String(uiPort)];
  const args = [
    'server',
    'start-dev',
    ...ui,
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--db-filename',
    dbFile,
    '--namespace',
    opts.namespace,
    '--log-level',
    'warn',
    '--search-attribute',
    'ProvenantHealth=Keyword',
    '--search-attribute',
    'ProvenantDataset=Keyword',
  ];
  const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', out, out], detached: false });
  fs.closeSync(out);
  let exited = false;
  child.once('exit', () => (exited = true));
  const address = `127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`the Temporal dev server exited at start; see ${logFile}`);
    if (await isListening(address, 500)) {
      try {
        const c = await Connection.connect({ address, connectTimeout: 2000 });
        await c.workflowService.getSystemInfo({});
        await c.close();
        break;
      } catch {
        /* not ready yet */
      }
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the Temporal dev server did not become ready in 60 s; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const uiUrl = uiPort === undefined ? undefined : `http://127.0.0.1:${uiPort}`;
  log(`embedded Temporal dev server on ${address} (db ${dbFile})${uiUrl ? `; Temporal Web UI: ${uiUrl}` : ''}`);
  return {
    address,
    uiUrl,
    stop: async () => {
      if (exited) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(t);
    },
  };
}
