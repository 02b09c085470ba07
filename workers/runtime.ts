/**
 * Connect to Temporal, starting the embedded dev server when nothing answers locally, and run
 * an in-process worker with the Provenant plugin while `fn` runs.
 */
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Runtime, Worker, DefaultLogger, makeTelemetryFilterString } from '@temporalio/worker';
import type { Config } from '../config/schema.js';
import { isListening, isLocalAddress, startDevServer, type DevServer } from './dev-server.js';
import { ProvenantPlugin } from './plugin.js';

export interface RuntimeHandle {
  client: Client;
  config: Config;
  embedded: boolean;
}

let runtimeInstalled = false;
function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = (process.env.PROVENANT_LOG_LEVEL as 'WARN' | 'INFO' | 'DEBUG' | 'ERROR' | undefined) ?? 'ERROR';
  // Core (Rust) logs go through the same logger, at the same level, to stderr; stdout stays for results.
  Runtime.install({
    logger: new DefaultLogger(level, (entry) => process.stderr.write(`${entry.level} ${entry.message}\n`)),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: level }), forward: {} } },
  });
}

export async function withRuntime<T>(
  config: Config,
  fn: (rt: RuntimeHandle) => Promise<T>,
  opts: { worker?: boolean; log?: (m: string) => void } = {},
): Promise<T> {
  const log = opts.log ?? (() => {});
  let server: DevServer | undefined;
  let address = config.temporal.address;
  const mode = config.temporal.embedded;
  if (mode === 'always' || (mode === 'auto' && isLocalAddress(address) && !(await isListening(address)))) {
    if (await isListening(address)) {
      throw new Error(`embedded mode 'always' but something already listens on ${address}`);
    }
    server = await startDevServer({ address, dataDir: path.join(config.dataDir, 'temporal'), namespace: config.temporal.namespace, log });
    address = server.address;
  }
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  let nativeConnection: NativeConnection | undefined;
  try {
    if (opts.worker !== false) {
      quietRuntime();
      nativeConnection = await NativeConnection.connect({ address });
      worker = await Worker.create({
        connection: nativeConnection,
        namespace: config.temporal.namespace,
        taskQueue: config.temporal.taskQueue,
        plugins: [new ProvenantPlugin({ config })],
      });
      running = worker.run();
      running.catch(() => {});
    }
    return await fn({ client, config: { ...config, temporal: { ...config.temporal, address } }, embedded: !!server });
  } finally {
    if (worker && worker.getState() === 'RUNNING') worker.shutdown();
    await running?.catch(() => {});
    await nativeConnection?.close();
    await connection.close();
    await server?.stop();
  }
}
