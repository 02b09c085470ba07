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
import type { DataConverter, PayloadCodec } from '@temporalio/common';
import { SimplePlugin } from '@temporalio/plugin';
import { Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, hostQueueName, type ActivitySets } from '../activities/index.js';
import type { StorageProvider } from '../activities/providers/provider.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { codecOf, withCodec } from './codec.js';

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

  constructor(opts: ProvenantPluginOptions = {}) {
    const config = opts.config ?? loadConfig();
    const hostQueue = hostQueueName(config.temporal.taskQueue, config.stagingDir);
    // The codec first: a bad keys file fails before any provider client is opened.
    const codec = opts.codec === false ? undefined : (opts.codec ?? codecOf(config));
    const activities = createActivities({ config, providers: opts.providers, hostQueue });
    super({
      name: 'provenant',
      // Only the shared set here: host-bound activities are registered on the host queue alone.
      activities: { ...activities.shared },
      // Appended to the data converter of every worker and client this plugin configures.
      ...(codec ? { dataConverter: (dc: DataConverter | undefined) => withCodec(dc, codec) } : {}),
    });
    this.codec = codec;
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
  override configureWorker(options: WorkerOptions): WorkerOptions {
    const o = super.configureWorker(options);
    if (o.workflowsPath || o.workflowBundle) return o;
    const bundle = o.interceptors?.workflowModules?.length ? undefined : freshBundle();
    return bundle ? { ...o, workflowBundle: { codePath: bundle } } : { ...o, workflowsPath };
  }

  override async runWorker(worker: Worker, next: (w: Worker) => Promise<void>): Promise<void> {
    this.running++;
    try {
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
      }
    }
  }
}
