/**
 * Health memory: when each provider last failed an upload, kept in a small JSON file on this host
 * so that later placements avoid a failing provider for a cool-down (the Synapse SDK leaves this
 * to callers). Writes are atomic; a lost or unreadable file only forgets history.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';

interface Entry {
  lastFailureAt: string;
  failures: number;
  lastError: string;
}

export class HealthMemory {
  private queue: Promise<unknown> = Promise.resolve();
  constructor(private readonly file: string) {}

  private async read(): Promise<Record<string, Entry>> {
    try {
      return JSON.parse(await fsp.readFile(this.file, 'utf8')) as Record<string, Entry>;
    } catch {
      return {};
    }
  }

  /** Record a failed upload (serialised within this process). */
  failed(providerId: string, error: string): Promise<void> {
    const run = this.queue.then(async () => {
      const all = await this.read();
      const prev = all[providerId];
      all[providerId] = {
        lastFailureAt: new Date().toISOString(),
        failures: (prev?.failures ?? 0) + 1,
        lastError: error.slice(0, 500),
      };
      await fsp.mkdir(path.dirname(this.file), { recursive: true });
      const tmp = `${this.file}.${process.pid}.tmp`;
      await fsp.writeFile(tmp, JSON.stringify(all, null, 2));
      await fsp.rename(tmp, this.file);
    });
    this.queue = run.catch(() => {});
    return run.catch(() => {});
  }

  async cooling(providerIds: string[], cooldownMs: number): Promise<string[]> {
    if (cooldownMs <= 0) return [];
    const all = await this.read();
    const now = Date.now();
    return providerIds.filter((id) => {
      const e = all[id];
      return !!e && now - Date.parse(e.lastFailureAt) < cooldownMs;
    });
  }
}
