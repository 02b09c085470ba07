/**
 * ProvenantPlugin: adds Provenant's activities (prefixed `provenant…`) and workflows to a
 * user's own worker, and runs a second worker on this host's own task queue for the
 * activities that touch staged files.
 *
 *   const worker = await Worker.create({ connection, taskQueue: 'provenant', plugins: [new ProvenantPlugin()] });
 *
 * A user with their own workflowsPath re-exports ours: `export * from 'provenant/workflows'`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Meter, TracerProvider } from '@opentelemetry/api';
import { Resource } from '@opentelemetry/resources';
import type { ClientOptions } from '@temporalio/client';
import type { DataConverter, PayloadCodec } from '@temporalio/common';
import { OpenTelemetryPlugin, type OpenTelemetryPluginOptions } from '@temporalio/interceptors-opentelemetry';
import { SimplePlugin } from '@temporalio/plugin';
import { Runtime, Worker, type BundleOptions, type ReplayWorkerOptions, type WorkerOptions } from '@temporalio/worker';
import { createActivities, hostQueueName, type ActivitySets } from '../activities/index.js';
import type { StorageProvider } from '../activities/providers/provider.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { codecOf, withCodec } from './codec.js';
import { PrometheusEndpoint } from './metrics.js';
import { TOOL_NAME, TOOL_VERSION } from '../version.js';

/** V8 heap tuning for a worker's process (workers/heap.ts): the CLI applies it; a host's own worker may. */
export { keepYoungGenerationSmall } from './heap.js';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.js', import.meta.url));
/** The same workflows bundled at build time (scripts/bundle-workflows.mjs). */
export const workflowBundlePath = fileURLToPath(new URL('../workflows/bundle.js', import.meta.url));

/** The prebuilt bundle, if it is there and newer than every compiled workflow and shared module. */
function freshBundle(): string | undefined {
  let built: number;
  try {
    built = fs.statSync(workflowBundlePath).mtimeMs;
  } catch {
    return undefined;
  }
  const root = path.dirname(path.dirname(workflowBundlePath));
  for (const dir of ['workflows', 'shared']) {
    for (const f of fs.readdirSync(path.join(root, dir))) {
      if (f.endsWith('.js') && f !== 'bundle.js' && fs.statSync(path.join(root, dir, f)).mtimeMs > built)
        return undefined;
    }
  }
  return workflowBundlePath;
}

export interface ProvenantPluginOptions {
  /** Parsed config; loaded from file + environment when omitted. */
  config?: Config;
  /** Extra providers (e.g. instances built by the caller). */
  providers?: StorageProvider[];
  /** Run the host-queue worker (default true). */
  hostWorker?: boolean;
  /**
   * The payload codec (workers/codec.ts) of workers and clients using this plugin: by default the
   * one the config and environment name (none unless keys are configured); `false` turns it off.
   */
  codec?: PayloadCodec | false;
  /**
   * The OpenTelemetry Meter that Provenant's metrics go to (activities/telemetry.ts). Unset: the
   * built-in Prometheus endpoint when the config names a port (`telemetry.prometheus.port`), served
   * while this plugin's workers run; else no metrics at all.
   */
  meter?: Meter;
  /**
   * Trace workflows and activities (and client calls through this plugin) with OpenTelemetry, to
   * your own span processor; Provenant creates no tracer provider and no exporter of its own.
   */
  tracing?: ProvenantTracing;
}

export interface ProvenantTracing {
  /**
   * Where workflow spans go: made in the workflow sandbox, they reach the worker through a sink
   * and are handed to this processor (yours, e.g. a BatchSpanProcessor with your exporter).
   */
  spanProcessor: OpenTelemetryPluginOptions['spanProcessor'];
  /**
   * The tracer provider that activity and client spans come from: yours, with the same span
   * processor. Unset: the global one (`trace.setGlobalTracerProvider`, or the OpenTelemetry
   * NodeSDK's), which is a no-op until you register one.
   */
  tracerProvider?: TracerProvider;
  /** The resource recorded with workflow spans; `service.name: provenant` when unset. */
  resource?: OpenTelemetryPluginOptions['resource'];
}

/** Temporal's OpenTelemetry plugin (interceptors and the workflow span sink) on the user's tracing. */
function tracingPlugin(t: ProvenantTracing): OpenTelemetryPlugin {
  return new OpenTelemetryPlugin({
    spanProcessor: t.spanProcessor,
    resource: t.resource ?? new Resource({ 'service.name': TOOL_NAME, 'service.version': TOOL_VERSION }),
    ...(t.tracerProvider ? { tracer: t.tracerProvider.getTracer(TOOL_NAME, TOOL_VERSION) } : {}),
  });
}

