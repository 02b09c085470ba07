/**
 * Connect to Temporal, starting the embedded dev server when nothing answers locally, and run
 * an in-process worker with the Provenant plugin while `fn` runs.
 *
 * Read-only commands (status, audit, providers) pass `worker: 'auto'`: when a worker already polls
 * the task queue (`provenant dev` or `provenant worker` running), no worker is created, nothing is
 * bundled and @temporalio/worker is never loaded, so the command costs a client connection and its
 * calls. Only when no worker polls (or the dev server was just started) does it run one in-process.
 */
import path from 'node:path';
import { Client, ServiceError, type Connection } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import type { Config } from '../config/schema.js';
import { clientDataConverter } from './codec.js';
import { connectClient, connectionSettings, connectNative, needsTls, type ConnectionSettings } from './connection.js';
import { isListening, isLocalAddress, startDevServer, type DevServer } from './dev-server.js';
import { keepYoungGenerationSmall } from './heap.js';

export interface RuntimeHandle {
  client: Client;
  config: Config;
  embedded: boolean;
  /** True when this process runs a worker (always with `worker: true`; with 'auto' when none was polling). */
  inProcessWorker: boolean;
  /**
   * Run a call that needs a worker to answer (a query). With `worker: 'auto'` and the worker of
   * another process, it gets QUERY_DEADLINE_MS; when that passes (the worker seen polling has
   * stopped), withRuntime runs `fn` again from the start with a worker in this process. So `fn`
   * must be safe to run twice: read, then print at the end.
   */
  query<R>(call: () => Promise<R>): Promise<R>;
}

/** Thrown by `RuntimeHandle.query` when no worker answered in time; withRuntime('auto') catches it. */
export class NoWorkerAnswered extends Error {
  override readonly name = 'NoWorkerAnswered';
}

/** How long a query may wait for another process's worker before this process runs its own. */
const QUERY_DEADLINE_MS = 5_000;

/**
 * The gRPC status of a query that no worker answered: the client wraps it in a ServiceError
 * ("Failed to query Workflow"). Not only DEADLINE_EXCEEDED (4): a query sent to the sticky queue
 * of a worker that has just exited can also come back CANCELLED (1), UNKNOWN (2),
 * FAILED_PRECONDITION (9) or UNAVAILABLE (14), as the server gives up on that queue. Errors that
 * the workflow itself answered (QueryNotRegisteredError, a rejected query, WorkflowNotFoundError)
 * are other classes and never match. Returns the code, or undefined.
 */
function unanswered(err: unknown): number | undefined {
  if (!(err instanceof ServiceError)) return undefined;
  for (let e: unknown = err, i = 0; e && typeof e === 'object' && i < 5; e = (e as { cause?: unknown }).cause, i++) {
    const code = (e as { code?: unknown }).code;
    if (code === 1 || code === 2 || code === 4 || code === 9 || code === 14) return code;
  }
  return undefined;
}

export interface RuntimeOptions {
  /**
   * true (default): run an in-process worker; false: none (calls that need no worker: describe,
   * list, start, result); 'auto': one only when no worker polls the task queue (queries need one).
   */
  worker?: boolean | 'auto';
  log?: (m: string) => void;
}

/**
 * A worker that polled the task queue within this long counts as running. A live worker keeps
 * a long poll open (about a minute) and polls again at once, so its last poll is never older.
 */
const POLLER_FRESH_MS = 75_000;

// temporal.api.enums.v1 values (the proto package is the client's, not a dependency of ours).
const TASK_QUEUE_KIND_NORMAL = 1;
const TASK_QUEUE_TYPE_WORKFLOW = 1;

/** True when some worker polls the workflow task queue (so queries get an answer). */
export async function workerPolling(client: Client, namespace: string, taskQueue: string): Promise<boolean> {
  const res = await client.workflowService.describeTaskQueue({
    namespace,
    taskQueue: { name: taskQueue, kind: TASK_QUEUE_KIND_NORMAL },
    taskQueueType: TASK_QUEUE_TYPE_WORKFLOW,
  });
  const now = Date.now();
  return (res.pollers ?? []).some((p) => {
    const t = p.lastAccessTime;
    if (!t?.seconds) return false;
    const ms = Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
    return now - ms < POLLER_FRESH_MS;
  });
}

