/**
 * Find (or build) the Temporal CLI that runs the dev server. Order:
 * TEMPORAL_CLI_PATH, `temporal` on PATH, the Provenant cache, `go install` (pinned), and
 * only then undefined (callers may fall back to the SDK's own download).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const TEMPORAL_CLI_VERSION = 'v1.5.1';
export const TEMPORAL_CLI_MODULE = `github.com/temporalio/cli/cmd/temporal@${TEMPORAL_CLI_VERSION}`;

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PROVENANT_CACHE_DIR) return env.PROVENANT_CACHE_DIR;
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'provenant');
}

export function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

export function onPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

export interface ResolveOptions {
  env?: NodeJS.ProcessEnv;
  /** Allow building with `go install` when nothing else is found (minutes, first time only). */
  build?: boolean;
  log?: (msg: string) => void;
}

/** Build a Go tool into the Provenant cache; returns its path or undefined when Go is missing. */
export function goInstall(
  module: string,
  binName: string,
  target: string,
  log: (m: string) => void,
): string | undefined {
  if (isExecutable(target)) return target;
  const go = onPath('go', process.env);
  if (!go) return undefined;
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const tmp = fs.mkdtempSync(path.join(path.dirname(target), '.build-'));
  log(`building ${module} with go install (first time only; takes a few minutes)`);
  const r = spawnSync(go, ['install', module], {
    env: { ...process.env, GOBIN: tmp },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  try {
    if (r.status !== 0) return undefined;
    fs.renameSync(path.join(tmp, binName), target);
    return target;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export function resolveTemporalCli(opts: ResolveOptions = {}): string | undefined {
  const env = opts.env ?? process.env;
  const log = opts.log ?? (() => {});
  if (env.TEMPORAL_CLI_PATH) {
    if (!isExecutable(env.TEMPORAL_CLI_PATH))
      throw new Error(`TEMPORAL_CLI_PATH is not an executable file: ${env.TEMPORAL_CLI_PATH}`);
    return env.TEMPORAL_CLI_PATH;
  }
  const found = onPath('temporal', env);
  if (found) return found;
  const cached = path.join(cacheDir(env), 'bin', `temporal-${TEMPORAL_CLI_VERSION}`);
  if (isExecutable(cached)) return cached;
  if (opts.build === false) return undefined;
  return goInstall(TEMPORAL_CLI_MODULE, 'temporal', cached, log);
}

export function temporalCliVersion(bin: string): string {
  return execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
}
