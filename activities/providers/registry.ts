/** Build provider instances from config: the only place that maps a `kind` to a class. */
import type { ProviderConfig } from '../../config/schema.js';
import { UnknownProviderError } from '../errors.js';
import { msToNumber } from '@temporalio/common/lib/time.js';
import { KuboProvider } from './kubo.js';
import { LocalProvider } from './local.js';
import { LotusProvider } from './lotus.js';
import type { StorageProvider } from './provider.js';
import { S3Provider } from './s3.js';
import { SynapseProvider } from './synapse.js';

/** Credentials are read from `env` (the variables the config names) when the provider is built. */
export function createProvider(cfg: ProviderConfig, env: NodeJS.ProcessEnv = process.env): StorageProvider {
  switch (cfg.kind) {
    case 'local':
      return new LocalProvider(cfg.id, cfg.path, cfg.retention ? msToNumber(cfg.retention as never) : undefined);
    case 's3':
      return new S3Provider(cfg, env);
    case 'kubo':
      return new KuboProvider(cfg, env);
    case 'synapse':
      return new SynapseProvider(cfg, env);
    case 'lotus':
      return new LotusProvider(cfg, env);
  }
}

export class ProviderSet {
  private readonly byId = new Map<string, StorageProvider>();
  constructor(configs: ProviderConfig[], extra: StorageProvider[] = []) {
    for (const c of configs) this.byId.set(c.id, createProvider(c));
    for (const p of extra) this.byId.set(p.id, p);
  }
  get(id: string): StorageProvider {
    const p = this.byId.get(id);
    if (!p)
      throw new UnknownProviderError(
        `unknown provider '${id}' (configured: ${[...this.byId.keys()].join(', ') || 'none'})`,
      );
    return p;
  }
  all(): StorageProvider[] {
    return [...this.byId.values()];
  }
  async close(): Promise<void> {
    await Promise.all(this.all().map((p) => p.close?.()));
  }
}
