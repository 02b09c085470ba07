/**
 * V8 heap tuning for a process that Provenant owns and that runs a worker: the CLI's in-process
 * worker (workers/runtime.ts) and `provenant worker` (workers/main.ts).
 *
 * V8 grows a busy isolate's young generation (new space) from its 1 MiB semi-spaces up to 32 MiB
 * (Node 20) or 128 MiB (Node 24; tests/workers/heap.test.ts), in every isolate: the main one, the
 * SDK's workflow thread, the pack and hash threads. A pack or a restore allocates fast (stream chunks, promises), so every
 * isolate grows to the maximum and keeps it: on Node 24, a 1 GiB restore on an in-process worker
 * peaked at 395-469 MiB with a main heap of 184 MiB committed for 48 MiB live. Held at its
 * starting size (`--semi-space-growth-factor=1`), the same restore peaked at 339-377 MiB with
 * the heap at 58 MiB, and ran as fast or faster (2.4-2.7 s against 2.8-3.3 s; a small young
 * generation stays in cache). `npm run bench` measures the effect on a fresh machine.
 *
 * The growth factor is read each time new space would grow, so setting it at run time takes
 * effect at once, in every isolate (flags are per process), including threads started later
 * (Node 22+; Node 20 starts a thread's new space at its maximum). Unlike `--max-semi-space-size`,
 * which only takes effect as a node flag at start-up. It does not shrink what has grown already:
 * call it first thing (cli/provenant.ts does, before it loads anything else); the worker's start
 * calls it again as a fallback, where it is idempotent.
 *
 * Process-wide: the plugin (workers/plugin.ts) never calls this, so a host's own worker keeps the
 * flags its owner gave it (README: "Memory" says how to pass the same flag there).
 * PROVENANT_V8_DEFAULTS=1 leaves V8's defaults alone.
 */
import v8 from 'node:v8';

const YOUNG_GENERATION_FLAG = '--semi-space-growth-factor=1';

let applied = false;

/** Holds V8's young generation at its starting size in this process (once; see above). */
export function keepYoungGenerationSmall(env: NodeJS.ProcessEnv = process.env): boolean {
  if (applied) return true;
  if (env.PROVENANT_V8_DEFAULTS === '1') return false;
  v8.setFlagsFromString(YOUNG_GENERATION_FLAG);
  applied = true;
  return true;
}
