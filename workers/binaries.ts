/**
 * Find (or build) the storage servers that tests and local set-ups run: MinIO (S3) and Kubo
 * (IPFS). Same order as the Temporal CLI: an explicit path from the environment, the binary on
 * PATH, the Provenant cache, then a Go build into the cache (minutes, first time only), and
 * only then undefined. `scripts/setup.sh` builds the same binaries ahead of time.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { cacheDir, goInstall, isExecutable, onPath, type ResolveOptions } from './temporal-cli.js';

/** MinIO tags releases as RELEASE.<date>, not semver, so Go resolves its newest commit. */
export const MINIO_MODULE = 'github.com/minio/minio@latest';
export const KUBO_VERSION = 'v0.42.0';
/** The Python Temporal client that `npm run setup` installs into a virtualenv of its own. */
export const PY_TEMPORALIO_VERSION = '1.35.0';
export const KUBO_MODULE = 'github.com/ipfs/kubo';

interface ServerBinary {
  /** Environment variable naming the binary. */
  envVar: string;
  /** Name on PATH. */
  command: string;
  /** File name in the Provenant cache. */
  cached: string;
  build(target: string, log: (m: string) => void): string | undefined;
}

const MINIO: ServerBinary = {
  envVar: 'PROVENANT_MINIO_BIN',
  command: 'minio',
  cached: 'minio',
  build: (target, log) => goInstall(MINIO_MODULE, 'minio', target, log),
};

const KUBO: ServerBinary = {
  envVar: 'PROVENANT_KUBO_BIN',
  command: 'ipfs',
  cached: `ipfs-${KUBO_VERSION}`,
  // Kubo's go.mod has `exclude` directives, which `go install module@version` refuses:
  // build its cmd/ipfs from the downloaded module instead.
  build: (target, log) => goBuildModule(KUBO_MODULE, KUBO_VERSION, './cmd/ipfs', target, log),
};

function resolve(b: ServerBinary, opts: ResolveOptions): string | undefined {
  const env = opts.env ?? process.env;
  const explicit = env[b.envVar];
  if (explicit) {
    if (!isExecutable(explicit)) throw new Error(`${b.envVar} is not an executable file: ${explicit}`);
    return explicit;
  }
  const found = onPath(b.command, env);
  if (found) return found;
  const cached = path.join(cacheDir(env), 'bin', b.cached);
  if (isExecutable(cached)) return cached;
  if (opts.build === false) return undefined;
  return b.build(cached, opts.log ?? (() => {}));
}

export function resolveMinio(opts: ResolveOptions = {}): string | undefined {
  return resolve(MINIO, opts);
}

export function resolveKubo(opts: ResolveOptions = {}): string | undefined {
  return resolve(KUBO, opts);
}

/**
 * `go build` one package of a module at a version, from the module cache, into `target`.
 * Returns undefined when Go is missing or the build fails.
 */
export function goBuildModule(
  module: string,
  version: string,
  pkg: string,
  target: string,
  log: (m: string) => void,
): string | undefined {
  if (isExecutable(target)) return target;
  const go = spawnSync('go', ['version'], { stdio: 'ignore' });
  if (go.status !== 0) return undefined;
  log(`building ${module}@${version} (${pkg}) with go build (first time only; takes a few minutes)`);
  let dir: string;
  try {
    dir = (
      JSON.parse(execFileSync('go', ['mod', 'download', '-json', `${module}@${version}`], { encoding: 'utf8' })) as {
        Dir: string;
      }
    ).Dir;
  } catch {
    return undefined;
  }
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const tmp = `${target}.build-${process.pid}`;
  const r = spawnSync('go', ['build', '-trimpath', '-buildvcs=false', '-mod=readonly', '-o', tmp, pkg], {
    cwd: dir,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0) {
    fs.rmSync(tmp, { force: true });
    return undefined;
  }
  fs.renameSync(tmp, target);
  return target;
}

/**
 * A Python with the Temporal client importable: PROVENANT_PYTHON, else the virtualenv that
 * `npm run setup` made; undefined when neither is there (nothing is installed from here).
 */
export function resolvePythonClient(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.PROVENANT_PYTHON) return env.PROVENANT_PYTHON;
  const dir = path.join(cacheDir(env), `python-temporalio-${PY_TEMPORALIO_VERSION}`);
  return fs.existsSync(path.join(dir, '.installed')) ? path.join(dir, 'bin', 'python') : undefined;
}
