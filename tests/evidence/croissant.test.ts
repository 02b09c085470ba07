/**
 * `provenant export --format croissant` of a tree archived on the real dev server validates with
 * mlcroissant (the MLCommons reference library), and an export with a file's sha256 removed does not.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startArchive } from '../../workers/client.js';
import { bytesOf, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import { MLCROISSANT_VERSION, pythonTool, type PyTool } from './tools.js';
import { runCli } from '../helpers/cli.js';

function validate(tool: PyTool, file: string) {
  const r = spawnSync(path.join(tool.bin, 'mlcroissant'), ['validate', '--jsonld', file], { encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

interface FileObject {
  '@type': string;
  name: string;
  contentUrl: string;
  encodingFormat: string;
  sha256?: string;
  sameAs: string[];
}

describe('Croissant export', () => {
  let env: TestWorkflowEnvironment | undefined;
  before(async (t) => {
    env = await startTemporal(t as never);
  });
  after(async () => {
    await env?.teardown();
  });

  it(`validates with mlcroissant ${MLCROISSANT_VERSION}, one FileObject per file; without a sha256 it does not`, async (t) => {
    if (!env) return t.skip('no Temporal server');
    const tool = pythonTool(t, `python-mlcroissant-${MLCROISSANT_VERSION}`, 'import mlcroissant');
    if (!tool) return;
    const data = tmpDir('pv-croissant-');
    const src = path.join(data, 'src');
    const files: Record<string, Buffer | string> = {
      'train/part-0.csv': 'a,b\n1,2\n',
      'train/part 1.jsonl': '{"a":1}\n',
      'weights.bin': bytesOf(3 * 1024 * 1024 + 5, 'croissant'),
      'README.md': '# tiny\n',
      empty: '',
    };
    writeTree(src, files);
    const home = path.join(data, 'home');
    const config = testConfig(home);
    const summary = await withWorker(env, config, async () => {
      const { handle } = await startArchive(env!.client, config, {
        dir: src,
        datasetId: 'croissant-ds',
        meta: { name: 'Tiny corpus', description: 'A tiny corpus for the export test.', license: 'apache-2.0' },
      });
      return handle.result();
    });

    // The CLI reads the manifest from the same providers, by CID alone: no server needed.
    const cfgFile = path.join(data, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ dataDir: home }));
    const out = path.join(data, 'croissant.json');
    const r = await runCli(['export', summary.manifestCid, '--format', 'croissant', '--out', out, '--config', cfgFile]);
    assert.equal(r.code, 0, r.stderr);

    const doc = JSON.parse(fs.readFileSync(out, 'utf8')) as Record<string, unknown> & { distribution: FileObject[] };
    assert.equal(doc.conformsTo, 'http://mlcommons.org/croissant/1.1');
    assert.equal(doc.name, 'Tiny corpus');
    assert.equal(doc.description, 'A tiny corpus for the export test.');
    assert.equal(doc.license, 'apache-2.0');
    assert.match(String(doc.disambiguatingDescription), new RegExp(summary.manifestCid));
    assert.equal(doc.identifier, `ipfs://${summary.manifestCid}`);
    const byPath = new Map(doc.distribution.map((f) => [f.name, f]));
    assert.deepEqual([...byPath.keys()].sort(), Object.keys(files).sort());
    for (const [p, body] of Object.entries(files)) {
      const f = byPath.get(p)!;
      assert.equal(f['@type'], 'cr:FileObject');
      assert.equal(f.sha256, crypto.createHash('sha256').update(body).digest('hex'));
      assert.equal(decodeURIComponent(f.contentUrl), p);
      assert.match(f.sameAs[0]!, /^ipfs:\/\/b[a-z2-7]+$/);
    }
    assert.equal(byPath.get('train/part-0.csv')!.encodingFormat, 'text/csv');
    assert.equal(byPath.get('README.md')!.encodingFormat, 'text/markdown');
    assert.equal(byPath.get('weights.bin')!.encodingFormat, 'application/octet-stream');

    const good = validate(tool, out);
    assert.ok(good.ok, `mlcroissant rejected the export:\n${good.output}`);

    // The same document with one file's checksum removed must fail, or the check above proves nothing.
    const broken = path.join(data, 'broken.json');
    delete doc.distribution[1]!.sha256;
    fs.writeFileSync(broken, JSON.stringify(doc, null, 2));
    const bad = validate(tool, broken);
    assert.equal(bad.ok, false, 'mlcroissant accepted a FileObject without sha256');
    assert.match(bad.output, /sha256/);

    // The card of the same manifest, through the same path.
    const card = path.join(data, 'README.md');
    const c = await runCli(['export', summary.manifestCid, '--format', 'hf-card', '--out', card, '--config', cfgFile]);
    assert.equal(c.code, 0, c.stderr);
    const text = fs.readFileSync(card, 'utf8');
    assert.ok(text.startsWith('---\nlicense: "apache-2.0"\n---\n'), text);
    assert.ok(text.includes(`Manifest CID: \`${summary.manifestCid}\``), text);
    assert.equal((text.match(/^\| \d+ \| `/gm) ?? []).length, summary.shards, 'one row per shard');
  });
});
