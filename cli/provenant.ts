#!/usr/bin/env node
/**
 * provenant — archive, check and restore datasets through durable Temporal workflows (cli/main.ts).
 *
 * This entry only turns on Node's compile cache, then loads the CLI: a static import would be
 * compiled before the cache is on. With it (Node 22.1+), each later run reads the compiled code of
 * the CLI and its dependencies from ~/.cache/provenant/compile-cache (XDG_CACHE_HOME respected)
 * instead of compiling them again. Older Node has no `enableCompileCache`: it runs as before.
 * NODE_DISABLE_COMPILE_CACHE=1 turns it off.
 *
 * It also holds V8's young generation at its starting size (workers/heap.ts) before anything
 * else loads: set later, the growth that loading the SDK causes stays (a 1 GiB restore on Node 24
 * peaked at 372-394 MiB with the tuning applied when the worker starts, 334-335 applied here).
 */
import module from 'node:module';
import os from 'node:os';
import path from 'node:path';

const cacheRoot = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
try {
  (module as { enableCompileCache?: (dir: string) => unknown }).enableCompileCache?.(
    path.join(cacheRoot, 'provenant', 'compile-cache'),
  );
} catch {
  /* a cache that cannot be written only costs speed */
}

(await import('../workers/heap.js')).keepYoungGenerationSmall();
const { main } = await import('./main.js');
void main(process.argv.slice(2)).then((code) => process.exit(code));
