import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, parseConfig } from '../../config/load.js';
import { ConfigError, UnknownProviderError } from '../../activities/errors.js';
import { archiveInput } from '../../workers/client.js';
import { tmpDir } from '../helpers/env.js';

describe('config', () => {
  it('fills every default from the schema', () => {
    const c = parseConfig({ dataDir: '/data' });
    assert.equal(c.temporal.address, 'localhost:7233');
    assert.equal(c.pack.shardBytes, 1_065_353_216);
    assert.equal(c.replication.copies, 2);
    assert.equal(c.stagingDir, '/data/staging');
    assert.deepEqual(
      c.providers.map((p) => p.id),
      ['local-1', 'local-2', 'local-3'],
    );
  });

  it('reports every bad field with its path in one ConfigError', () => {
    let caught: unknown;
    try {
      parseConfig({
        pack: { shardBytes: 1 },
        replication: { copies: 0 },
        providers: [
          { kind: 'local', id: 'A B', path: '' },
          { kind: 'ftp', id: 'x' },
        ],
      });
    } catch (e) {
      caught = e;
    }
    assert.ok(caught instanceof ConfigError);
    const paths = caught.issues.map((i) => i.path).sort();
    for (const p of [
      'pack.shardBytes',
      'replication.copies',
      'providers.0.id',
      'providers.0.path',
      'providers.1.kind',
    ]) {
      assert.ok(paths.includes(p), `${p} reported (got ${paths.join(', ')})`);
    }
  });

  it('rejects shards above 32 GiB and duplicate provider ids', () => {
    assert.throws(
      () => parseConfig({ pack: { shardBytes: 33 * 1024 ** 3 } }),
      (e) => e instanceof ConfigError && e.issues[0]!.path === 'pack.shardBytes',
    );
    assert.throws(
      () =>
        parseConfig({
          providers: [
            { kind: 'local', id: 'a', path: '/x' },
            { kind: 'local', id: 'a', path: '/y' },
          ],
        }),
      (e) => e instanceof ConfigError && e.issues.some((i) => i.path === 'providers.1.id'),
    );
  });

  it('layers a YAML file under the environment', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(file, 'temporal:\n  address: file-host:7233\n  namespace: from-file\nreplication:\n  copies: 3\n');
    const c = loadConfig({ file, env: { TEMPORAL_ADDRESS: 'env-host:7233', PROVENANT_DATA_DIR: dir } });
    assert.equal(c.temporal.address, 'env-host:7233');
    assert.equal(c.temporal.namespace, 'from-file');
    assert.equal(c.replication.copies, 3);
  });

  it('fails with ConfigError on an unparsable or missing file', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'bad.json');
    fs.writeFileSync(file, '{ nope');
    assert.throws(() => loadConfig({ file, env: {} }), ConfigError);
    assert.throws(() => loadConfig({ file: path.join(dir, 'missing.yaml'), env: {} }), ConfigError);
  });

  it('rejects an unknown provider id in an archive request', () => {
    const c = parseConfig({ dataDir: '/data' });
    assert.throws(() => archiveInput(c, { dir: '/tmp', providers: ['local-1', 'nope'] }), UnknownProviderError);
    assert.throws(() => archiveInput(c, { dir: '/tmp', datasetId: '../evil' }), ConfigError);
  });
});