export class ProvenantPlugin extends SimplePlugin {
  readonly config: Config;
  readonly hostQueue: string;
  private readonly wantHostWorker: boolean;
  /** Workers running with this plugin. */
  private running = 0;
  private host: Promise<{ worker: Worker; run: Promise<void> }> | undefined;
  private readonly acts: ActivitySets;
  /** The payload codec this plugin adds to every worker's and client's data converter, if any. */
  readonly codec: PayloadCodec | undefined;
  /** The built-in Prometheus endpoint, when the config names a port and no meter was passed. */
  readonly metrics: PrometheusEndpoint | undefined;
  /** Temporal's OpenTelemetry plugin on the user's span processor, when tracing was asked for. */
  private readonly tracing: OpenTelemetryPlugin | undefined;

  constructor(opts: ProvenantPluginOptions = {}) {
    const config = opts.config ?? loadConfig();
    const hostQueue = hostQueueName(config.temporal.taskQueue, config.stagingDir);
    // The codec first: a bad keys file fails before any provider client is opened.
    const codec = opts.codec === false ? undefined : (opts.codec ?? codecOf(config));
    const metrics = opts.meter ? undefined : PrometheusEndpoint.of(config.telemetry);
    const meter = opts.meter ?? metrics?.meter;
    const activities = createActivities({ config, providers: opts.providers, hostQueue, ...(meter ? { meter } : {}) });
    super({
      name: 'provenant',
      // Only the shared set here: host-bound activities are registered on the host queue alone.
      activities: { ...activities.shared },
      // Appended to the data converter of every worker and client this plugin configures.
      ...(codec ? { dataConverter: (dc: DataConverter | undefined) => withCodec(dc, codec) } : {}),
    });
    this.codec = codec;
    this.metrics = metrics;
    this.tracing = opts.tracing && tracingPlugin(opts.tracing);
    this.config = config;
    this.hostQueue = hostQueue;
    this.acts = activities;
    this.wantHostWorker = opts.hostWorker ?? true;
  }

  /**
   * Our workflows, unless the worker has its own: the bundle made at build time when it is fresh
   * and no workflow interceptor modules need bundling in (they would be left out of a prebuilt
   * bundle), else the workflows' path, bundled by the worker.
   */
  override configureClient(options: ClientOptions): ClientOptions {
    return super.configureClient(this.tracing ? this.tracing.configureClient(options) : options);
  }

  override configureReplayWorker(options: ReplayWorkerOptions): ReplayWorkerOptions {
    return super.configureReplayWorker(this.tracing ? this.tracing.configureReplayWorker(options) : options);
  }

  override configureBundler(options: BundleOptions): BundleOptions {
    return super.configureBundler(this.tracing ? this.tracing.configureBundler(options) : options);
  }

  override configureWorker(options: WorkerOptions): WorkerOptions {
    // With tracing, a worker naming no workflows of its own bundles ours with the tracing's workflow
    // interceptor module (a plugin adds interceptor modules only to a worker with a workflowsPath).
    const own = !!(options.workflowsPath || options.workflowBundle);
    const traced = this.tracing?.configureWorker(own ? options : { ...options, workflowsPath });
    const o = super.configureWorker(traced ?? options);
    if (o.workflowsPath || o.workflowBundle) return o;
    const bundle = o.interceptors?.workflowModules?.length ? undefined : freshBundle();
    return bundle ? { ...o, workflowBundle: { codePath: bundle } } : { ...o, workflowsPath };
  }

  override async runWorker(worker: Worker, next: (w: Worker) => Promise<void>): Promise<void> {
    this.running++;
    try {
      // Served from the first worker's start to the last one's stop. A port that cannot be had
      // (another worker of this config on the host holds it) costs the metrics, not the worker.
      await this.metrics?.start().catch((err: unknown) => {
        Runtime.instance().logger.warn(`metrics endpoint ${this.metrics?.url} not served: ${(err as Error).message}`);
      });
      // One host-queue worker per plugin, however many workers use it (Temporal refuses two on one queue).
      if (this.wantHostWorker && worker.connection) {
        this.host ??= Worker.create({
          connection: worker.connection,
          namespace: worker.options.namespace,
          taskQueue: this.hostQueue,
          // The same data converter (with the codec, when there is one) and activity interceptors as the worker's.
          dataConverter: worker.options.dataConverter,
          interceptors: { activity: worker.options.interceptors.activity },
          activities: { ...this.acts.host },
        }).then((w) => ({ worker: w, run: w.run() }));
        await this.host;
      }
      await super.runWorker(worker, next);
    } finally {
      // The last worker using this plugin stops the host-queue worker and releases the provider clients.
      if (--this.running === 0) {
        const host = await this.host?.catch(() => undefined);
        this.host = undefined;
        if (host) {
          if (host.worker.getState() === 'RUNNING') host.worker.shutdown();
          await host.run;
        }
        // The plugin owns the provider clients: released when the last worker using it stops.
        await this.acts.close();
        await this.metrics?.stop();
      }
    }
  }
}
