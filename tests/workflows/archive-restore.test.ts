/** End to end on the real Temporal dev server: archive → replicate → restore, byte-identical. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CarReader } from '@ipld/car';
import { CarWriter } from '@ipld/car/writer';
import { CarBlockIterator } from '@ipld/car/iterator';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { CID } from 'multiformats/cid';
import { startArchive, startRestore } from '../../workers/client.js';
import { bytesOf, readTree, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import { workflowTree } from '../helpers/histories.js';
import type { Config } from '../../config/schema.js';

const MiB = 1024 * 1024;

function localPath(p: Config['providers'][number]): string {
  if (p.kind !== 'local') throw new Error(`not a local provider: ${p.id}`);
  return p.path;
}

/** The type of the ApplicationFailure at the root of a failed workflow. */
function failureType(err: unknown): string | undefined {
  let e: unknown = err;
  while (e instanceof WorkflowFailedError || e instanceof ActivityFailure) e = (e as Error).cause;
  return e instanceof ApplicationFailure ? (e.type ?? undefined) : undefined;
}

describe('archive → replicate → restore on a real Temporal server', () => {
  let env: TestWorkflowEnvironment | undefined;
  let data: string;
  let config: Config;
  const src = () => path.join(data, 'src');

  before(async (t) => {
    env = await startTemporal(t as never);
    data = tmpDir();
    config = testConfig(path.join(data, 'home'));
    writeTree(src(), {
      'empty.bin': Buffer.alloc(0),
      'one.bin': Buffer.from('x'),
      'nested/deeper/mib-minus-1.bin': bytesOf(MiB - 1, 'a'),
      'nested/deeper/mib.bin': bytesOf(MiB, 'b'),
      'nested/deeper/mib-plus-1.bin': bytesOf(MiB + 1, 'c'),
      'nested/larger-than-a-shard.bin': bytesOf(5 * MiB + 3, 'd'),
      'ünïcödé/名前 with spaces.txt': 'unicode names survive',
      'odd/-leading-dash': 'dash',
      'odd/line\nbreak': 'newline in a name',
    });
  });
  after(async () => {
    await env?.teardown();
  });

  it('restores a generated tree byte-identical from the replicas', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const result = await withWorker(env, config, async () => {
      const { handle } = await startArchive(env!.client, config, {
        dir: src(),
        datasetId: 'roundtrip',
        meta: { model: 'llama-ft', run: 'abc' },
      });
      const summary = await handle.result();
      const target = path.join(data, 'restored');
      const restored = await (
        await startRestore(env!.client, config, { manifestCid: summary.manifestCid, target, force: false })
      ).result();
      return { summary, restored, target };
    });
    const { summary, restored, target } = result;
    assert.ok(summary.shards >= 4, `a 5 MiB file over 2 MiB shards needs several shards, got ${summary.shards}`);
    assert.equal(summary.files, 9);
    assert.equal(summary.copies, 2);
    assert.equal(
      Object.values(summary.replicas).reduce((a, b) => a + b, 0),
      summary.shards * 2,
    );
    assert.equal(restored.files, 9);
    assert.deepEqual(readTree(target), readTree(src()));
  });

  it('restores only the files under --path prefixes, fetching fewer shards, through the restore workflow', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const { summary, part, missing } = await withWorker(env, config, async () => {
      const { handle } = await startArchive(env!.client, config, { dir: src(), datasetId: 'partial' });
      const summary = await handle.result();
      const target = path.join(data, 'partial');
      const paths = ['nested/deeper', 'one.bin'];
      const part = await (
        await startRestore(env!.client, config, { manifestCid: summary.manifestCid, target, force: false, paths })
      ).result();
      const h = await startRestore(env!.client, config, {
        manifestCid: summary.manifestCid,
        target: path.join(data, 'none'),
        force: false,
        paths: ['no/such'],
      });
      const missing = await h.result().then(
        () => undefined,
        (err: unknown) => failureType(err),
      );
      return { summary, part, missing };
    });
    const want = new Map([...readTree(src())].filter(([k]) => k.startsWith('nested/deeper/') || k === 'one.bin'));
    assert.equal(want.size, 4);
    assert.deepEqual(readTree(path.join(data, 'partial')), want);
    assert.equal(part.files, 4);
    assert.ok(part.shards < summary.shards, `partial restore fetched ${part.shards} of ${summary.shards} shards`);
    assert.equal(missing, 'PathNotInArchiveError');
  });

  it('moves both local copies of each shard in: one written while packing (a twin), the other the staged shard', async (t) => {
    if (!env) return t.skip('no Temporal server');
    // Content of its own: pieces another test stored already would only be found in place.
    const dir = path.join(data, 'twins-src');
    writeTree(dir, { 'a.bin': bytesOf(5 * MiB + 17, 'twin-a'), 'b/c.bin': bytesOf(MiB, 'twin-c'), 'b/d.txt': 'twins' });
    const { summary, histories } = await withWorker(env, config, async () => {
      const { handle } = await startArchive(env!.client, config, { dir, datasetId: 'twins', noSteward: true });
      const summary = await handle.result();
      // The puts are in the archive's history and its replication children's.
      return { summary, histories: await workflowTree(env!.client, handle.workflowId) };
    });
    const puts = new Set<string>();
    const evidence: string[] = [];
    for (const { runId, history } of histories)
      for (const e of history.events ?? []) {
        if (e.activityTaskScheduledEventAttributes?.activityType?.name === 'provenantPutPiece')
          puts.add(`${runId}/${Number(e.eventId)}`);
        const done = e.activityTaskCompletedEventAttributes;
        if (done && puts.has(`${runId}/${Number(done.scheduledEventId)}`)) {
          const placement = JSON.parse(Buffer.from(done.result!.payloads![0]!.data!).toString()) as {
            evidence?: string;
          };
          evidence.push(placement.evidence ?? '(hashed on the way in)');
        }
      }
    // Shards and manifest, two copies each.
    assert.equal(evidence.length, 2 * (summary.shards + 1));
    const movedIn = evidence.filter((x) => x.includes('moved in')).length;
    assert.ok(movedIn >= 2 * summary.shards, `every shard copy moved in, not copied: ${JSON.stringify(evidence)}`);
    const copies = new Map<string, string[]>();
    for (const dir of config.providers.map((p) => path.join(localPath(p), 'pieces'))) {
      for (const f of fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.endsWith('.car')) : [])
        copies.set(f, [...(copies.get(f) ?? []), path.join(dir, f)]);
    }
    const pairs = [...copies.values()].filter((files) => files.length === 2);
    assert.ok(pairs.length >= summary.shards, `${pairs.length} pieces with two copies, ${summary.shards} shards`);
    for (const [x, y] of pairs) {
      assert.notEqual(fs.statSync(x!).ino, fs.statSync(y!).ino, `${x}: two files, not one linked twice`);
      assert.equal(fs.statSync(x!).nlink, 1, `${x}: nothing else holds it (staging is gone)`);
      assert.ok(fs.readFileSync(x!).equals(fs.readFileSync(y!)), `${x}: same bytes as ${y}`);
    }
  });

  it('archives from a request naming only the dataset and its source, as a client in another language sends it', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const { summary, restored } = await withWorker(env, config, async () => {
      // By workflow type name, with plain JSON: what a Python or Go client does.
      const handle = await env!.client.workflow.start('archiveDataset', {
        taskQueue: config.temporal.taskQueue,
        workflowId: 'request-form',
        args: [
          {
            datasetId: 'request-form',
            source: { kind: 'local', path: src() },
            meta: { from: 'request' },
            steward: false,
          },
        ],
      });
      const summary = (await handle.result()) as {
        manifestCid: string;
        files: number;
        copies: number;
        datasetId: string;
        stewardWorkflowId?: string;
      };
      const target = path.join(data, 'restored-request');
      await (
        await startRestore(env!.client, config, { manifestCid: summary.manifestCid, target, force: false })
      ).result();
      return { summary, restored: target };
    });
    assert.equal(summary.datasetId, 'request-form');
    assert.equal(summary.copies, config.replication.copies, 'copies from the worker config');
    assert.equal(summary.stewardWorkflowId, undefined);
    assert.deepEqual(readTree(restored), readTree(src()));
  });

  it('fails a request naming an unknown provider with UnknownProviderError, before anything is read', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const err = await withWorker(env, config, async () => {
      const handle = await env!.client.workflow.start('archiveDataset', {
        taskQueue: config.temporal.taskQueue,
        workflowId: 'request-bad',
        args: [{ source: { kind: 'local', path: src() }, providers: ['local-1', 'nowhere'] }],
      });
      return handle.result().then(
        () => undefined,
        (e: unknown) => e,
      );
    });
    assert.equal(failureType(err), 'UnknownProviderError', String(err));
  });

  it('re-submitting the same dataset id returns the existing archive', async (t) => {
    if (!env) return t.skip('no Temporal server');
    await withWorker(env, config, async () => {
      const first = await startArchive(env!.client, config, { dir: src(), datasetId: 'roundtrip' });
      assert.equal(first.existing, true);
      const again = await first.handle.result();
      const { handle } = await startArchive(env!.client, config, { dir: src(), datasetId: 'roundtrip' });
      assert.equal(handle.workflowId, first.handle.workflowId);
      assert.equal((await handle.result()).manifestCid, again.manifestCid);
    });
  });

  it('writes shards that CarReader reads and ipfs-car unpacks', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const summary = await withWorker(env, config, async () =>
      (await startArchive(env!.client, config, { dir: src(), datasetId: 'roundtrip' })).handle.result(),
    );
    const pieces = path.join(localPath(config.providers[0]!), 'pieces');
    const cars = fs.readdirSync(pieces).filter((f) => f.endsWith('.car'));
    assert.ok(cars.length >= 1);
    // Every shard reads with CarReader, and every block matches its CID.
    const all = path.join(data, 'all.car');
    const { writer, out } = CarWriter.create([CID.parse(summary.rootCid)]);
    const sink = (async () => {
      const chunks: Uint8Array[] = [];
      for await (const c of out) chunks.push(c);
      fs.writeFileSync(all, Buffer.concat(chunks));
    })();
    const seen = new Set<string>();
    for (const dir of config.providers.map((p) => path.join(localPath(p), 'pieces'))) {
      for (const f of fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.endsWith('.car')) : []) {
        const reader = await CarReader.fromBytes(fs.readFileSync(path.join(dir, f)));
        assert.equal((await reader.getRoots()).length, 1);
        for await (const b of reader.blocks()) {
          if (seen.has(b.cid.toString()) || b.cid.code === 0x0129) continue; // skip dag-json manifest blocks
          seen.add(b.cid.toString());
          await writer.put(b);
        }
      }
    }
    await writer.close();
    await sink;
    const unpacked = path.join(data, 'unpacked');
    execFileSync(
      process.execPath,
      [path.resolve('node_modules/ipfs-car/bin.js'), 'unpack', all, '--output', unpacked],
      { stdio: 'pipe' },
    );
    assert.deepEqual(readTree(unpacked), readTree(src()));
    // The last shard carries the root block.
    const blocks = await CarBlockIterator.fromIterable(fs.createReadStream(path.join(pieces, cars[0]!)));
    assert.ok((await blocks.getRoots()).length === 1);
  });

  it('fails with PolicyUnsatisfiableError when replicas exceed providers, before reading anything', async (t) => {
    if (!env) return t.skip('no Temporal server');
    await withWorker(env, config, async () => {
      const { handle } = await startArchive(env!.client, config, { dir: src(), datasetId: 'too-many', copies: 4 });
      await assert.rejects(handle.result(), (err) => failureType(err) === 'PolicyUnsatisfiableError');
      const history = await handle.fetchHistory();
      assert.ok(!JSON.stringify(history).includes('provenantScan'), 'no activity ran');
    });
  });

  it('fails with a typed error for a missing source, a file as source and an empty directory', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const file = path.join(data, 'a-file');
    fs.writeFileSync(file, 'x');
    const empty = path.join(data, 'empty-dir');
    fs.mkdirSync(path.join(empty, 'sub'), { recursive: true });
    await withWorker(env, config, async () => {
      for (const [dir, id, type] of [
        [path.join(data, 'missing'), 'missing', 'SourceNotFoundError'],
        [file, 'file', 'NotADirectoryError'],
        [empty, 'empty', 'EmptyDatasetError'],
      ] as const) {
        const { handle } = await startArchive(env!.client, config, { dir, datasetId: id });
        await assert.rejects(handle.result(), (err) => failureType(err) === type, `${id} → ${type}`);
      }
    });
  });

  it('refuses to restore into a non-empty directory without force, and restores with it', async (t) => {
    if (!env) return t.skip('no Temporal server');
    await withWorker(env, config, async () => {
      const summary = await (
        await startArchive(env!.client, config, { dir: src(), datasetId: 'roundtrip' })
      ).handle.result();
      const target = path.join(data, 'occupied');
      writeTree(target, { 'keep.txt': 'mine' });
      const h = await startRestore(env!.client, config, { manifestCid: summary.manifestCid, target, force: false });
      await assert.rejects(h.result(), (err) => failureType(err) === 'TargetNotEmptyError');
      assert.deepEqual([...readTree(target).keys()], ['keep.txt'], 'nothing written');
      await (
        await startRestore(env!.client, config, { manifestCid: summary.manifestCid, target, force: true })
      ).result();
      const tree = readTree(target);
      assert.equal(tree.get('keep.txt')?.toString(), 'mine');
      assert.deepEqual(tree.get('nested/larger-than-a-shard.bin'), bytesOf(5 * MiB + 3, 'd'));
    });
  });

  it('fails with ManifestNotFoundError for an unknown manifest CID', async (t) => {
    if (!env) return t.skip('no Temporal server');
    await withWorker(env, config, async () => {
      const unknown = 'baguqeeraa4x2ykq4xqhmwzj6fyhnqnpxzsmn7qypfhulwkyjfwyvmxbl4e4q';
      const h = await startRestore(env!.client, config, {
        manifestCid: unknown,
        target: path.join(data, 'never'),
        force: false,
      });
      await assert.rejects(h.result(), (err) => failureType(err) === 'ManifestNotFoundError');
    });
  });

  it('restores from the surviving replica when one copy is corrupt', async (t) => {
    if (!env) return t.skip('no Temporal server');
    await withWorker(env, config, async () => {
      const summary = await (
        await startArchive(env!.client, config, { dir: src(), datasetId: 'roundtrip' })
      ).handle.result();
      // Flip one byte in every shard held by the first provider that has any.
      let flipped = 0;
      for (const p of config.providers) {
        const dir = path.join(localPath(p), 'pieces');
        if (!fs.existsSync(dir)) continue;
        for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.car'))) {
          const file = path.join(dir, f);
          const buf = fs.readFileSync(file);
          buf[buf.length - 1]! ^= 0xff;
          fs.writeFileSync(file, buf);
          flipped++;
        }
        break;
      }
      assert.ok(flipped > 0);
      const target = path.join(data, 'after-corruption');
      const r = await (
        await startRestore(env!.client, config, { manifestCid: summary.manifestCid, target, force: false })
      ).result();
      assert.ok(r.badReplicas.length > 0, 'the corrupt copies were detected');
      assert.deepEqual(readTree(target), readTree(src()));
    });
  });
});