let runtimeInstalled = false;
async function quietRuntime(): Promise<void> {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const { Runtime, DefaultLogger, makeTelemetryFilterString } = await import('@temporalio/worker');
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
  opts: RuntimeOptions = {},
): Promise<T> {
  const log = opts.log ?? (() => {});
  const settings = connectionSettings(config.temporal);
  let server: DevServer | undefined;
  const mode = config.temporal.embedded;
  // The embedded dev server speaks no TLS: with TLS settings, the address must be a real server.
  const local = isLocalAddress(settings.address) && !needsTls(settings);
  if (mode === 'always' || (mode === 'auto' && local && !(await isListening(settings.address)))) {
    if (await isListening(settings.address)) {
      throw new Error(`embedded mode 'always' but something already listens on ${settings.address}`);
    }
    server = await startDevServer({
      address: settings.address,
      dataDir: path.join(config.dataDir, 'temporal'),
      namespace: settings.namespace,
      log,
    });
    settings.address = server.address;
  }
  const want = opts.worker ?? true;
  const cfg = { ...config, temporal: { ...config.temporal, address: settings.address } };
  let connection: Connection | undefined;
  try {
    connection = await connectClient(settings);
    // With the payload codec when keys are configured (workers/codec.ts), as the worker's plugin adds it.
    const client = new Client({ connection, namespace: settings.namespace, ...clientDataConverter(config) });
    const polled =
      want === 'auto' && !server && (await workerPolling(client, settings.namespace, cfg.temporal.taskQueue));
    if (want === 'auto' && polled) {
      // Another process's worker answers the queries: no worker code is loaded here.
      try {
        return await fn({
          client,
          config: cfg,
          embedded: false,
          inProcessWorker: false,
          query: async (call) => {
            try {
              return await client.connection.withDeadline(Date.now() + QUERY_DEADLINE_MS, call);
            } catch (err) {
              const code = unanswered(err);
              if (code === 4) throw new NoWorkerAnswered(`no worker answered in ${QUERY_DEADLINE_MS} ms`);
              if (code !== undefined) throw new NoWorkerAnswered(`the query was not answered (gRPC status ${code})`);
              throw err;
            }
          },
        });
      } catch (err) {
        if (!(err instanceof NoWorkerAnswered)) throw err;
        log(
          `the worker seen on '${cfg.temporal.taskQueue}' did not answer (${err.message}): running one in this process`,
        );
      }
    } else if (want === 'auto') {
      log(`no worker polls '${cfg.temporal.taskQueue}': running one in this process`);
    }
    const embedded = !!server;
    if (want === false) return await fn({ client, config: cfg, embedded, inProcessWorker: false, query: (c) => c() });
    // A read-only command's worker lives for one command: without a workflow cache it takes no
    // sticky queue, which would send the next command's queries to a process that is gone.
    return await withWorker(config, settings, { cache: want !== 'auto' }, () =>
      fn({ client, config: cfg, embedded, inProcessWorker: true, query: (c) => c() }),
    );
  } finally {
    await connection?.close();
    await server?.stop();
  }
}

/** Run `fn` while an in-process worker with the Provenant plugin polls the task queue. */
async function withWorker<T>(
  config: Config,
  settings: ConnectionSettings,
  o: { cache: boolean },
  fn: () => Promise<T>,
): Promise<T> {
  await quietRuntime();
  // This process is ours (the CLI's, or a bench's standing in for it): before the worker's threads start.
  keepYoungGenerationSmall();
  const [{ Worker }, { ProvenantPlugin }] = await Promise.all([import('@temporalio/worker'), import('./plugin.js')]);
  const nativeConnection = await connectNative(settings);
  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  try {
    worker = await Worker.create({
      connection: nativeConnection,
      namespace: settings.namespace,
      taskQueue: config.temporal.taskQueue,
      plugins: [new ProvenantPlugin({ config })],
      ...(o.cache ? {} : { maxCachedWorkflows: 0 }),
      // One command's worker runs its workflows on this thread, in the SDK's one reused sandbox
      // context, instead of a workflow thread of their own: that thread is an isolate of its own,
      // ~40 MiB (a 1 GiB restore on Node 24 peaked at 325-330 MiB this way, 369-378 with it).
      // The SDK calls this debugMode (a debugger can attach to threads it cannot see); the
      // deadlock timeout it would lift is kept (an option the SDK reads but does not type).
      // `provenant worker` keeps the thread.
      debugMode: true,
      ...({ isolateExecutionTimeout: '5s' } as object),
    });
    running = worker.run();
    running.catch(() => {});
    return await fn();
  } finally {
    if (worker && worker.getState() === 'RUNNING') worker.shutdown();
    await running?.catch(() => {});
    await nativeConnection.close();
  }
}
