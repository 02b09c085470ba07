/** Standalone worker: `node dist/workers/main.js` (config from PROVENANT_CONFIG + environment). */
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { connectionSettings, connectNative } from './connection.js';
import { keepYoungGenerationSmall } from './heap.js';

/**
 * Run a worker until it is shut down. `config` is the caller's (`provenant worker --config FILE`);
 * by default PROVENANT_CONFIG + environment. Connection settings (TLS, API key, profile) as for
 * the client (workers/connection.ts). @temporalio/worker and the plugin load here, not on import,
 * so the CLI's other commands do not pay for them.
 */
export async function runWorker(config: Config = loadConfig()): Promise<void> {
  const settings = connectionSettings(config.temporal);
  keepYoungGenerationSmall();
  const [{ Worker }, { ProvenantPlugin }] = await Promise.all([import('@temporalio/worker'), import('./plugin.js')]);
  const connection = await connectNative(settings);
  try {
    const plugin = new ProvenantPlugin({ config });
    const worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      plugins: [plugin],
    });
    console.error(
      `provenant worker: queue ${config.temporal.taskQueue} + host queue ${plugin.hostQueue} at ${settings.describe}` +
        (plugin.metrics ? `; metrics at ${plugin.metrics.url}` : ''),
    );
    await worker.run();
  } finally {
    await connection.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runWorker().catch((err) => {
    console.error(`provenant worker: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    process.exit(1);
  });
}
