/** `provenant archive <arg>...` → a source: which URL schemes are archived, and how others fail. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { sourceFromArgs } from '../../../activities/ingest/archive-input.js';

const unsupported = (e: unknown) => e instanceof Error && e.name === 'UnsupportedSourceError';

describe('sourceFromArgs', () => {
  it('refuses an unknown URL scheme with UnsupportedSourceError instead of taking it as a path', () => {
    for (const arg of ['ftp://example.org/x', 'gs://bucket/prefix', 'SFTP://host/x', 'hdfs://nn:8020/data']) {
      assert.throws(() => sourceFromArgs([arg], {}, {}), unsupported, arg);
    }
  });

  it('refuses an unknown scheme given as path=URL or among http URLs', () => {
    assert.throws(() => sourceFromArgs(['a.bin=ftp://example.org/x'], {}, {}), unsupported);
    assert.throws(() => sourceFromArgs(['https://h/a.bin', 'ftp://example.org/x'], {}, {}), unsupported);
  });

  it('names the scheme and the supported ones on one line', () => {
    try {
      sourceFromArgs(['ftp://example.org/x'], {}, {});
      assert.fail('no error');
    } catch (e) {
      assert.ok(unsupported(e));
      const msg = (e as Error).message;
      assert.doesNotMatch(msg, /\n/);
      for (const s of ['ftp', 's3', 'http', 'https', 'file']) assert.ok(msg.includes(s), `${s} in ${msg}`);
    }
  });

  it('takes file:///abs/path as that local path', () => {
    const dir = path.resolve('some dir/ünï');
    assert.deepEqual(sourceFromArgs([pathToFileURL(dir).href], {}, {}), { kind: 'local', path: dir });
    assert.deepEqual(sourceFromArgs(['file:///data/run-42'], {}, {}), { kind: 'local', path: '/data/run-42' });
    assert.deepEqual(sourceFromArgs(['FILE://localhost/data/x'], {}, {}), { kind: 'local', path: '/data/x' });
  });

  it('refuses a file URL naming another host', () => {
    assert.throws(() => sourceFromArgs(['file://nas.example/data'], {}, {}), unsupported);
  });

  it('still takes directories, s3:// and http(s) URLs as before', () => {
    assert.deepEqual(sourceFromArgs(['rel-dir'], {}, {}), { kind: 'local', path: path.resolve('rel-dir') });
    assert.deepEqual(sourceFromArgs(['weird:name'], {}, {}), { kind: 'local', path: path.resolve('weird:name') });
    assert.equal(sourceFromArgs(['s3://bkt/p'], {}, {}).kind, 's3');
    assert.equal(sourceFromArgs(['HTTPS://h/a.bin'], {}, {}).kind, 'http');
  });
});
