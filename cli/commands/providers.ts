/**
 * provenant providers [--no-usage]: each configured provider's health now (a cheap probe through
 * the provider interface: the status of a piece no one stores), its cool-down (the placement
 * health memory kept on this host), and what the stewards' replica tables say it stores (pieces,
 * bytes, datasets). Usage pages through the running stewards by visibility query and streams
 * each table page by page, so memory holds one page and the per-provider sums, whatever the fleet
 * size; its cost grows with the replicas (table blocks are cached per host). --no-usage skips it.
 * Exit 1 when a provider does not answer.
 */
import path from 'node:path';
import { HealthMemory } from '../../activities/providers/health.js';
import { pieceOfCar, smallCar } from '../../activities/providers/kit/car.js';
import { ProviderSet } from '../../activities/providers/registry.js';
import { placementPolicy } from '../../activities/ingest/archive-input.js';
import { tableStoreOf } from '../../activities/steward/activities.js';
import { stewardsQuery } from '../../activities/steward/rehome.js';
import { encodeBlock } from '../../activities/steward/table.js';
import type { Config } from '../../config/schema.js';
import type { StewardReplica } from '../../shared/types.js';
import { stewardStatusQuery } from '../../workflows/index.js';
import { withRuntime } from '../../workers/runtime.js';
import { humanBytes } from '../kit.js';
import { command } from './run.js';

const PROBE_TIMEOUT_MS = 10_000;
/** Stewards read at once while summing usage. */
const USAGE_CONCURRENCY = 4;

/** A piece CID that no one stores: asking for its status is the probe. */
function probePiece(): string {
  const { cid, bytes } = encodeBlock({ type: 'provenant/probe', v: 1 });
  return pieceOfCar(smallCar(cid, [{ cid, bytes }]), cid.toString()).pieceCid;
}

interface Row extends Partial<Usage> {
  id: string;
  kind: string;
  reachable: boolean;
  error?: string;
  cooling: boolean;
}

interface Usage {
  pieces: number;
  healthy: number;
  bytes: number;
  datasets: number;
}

/** Sum every running steward's replicas per provider, one steward page at a time. */
async function usageOf(config: Config, set: ProviderSet): Promise<{ usage: Map<string, Usage>; datasets: number }> {
  const usage = new Map<string, Usage>();
  const store = tableStoreOf({ config, providers: set });
  let datasets = 0;
  const add = (replicas: StewardReplica[], seen: Set<string>) => {
    for (const r of replicas) {
      const u = usage.get(r.providerId) ?? { pieces: 0, healthy: 0, bytes: 0, datasets: 0 };
      u.pieces++;
      u.bytes += r.bytes;
      if (r.state === 'healthy') u.healthy++;
      if (!seen.has(r.providerId)) {
        seen.add(r.providerId);
        u.datasets++;
      }
      usage.set(r.providerId, u);
    }
  };
  await withRuntime(
    config,
    async ({ client, query }) => {
      const one = async (workflowId: string) => {
        const st = await query(() => client.workflow.getHandle(workflowId).query(stewardStatusQuery));
        const seen = new Set<string>();
        datasets++;
        if (st.replicas) add(st.replicas, seen);
        else for await (const page of store.replicas(st.replicaTable?.tableCid ?? null)) add(page, seen);
      };
      let batch: Promise<void>[] = [];
      for await (const w of client.workflow.list({ query: stewardsQuery(config.temporal.taskQueue) })) {
        batch.push(one(w.workflowId));
        if (batch.length >= USAGE_CONCURRENCY) {
          await Promise.all(batch);
          batch = [];
        }
      }
      await Promise.all(batch);
    },
    // Queries need a worker for the stewards' task queue: a running one, else one in this process.
    { worker: 'auto' },
  );
  return { usage, datasets };
}

export const providers = command(
  'providers [--no-usage]   each provider: reachable now, cooling down, pieces and bytes stored',
  { 'no-usage': { type: 'boolean' } },
  async ({ config, out, values }) => {
    const set = new ProviderSet(config.providers);
    try {
      const probe = probePiece();
      const { cooldownMs } = placementPolicy(config);
      const health = new HealthMemory(path.join(config.dataDir, 'provider-health.json'));
      const cooling = new Set(
        await health.cooling(
          set.all().map((p) => p.id),
          cooldownMs,
        ),
      );
      const probes = await Promise.all(
        set.all().map(async (p): Promise<Row> => {
          const row = { id: p.id, kind: p.kind, cooling: cooling.has(p.id) };
          try {
            await p.status({ pieceCid: probe }, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
            return { ...row, reachable: true };
          } catch (err) {
            return { ...row, reachable: false, error: (err as Error).message.split('\n')[0] };
          }
        }),
      );
      const u = values['no-usage'] ? undefined : await usageOf(config, set);
      const rows: Row[] = probes.map((p) => ({
        ...p,
        ...(u ? (u.usage.get(p.id) ?? { pieces: 0, healthy: 0, bytes: 0, datasets: 0 }) : {}),
      }));
      // Providers named in replica tables but no longer configured.
      const unknown = u ? [...u.usage.keys()].filter((id) => !probes.some((p) => p.id === id)) : [];
      for (const id of unknown)
        rows.push({
          id,
          kind: 'unconfigured',
          reachable: false,
          error: 'not in the config',
          cooling: false,
          ...u!.usage.get(id),
        });
      out.result(
        { providers: rows, cooldownMs, ...(u ? { datasets: u.datasets } : {}) },
        [
          `provider\tkind\treachable\tcooling${u ? '\tpieces\tbytes\tdatasets' : ''}`,
          ...rows.map(
            (r) =>
              `${r.id}\t${r.kind}\t${r.reachable ? 'yes' : `no (${r.error ?? ''})`}\t${r.cooling ? 'yes' : 'no'}` +
              (r.pieces !== undefined ? `\t${r.pieces}\t${humanBytes(r.bytes ?? 0)}\t${r.datasets ?? 0}` : ''),
          ),
        ].join('\n'),
      );
      return rows.every((r) => r.reachable) ? 0 : 1;
    } finally {
      await set.close();
    }
  },
);
