/**
 * Lineage (`archive --derived-from`): a base dataset, a model derived from it, and a fine-tune
 * derived from the model, archived through the real CLI on the dev server. Each manifest records
 * its parents; the fine-tune's evidence bundle holds every ancestor's manifest root, and
 * verify-evidence walks the chain back to the dataset, offline. A parent missing from the
 * bundle, a damaged parent root, an unknown and a malformed parent CID are each refused.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { EvidenceReport } from '../../activities/evidence/verify-evidence.js';
import { LocalProvider } from '../../activities/providers/local.js';
import { locateManifest } from '../../activities/restore/restore.js';
import { bytesOf, startTemporal, tmpDir, writeTree } from '../helpers/env.js';
import { runCli } from '../helpers/cli.js';
import { readBundle, rewrite } from '../helpers/bundle.js';
/** The CLI with only its --config file deciding the server and the key. */
const runCliIsolated = (args: string[]) => runCli(args, { isolated: true });

describe('lineage: archive --derived-from', () => {
  let env: TestWorkflowEnvironment | undefined;
  before(async (t) => {
    env = await startTemporal(t as never);
  });
  after(async () => {
    await env?.teardown();
  });

  it('records parents in the manifest; the evidence walks from a fine-tune back to its dataset, offline', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const data = tmpDir('pv-lineage-');
    const home = path.join(data, 'home');
    const config = path.join(data, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        dataDir: home,
        temporal: { address: env.address, taskQueue: 'pv-lineage', embedded: 'never' },
        pack: { shardBytes: 2 * 1024 * 1024 },
      }),
    );
    const tree = (name: string, seed: string) => {
      const dir = path.join(data, name);
      writeTree(dir, { 'part.bin': bytesOf(300_000, seed), 'README.md': `# ${name}\n` });
      return dir;
    };
    const archive = async (name: string, parents: string[]) => {
      const r = await runCliIsolated([
        'archive',
        tree(name, name),
        '--id',
        name,
        ...parents.flatMap((p) => ['--derived-from', p]),
        '--config',
        config,
        '--json',
      ]);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { manifestCid: string }).manifestCid;
    };

    const dataset = await archive('corpus', []);
    const model = await archive('base-model', [dataset]);
    const tune = await archive('fine-tune', [model, dataset]);

    // The manifests record their parents.
    const providers = ['local-1', 'local-2', 'local-3'].map(
      (id) => new LocalProvider(id, path.join(home, 'providers', id)),
    );
    const read = async (cid: string) => (await locateManifest(cid, providers, tmpDir('pv-lineage-m-'))).manifest;
    assert.equal((await read(dataset)).derivedFrom, undefined, 'no parent: no field');
    assert.deepEqual((await read(model)).derivedFrom, [dataset]);
    assert.deepEqual((await read(tune)).derivedFrom, [model, dataset]);

    // Exports name the parents.
    const slsa = path.join(data, 'tune.slsa.json');
    const ex = await runCliIsolated(['export', tune, '--format', 'slsa', '--out', slsa, '--config', config]);
    assert.equal(ex.code, 0, ex.stderr);
    const deps = (
      JSON.parse(fs.readFileSync(slsa, 'utf8')) as {
        predicate: { buildDefinition: { resolvedDependencies: { name?: string; uri?: string }[] } };
      }
    ).predicate.buildDefinition.resolvedDependencies;
    assert.deepEqual(
      deps.filter((d) => d.name === 'derived-from').map((d) => d.uri),
      [`ipfs://${model}`, `ipfs://${dataset}`],
    );

    // The evidence of the fine-tune holds both ancestors (the dataset once), and verifies offline.
    const bundle = path.join(data, 'tune.car');
    const e = await runCliIsolated(['evidence', 'fine-tune', '--out', bundle, '--config', config]);
    assert.equal(e.code, 0, e.stderr);
    const { index, blocks } = await readBundle(bundle);
    assert.deepEqual(index.lineage, [model, dataset]);
    await env.teardown();
    env = undefined; // offline from here
    const v = await runCliIsolated(['verify-evidence', bundle, '--json']);
    assert.equal(v.code, 0, v.stderr || v.stdout);
    const report = JSON.parse(v.stdout) as EvidenceReport;
    assert.deepEqual(
      report.lineage?.map((a) => [a.datasetId, a.depth]),
      [
        ['base-model', 1],
        ['corpus', 1],
      ],
    );
    const human = await runCliIsolated(['verify-evidence', bundle]);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /derived from base-model \(manifest /);
    assert.match(human.stdout, /derived from corpus \(manifest /);

    // A parent left out of the bundle is named.
    const dropped = await rewrite(bundle, path.join(data, 'dropped.car'), (i, b) => {
      i.lineage = [model];
      b.delete(dataset);
    });
    const d = await runCliIsolated(['verify-evidence', dropped, '--json']);
    assert.equal(d.code, 1);
    const dr = JSON.parse(d.stdout) as EvidenceReport;
    assert.ok(
      dr.broken.some((x) => x.part === 'lineage' && x.ref === dataset && /not in the bundle/.test(x.detail)),
      JSON.stringify(dr.broken),
    );

    // A parent root changed by one byte no longer hashes to its CID.
    const damaged = await rewrite(bundle, path.join(data, 'damaged.car'), (_i, b) => {
      const bytes = Buffer.from(b.get(model)!);
      const at = bytes.indexOf('base-model');
      bytes[at] = 0x42; // 'b' → 'B'
      b.set(model, bytes);
    });
    const g = await runCliIsolated(['verify-evidence', damaged, '--json']);
    assert.equal(g.code, 1);
    assert.ok(
      (JSON.parse(g.stdout) as EvidenceReport).broken.some((x) => x.part === 'lineage' && x.ref === model),
      'the damaged parent is named',
    );
    assert.ok(blocks.size > 0);
  });

  it('refuses a parent no provider holds and a malformed parent CID, before anything starts', async (t) => {
    if (!env) {
      // The first test stops its server to verify offline: start one of our own.
      env = await startTemporal(t as never);
      if (!env) return;
    }
    const data = tmpDir('pv-lineage-bad-');
    const src = path.join(data, 'src');
    writeTree(src, { 'a.txt': 'a' });
    const config = path.join(data, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        dataDir: path.join(data, 'home'),
        temporal: { address: env.address, taskQueue: 'pv-lineage-bad', embedded: 'never' },
      }),
    );
    const unknown = await runCliIsolated([
      'archive',
      src,
      '--derived-from',
      'bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku',
      '--config',
      config,
    ]);
    assert.equal(unknown.code, 1);
    assert.match(
      unknown.stderr.trim(),
      /^provenant: ManifestNotFoundError: .*bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku/m,
    );
    const malformed = await runCliIsolated(['archive', src, '--derived-from', 'not-a-cid', '--config', config]);
    assert.equal(malformed.code, 1);
    assert.match(malformed.stderr.trim(), /^provenant: ConfigError: .*derivedFrom\.0: derived-from: a manifest CID/);
    assert.equal(fs.existsSync(path.join(data, 'home', 'providers')), false, 'nothing stored');
  });
});
