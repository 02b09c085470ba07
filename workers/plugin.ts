/**
 * ProvenantPlugin: adds Provenant's activities (prefixed `provenant…`) and workflows to a
 * user's own worker, and runs a second worker on this host's own task queue for the
 * activities that touch staged files.
 *
 *   const worker = await Worker.create({ connection, taskQueue: 'provenant', plugins: [new ProvenantPlugin()] });
 *
 * A user with their own workflowsPath re-exports ours: `export * from 'provenant/workflows'`.
 */
import { fileURLToPath } from 'node:url';
import { SimplePlugin } from '@temporalio/plugin';
import { Worker } from '@temporalio/worker';
import { closeActivities, createActivities, hostQueueName } from '../activities/index.js';
import type { StorageProvider } from '../activities/providers/provider.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.js', import.meta.url));

export interface ProvenantPluginOptions {
  /** Parsed config; loaded from file + environment when omitted. */
  config?: Config;
  /** Extra providers (e.g. instances built by the caller). */
  providers?: StorageProvider[];
  /** Run the host-queue worker (default true). */
  hostWorker?: boolean;
}

export class ProvenantPlugin extends SimplePlugin {
  readonly config: Config;
  readonly hostQueue: string;
  private readonly wantHostWorker: boolean;
  /** Workers running with this plugin. */
  private running = 0;
  private host: Promise<{ worker: Worker; run: Promise<void> }> | undefined;
  private readonly acts: ReturnType<typeof createActivities>;

  constructor(opts: ProvenantPluginOptions = {}) {
    const config = opts.config ?? loadConfig();
    const hostQueue = hostQueueName(config.temporal.taskQueue, config.stagingDir);
    const activities = createActivities({ config, providers: opts.providers, hostQueue });
    super({
      name: 'provenant',
      activities,
      workflowsPath: (p) => p ?? workflowsPath,
    });
    this.config = config;
    this.hostQueue = hostQueue;
    this.acts = activities;
    this.wantHostWorker = opts.hostWorker ?? true;
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
          activities: this.acts,
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
        await closeActivities(this.acts);
      }
    }
  }
}
