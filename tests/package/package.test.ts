/**
 * The published package, as a new user gets it: `npm pack`, install the tarball into a fresh
 * project without the registry, then import every entry point (and type-check against them).
 *
 * No registry traffic: `npm install --offline <tarball>` alone cannot work, since it must fetch
 * each dependency's metadata, and `npm ci` (which filled the cache) fetches only tarballs. So the
 * fresh project gets a lockfile made from ours: the same resolved versions and integrity hashes,
 * minus the dev dependencies, plus the tarball. `npm ci --offline` then installs everything from
 * the npm cache, and fails (ENOTCACHED) rather than reach the network.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { tmpDir } from '../helpers/env.js';

const repo = path.resolve('.');
const npm = (args: string[], cwd: string): string =>
  execFileSync('npm', args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });

interface PackResult {
  filename: string;
  files: { path: string }[];
}
interface LockEntry {
  dev?: boolean;
  devOptional?: boolean;
  [k: string]: unknown;
}
interface PackageJson {
  name: string;
  version: string;
  license: string;
  dependencies: Record<string, string>;
  bin: Record<string, string>;
  engines: Record<string, string>;
}

describe('the npm package', () => {
  const work = tmpDir('pv-pack-');
  const project = path.join(work, 'consumer');
  let packed: PackResult;

  before(() => {
    // `npm pack` runs prepack (the library build) and reports what it put in the tarball.
    packed = (JSON.parse(npm(['pack', '--json', '--pack-destination', work], repo)) as PackResult[])[0]!;
  });

  it('ships the built library and no tests, bench or source maps', () => {
    const files = packed.files.map((f) => f.path);
    assert.ok(files.includes('package.json'));
    for (const entry of [
      'lib/index.js',
      'lib/index.d.ts',
      'lib/workflows/index.js',
      'lib/workers/plugin.js',
      'lib/providers.js',
      'lib/providers.d.ts',
      'lib/cli/provenant.js',
      'LICENSE',
    ]) {
      assert.ok(files.includes(entry), `${entry} is in the tarball`);
    }
    const unwanted = files.filter(
      (f) => /(^|\/)(tests|bench)\//.test(f) || f.endsWith('.map') || (f.endsWith('.ts') && !f.endsWith('.d.ts')),
    );
    assert.deepEqual(unwanted, []);
  });

  it('installs into a fresh project from the npm cache and every entry point imports', () => {
    const tarball = path.join(work, packed.filename);
    const pkg = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as PackageJson;
    const lock = JSON.parse(fs.readFileSync(path.join(repo, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, LockEntry>;
    };
    const spec = `file:${tarball}`;
    const packages: Record<string, unknown> = {
      '': { name: 'consumer', dependencies: { provenant: spec } },
      'node_modules/provenant': {
        version: pkg.version,
        resolved: spec,
        license: pkg.license,
        dependencies: pkg.dependencies,
        bin: pkg.bin,
        engines: pkg.engines,
        integrity: `sha512-${crypto.createHash('sha512').update(fs.readFileSync(tarball)).digest('base64')}`,
      },
    };
    for (const [key, entry] of Object.entries(lock.packages)) {
      if (!key || entry.dev) continue;
      const { devOptional, ...rest } = entry;
      packages[key] = devOptional ? { ...rest, optional: true } : rest;
    }
    fs.mkdirSync(project);
    fs.writeFileSync(
      path.join(project, 'package.json'),
      JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { provenant: spec } }),
    );
    fs.writeFileSync(
      path.join(project, 'package-lock.json'),
      JSON.stringify({ name: 'consumer', lockfileVersion: 3, requires: true, packages }),
    );
    npm(['ci', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], project);

    fs.writeFileSync(
      path.join(project, 'imports.mjs'),
      `
const root = await import('provenant');
const workflows = await import('provenant/workflows');
const plugin = await import('provenant/plugin');
const providers = await import('provenant/providers');
console.log(JSON.stringify({
  root: typeof root.ProvenantPlugin, loadConfig: typeof root.loadConfig, configError: typeof root.ConfigError,
  workflows: typeof workflows.archiveDataset, plugin: typeof plugin.ProvenantPlugin, registry: typeof providers.createProvider,
  local: typeof providers.LocalProvider,
}));
`,
    );
    const out = execFileSync(process.execPath, ['imports.mjs'], { cwd: project, encoding: 'utf8' });
    assert.deepEqual(JSON.parse(out), {
      root: 'function',
      loadConfig: 'function',
      configError: 'function',
      workflows: 'function',
      plugin: 'function',
      registry: 'function',
      local: 'function',
    });
  });

  it('resolves the types of every entry point (exports `types` conditions)', () => {
    fs.writeFileSync(
      path.join(project, 'types.ts'),
      `
import { ProvenantPlugin, loadConfig, type Config } from 'provenant';
import type { StorageProvider } from 'provenant/providers';
import type { LocalProvider } from 'provenant/providers';
import type * as wf from 'provenant/workflows';
import type { ProvenantPluginOptions } from 'provenant/plugin';
const config: Config = loadConfig();
const options: ProvenantPluginOptions = { config };
const implementsContract: LocalProvider extends StorageProvider ? true : false = true;
export const used: [unknown, boolean, typeof ProvenantPlugin, typeof wf.archiveDataset | undefined] = [options, implementsContract, ProvenantPlugin, undefined];
`,
    );
    fs.writeFileSync(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({
        // @types/node is a dev dependency of ours, not the consumer's: the compiler finds it in ours.
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [path.join(repo, 'node_modules', '@types')],
        },
        files: ['types.ts'],
      }),
    );
    execFileSync(
      process.execPath,
      [path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'],
      { cwd: project, encoding: 'utf8' },
    );
  });
});
