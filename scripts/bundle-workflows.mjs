// Bundles Provenant's workflows once, at build time, next to the compiled workflows
// (<out>/workflows/bundle.js). A worker given the bundle skips webpack at start-up, which saves
// seconds per worker and over 100 MiB of the worker's peak memory. Usage: node scripts/bundle-workflows.mjs dist|lib
import fs from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

const out = path.resolve(process.argv[2] ?? 'dist');
const workflowsPath = path.join(out, 'workflows', 'index.js');
const quiet = {
  log() {},
  trace() {},
  debug() {},
  info() {},
  warn: (m) => console.warn(m),
  error: (m) => console.error(m),
};
const { code } = await bundleWorkflowCode({ workflowsPath, logger: quiet });
const target = path.join(out, 'workflows', 'bundle.js');
fs.writeFileSync(`${target}.tmp`, code);
fs.renameSync(`${target}.tmp`, target);
