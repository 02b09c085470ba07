/**
 * The bad-input catalogue: every case runs the real `provenant` CLI and asserts its typed error,
 * its one-line message, its exit code, and that nothing was written halfway (no provider object,
 * no staging file, no file in a restore target). Cases that need Temporal share one dev server
 * started here; the CLI runs its own in-process worker against it. README "Troubleshooting" lists
 * what each error means and what to do.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bytesOf, startTemporal, tmpDir, writeTree } from '../helpers/env.js';
import { recordReliability } from '../helpers/reliability.js';

const CLI = path.resolve(process.env.PROVENANT_TEST_DIST ?? 'dist', 'cli/provenant.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string>, cwd?: string): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(cwd ? { cwd } : {}),
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Every file under `dir` (relative paths), or [] when it does not exist. */
function listing(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((e) => !e.isDirectory())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

interface Case {
  name: string;
  /** Arguments after `provenant`; a function gets the case's own directory. */
  args: (dir: string) => string[];
  /** Makes what the case needs in its directory; returns extra environment. */
  setup?: (dir: string) => Record<string, string> | void;
  /** Needs the shared Temporal server (else Temporal is unreachable on purpose: it must not matter). */
  server?: boolean;
  type: string;
  /** What the one line must say after `provenant: <type>: `. */
  message: RegExp;
  code: 1 | 2;
  /** Directories (under the case's dir) that must be as they were before, besides providers and staging. */
  untouched?: string[];
}

const tree = (dir: string) => {
  const src = path.join(dir, 'src');
  writeTree(src, { 'a.bin': bytesOf(70_000, 'bad-input'), 'b/c.txt': 'hello' });
  return src;
};

const yamlConfig = (dir: string, body: string) => {
  const f = path.join(dir, 'config.yaml');
  fs.writeFileSync(f, body);
  return f;
};

const CASES: Case[] = [
  // ---- CLI usage ------------------------------------------------------------------------------
  {
    name: 'unknown command',
    args: () => ['frobnicate'],
    type: 'UsageError',
    message: /unknown command 'frobnicate'/,
    code: 2,
  },
  { name: 'unknown option', args: (d) => ['archive', d, '--frob'], type: 'UsageError', message: /--frob/, code: 2 },
  {
    name: 'replicas not a number',
    args: (d) => ['archive', d, '--replicas', 'two'],
    type: 'UsageError',
    message: /replicas/,
    code: 2,
  },
  {
    name: 'replicas zero',
    args: (d) => ['archive', d, '--replicas', '0'],
    type: 'UsageError',
    message: /replicas/,
    code: 2,
  },
  {
    name: 'meta without a value',
    args: (d) => ['archive', d, '--meta', 'novalue'],
    type: 'UsageError',
    message: /meta/,
    code: 2,
  },
  { name: 'archive without a source', args: () => ['archive'], type: 'UsageError', message: /archive needs/, code: 2 },
  {
    name: 'restore without a target',
    args: () => ['restore', 'ds'],
    type: 'UsageError',
    message: /restore needs/,
    code: 2,
  },
  { name: 'audit without a dataset', args: () => ['audit'], type: 'UsageError', message: /audit needs/, code: 2 },
  {
    name: 'export without a format',
    args: () => ['export', 'ds'],
    type: 'UsageError',
    message: /export needs/,
    code: 2,
  },
  {
    name: 'export in an unknown format',
    args: (d) => ['export', 'ds', '--format', 'pdf', '--out', path.join(d, 'x.pdf')],
    type: 'UsageError',
    message: /unknown export format 'pdf'/,
    code: 2,
    untouched: ['.'],
  },
  // ---- config ---------------------------------------------------------------------------------
  {
    name: 'config file missing',
    args: (d) => ['status', '--config', path.join(d, 'nope.yaml')],
    type: 'ConfigError',
    message: /nope\.yaml/,
    code: 1,
  },
  {
    name: 'config file unparsable',
    args: (d) => ['status', '--config', yamlConfig(d, 'pack: [1, 2\n')],
    type: 'ConfigError',
    message: /config\.yaml/,
    code: 1,
  },
  {
    name: 'shard size below two leaves',
    args: (d) => ['archive', tree(d), '--config', yamlConfig(d, 'pack:\n  shardBytes: 5\n')],
    type: 'ConfigError',
    message: /pack\.shardBytes/,
    code: 1,
  },
  {
    name: 'duplicate provider ids',
    args: (d) => [
      'archive',
      tree(d),
      '--config',
      yamlConfig(d, `providers:\n  - {kind: local, id: p, path: ${d}/p1}\n  - {kind: local, id: p, path: ${d}/p2}\n`),
    ],
    type: 'ConfigError',
    message: /duplicate provider id 'p'/,
    code: 1,
  },
  {
    name: 'unknown provider kind',
    args: (d) => ['archive', tree(d), '--config', yamlConfig(d, `providers:\n  - {kind: floppy, id: f}\n`)],
    type: 'ConfigError',
    message: /providers\.0/,
    code: 1,
  },
  {
    name: 'S3 provider without a bucket',
    args: (d) => [
      'archive',
      tree(d),
      '--config',
      yamlConfig(d, `providers:\n  - {kind: s3, id: s, endpoint: 'http://127.0.0.1:1'}\n`),
    ],
    type: 'ConfigError',
    message: /bucket/,
    code: 1,
  },
  {
    name: 'Kubo API URL not http',
    args: (d) => [
      'archive',
      tree(d),
      '--config',
      yamlConfig(d, `providers:\n  - {kind: kubo, id: k, apiUrl: 'ftp://127.0.0.1:5001'}\n`),
    ],
    type: 'ConfigError',
    message: /apiUrl/,
    code: 1,
  },
  {
    name: 'Lotus miner id malformed',
    args: (d) => [
      'archive',
      tree(d),
      '--config',
      yamlConfig(
        d,
        `providers:\n  - {kind: lotus, id: l, apiUrl: 'http://127.0.0.1:1234/rpc/v0', minerId: 'miner1', retrievalUrl: 'http://127.0.0.1:1', clientAddress: 'f1abc'}\n`,
      ),
    ],
    type: 'ConfigError',
    message: /minerId/,
    code: 1,
  },
  // ---- sources --------------------------------------------------------------------------------
  {
    name: 'source does not exist',
    args: (d) => ['archive', path.join(d, 'missing')],
    server: true,
    type: 'SourceNotFoundError',
    message: /missing/,
    code: 1,
  },
  {
    name: 'source is a file',
    args: (d) => ['archive', path.join(tree(d), 'a.bin')],
    server: true,
    type: 'NotADirectoryError',
    message: /a\.bin/,
    code: 1,
  },
  {
    name: 'source is an empty directory',
    args: (d) => {
      fs.mkdirSync(path.join(d, 'empty'));
      return ['archive', path.join(d, 'empty')];
    },
    server: true,
    type: 'EmptyDatasetError',
    message: /empty/,
    code: 1,
  },
  {
    name: 'unsupported URL scheme',
    args: () => ['archive', 'ftp://example.org/x'],
    type: 'UnsupportedSourceError',
    message: /ftp/,
    code: 1,
  },
  {
    name: 'file URL of another host',
    args: () => ['archive', 'file://elsewhere/data'],
    type: 'UnsupportedSourceError',
    message: /file URL/,
    code: 1,
  },
  {
    name: 'symlink escaping the source',
    args: (d) => {
      const src = tree(d);
      fs.symlinkSync('/etc', path.join(src, 'out'));
      return ['archive', src];
    },
    server: true,
    type: 'SymlinkEscapesRootError',
    message: /out/,
    code: 1,
  },
  {
    name: 'broken symlink in the source',
    args: (d) => {
      const src = tree(d);
      fs.symlinkSync(path.join(src, 'nothing-here'), path.join(src, 'dangling'));
      return ['archive', src];
    },
    server: true,
    type: 'BrokenSymlinkError',
    message: /dangling/,
    code: 1,
  },
  {
    name: 'symlink loop in the source',
    args: (d) => {
      const src = tree(d);
      fs.symlinkSync(src, path.join(src, 'b', 'loop'));
      return ['archive', src];
    },
    server: true,
    type: 'SymlinkLoopError',
    message: /loop/,
    code: 1,
  },
  {
    name: 'S3 credentials named by an unset variable',
    args: () => [
      'archive',
      's3://bucket/prefix',
      '--s3-endpoint',
      'http://127.0.0.1:1',
      '--s3-access-key-id-env',
      'PV_UNSET_KEY_ID',
      '--s3-secret-access-key-env',
      'PV_UNSET_SECRET',
    ],
    server: true,
    type: 'ConfigError',
    message: /PV_UNSET_KEY_ID/,
    code: 1,
  },
  // ---- placement and providers ----------------------------------------------------------------
  {
    name: 'more copies than providers',
    args: (d) => ['archive', tree(d), '--replicas', '5'],
    server: true,
    type: 'PolicyUnsatisfiableError',
    message: /5 copies/,
    code: 1,
  },
  {
    name: 'unknown provider asked for',
    args: (d) => ['archive', tree(d), '--provider', 'nope'],
    server: true,
    type: 'UnknownProviderError',
    message: /nope/,
    code: 1,
  },
  {
    name: 'dataset id with a space',
    args: (d) => ['archive', tree(d), '--id', 'bad id'],
    server: true,
    type: 'ConfigError',
    message: /dataset id/,
    code: 1,
  },
  // ---- restore, audit, export -----------------------------------------------------------------
  {
    name: 'restore of an unknown dataset',
    args: (d) => ['restore', 'no-such-dataset', path.join(d, 'out')],
    server: true,
    type: 'ManifestNotFoundError',
    message: /no-such-dataset/,
    code: 1,
    untouched: ['out'],
  },
  {
    name: 'restore of a manifest CID no provider holds',
    args: (d) => ['restore', 'bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku', path.join(d, 'out')],
    server: true,
    type: 'ManifestNotFoundError',
    message: /bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku/,
    code: 1,
    untouched: ['out'],
  },
  {
    name: 'audit of an unknown dataset',
    args: () => ['audit', 'no-such-dataset'],
    server: true,
    type: 'ManifestNotFoundError',
    message: /no-such-dataset/,
    code: 1,
  },
  {
    name: 'status of an unknown dataset',
    args: () => ['status', 'no-such-dataset'],
    server: true,
    type: 'ManifestNotFoundError',
    message: /no-such-dataset/,
    code: 1,
  },
  {
    name: 'export of a manifest CID no provider holds',
    args: (d) => [
      'export',
      'bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku',
      '--format',
      'croissant',
      '--out',
      path.join(d, 'out', 'x.json'),
    ],
    setup: (d) => void fs.mkdirSync(path.join(d, 'out')),
    type: 'ManifestNotFoundError',
    message: /bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku/,
    code: 1,
    untouched: ['out'],
  },
];

describe('bad-input catalogue', () => {
  let env: TestWorkflowEnvironment | undefined;
  let skipWhy: string | undefined;
  before(async () => {
    env = await startTemporal({ skip: (m: string) => (skipWhy = m) });
  });
  after(async () => {
    await env?.teardown();
  });

  let failures = 0;
  let ran = 0;
  after(() => {
    recordReliability({
      suite: 'bad input (CLI catalogue)',
      trials: ran,
      faultsInjected: ran,
      faultsDetected: ran - failures,
      dataLost: 0,
    });
  });

  it(`holds at least 30 cases`, () => {
    assert.ok(CASES.length >= 30, `${CASES.length} cases`);
    assert.equal(new Set(CASES.map((c) => c.name)).size, CASES.length, 'case names are unique');
  });

  for (const c of CASES) {
    it(`${c.name}: ${c.type}, exit ${c.code}`, async (t) => {
      if (c.server && !env) return t.skip(skipWhy ?? 'no Temporal server');
      const dir = tmpDir('pv-bad-input-');
      const home = path.join(dir, 'home');
      const extra = c.setup?.(dir) ?? {};
      const args = c.args(dir);
      const watched = ['home/providers', 'home/staging', ...(c.untouched ?? [])];
      const before = watched.map((w) => listing(path.join(dir, w)));
      const r = await run(args, {
        PROVENANT_DATA_DIR: home,
        // The shared server, or an address where nothing listens with the embedded server off:
        // a case that reaches Temporal without needing it fails differently.
        TEMPORAL_ADDRESS: c.server ? env!.address : '127.0.0.1:1',
        PROVENANT_EMBEDDED: 'never',
        PROVENANT_TASK_QUEUE: `bad-input-${ran}`,
        ...extra,
      });
      ran++;
      try {
        assert.equal(r.code, c.code, `exit code; stderr: ${r.stderr}`);
        // Progress lines may come first (stage: …); the failure is one line, the last (a usage
        // error may follow its line with the usage text).
        const lines = r.stderr.trim().split('\n');
        const failed = lines.filter((l) => l.startsWith('provenant: '));
        assert.equal(failed.length, 1, `one failure line: ${r.stderr}`);
        const first = failed[0]!;
        if (c.code !== 2) assert.equal(lines[lines.length - 1], first, `the failure line comes last: ${r.stderr}`);
        const m = /^provenant: (\w+): (.+)$/.exec(first);
        assert.ok(m, `'provenant: <Type>: <message>': ${first}`);
        assert.equal(m[1], c.type, first);
        assert.match(m[2]!, c.message);
        watched.forEach((w, i) =>
          assert.deepEqual(listing(path.join(dir, w)), before[i], `${w} changed: nothing may be written halfway`),
        );
        // --json gives the same failure as JSON (checked where no worker starts: it is the same path).
        if (c.code === 1 && !c.server) {
          const json = await run([...args, '--json'], {
            PROVENANT_DATA_DIR: home,
            TEMPORAL_ADDRESS: c.server ? env!.address : '127.0.0.1:1',
            PROVENANT_EMBEDDED: 'never',
            PROVENANT_TASK_QUEUE: `bad-input-${ran}-json`,
            ...extra,
          });
          assert.equal(json.code, c.code);
          assert.match((JSON.parse(json.stdout) as { error: string }).error, new RegExp(`^${c.type}: `));
        }
      } catch (err) {
        failures++;
        throw err;
      }
    });
  }
});
