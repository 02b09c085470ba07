/**
 * A unit of an encrypting run, taken by a worker that has no key-encryption key (or another one),
 * fails with EncryptionKeyError before it reads a byte: no staging, nothing stored, no result
 * record. The same unit on a worker with the run's key packs and stores ciphertext, so the plan is
 * one a unit worker can run (the refusal is the key's, not the plan's). Its copies are retired
 * by a worker without the key (a failed archive's retire step may run anywhere).
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createStageContext } from '../../../activities/context.js';
import { startRunEncryption } from '../../../activities/encryption/keys.js';
import { scanLocal } from '../../../activities/ingest/scan.js';
import { createPackActivities } from '../../../activities/pack/activities.js';
import { packUnit, unitStore } from '../../../activities/pack/unit-pack.js';
import { loadBlock, planUnits, storeBlock, UNIT_RESULT_TYPE, type UnitResult } from '../../../activities/pack/units.js';
import type { UnitRequest } from '../../../shared/types.js';
import { bytesOf, testConfig, tmpDir } from '../../helpers/env.js';

/** Every file under `dir` (relative paths), sorted; none when it does not exist. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => fs.statSync(path.join(dir, f)).isFile())
    .sort();
}

describe('a unit worker without the run’s key', () => {
  it('fails with EncryptionKeyError before it stages or stores anything; a worker with the key packs the same unit, and a keyless one retires its copies', async () => {
    const root = tmpDir('pv-keyless-unit-');
    const src = path.join(root, 'src');
    fs.mkdirSync(src);
    const a = bytesOf(1_500_000, 'keyless-a');
    fs.writeFileSync(path.join(src, 'a.bin'), a);
    fs.writeFileSync(path.join(src, 'b.txt'), 'plaintext marker: keyless unit\n');
    const kekFile = path.join(root, 'kek');
    fs.writeFileSync(kekFile, crypto.randomBytes(32));
    const otherKek = path.join(root, 'other-kek');
    fs.writeFileSync(otherKek, crypto.randomBytes(32));
    const store = path.join(root, 'store');
    const providers = [{ id: 'local-a', kind: 'local' as const, path: store }];
    const pack = { shardBytes: 2 * 1024 * 1024, unitShards: 1 };
    const keyed = testConfig(path.join(root, 'keyed'), { providers, pack, encryption: { keyFile: kekFile } });
    const workers = {
      'no key': testConfig(path.join(root, 'keyless'), { providers, pack }),
      'another key': testConfig(path.join(root, 'other'), { providers, pack, encryption: { keyFile: otherKek } }),
    };

    // The planning host: scans, draws the run's data key, stores the plan (its page carries the wrapped key).
    const planner = createStageContext({ config: keyed });
    const stage = { datasetId: 'keyless', runKey: 'run-1' };
    const dir = planner.stageDir(stage);
    fs.mkdirSync(dir, { recursive: true });
    const listing = path.join(dir, 'listing.ndjson');
    await scanLocal(src, listing);
    const encryption = await startRunEncryption(keyed, dir);
    assert.ok(encryption, 'the keyed config encrypts');
    const ustore = unitStore(planner);
    const plan = await planUnits(listing, { ...pack, chunkBytes: keyed.pack.chunkBytes, encryption }, (v) =>
      storeBlock(ustore, v),
    );
    assert.equal(plan.units, 1);
    const before = filesUnder(store);
    const req: UnitRequest = {
      ...stage,
      planPage: plan.planPages[0]!,
      slot: 0,
      shardBytes: pack.shardBytes,
      chunkBytes: keyed.pack.chunkBytes,
      sourcePath: src,
      copies: 1,
      providers: [{ id: 'local-a', kind: 'local' }],
      policy: { preferEnergy: false, cooldownMs: 0 },
    };

    for (const [what, config] of Object.entries(workers)) {
      const ctx = createStageContext({ config });
      await assert.rejects(
        packUnit(ctx, req),
        (err: Error) => {
          assert.equal(err.name, 'EncryptionKeyError', what);
          return true;
        },
        what,
      );
      assert.deepEqual(filesUnder(store), before, `${what}: nothing stored`);
      assert.deepEqual(filesUnder(ctx.stageDir(stage)), [], `${what}: nothing staged`);
      await ctx.providers.close();
    }

    // The same unit where the key is: ciphertext stored, and the plaintext is in no stored object.
    const ctx = createStageContext({ config: keyed });
    const done = await packUnit(ctx, req);
    assert.ok(done.result, 'a result block');
    const added = filesUnder(store).filter((f) => !before.includes(f));
    assert.ok(added.length > 0, 'the keyed worker stored the unit');
    for (const f of added) {
      const bytes = fs.readFileSync(path.join(store, f));
      assert.equal(bytes.indexOf('plaintext marker'), -1, `${f} holds no plaintext`);
      assert.equal(bytes.indexOf(a.subarray(4096, 4096 + 64)), -1, `${f} holds none of a.bin`);
    }

    // The archive fails later (another unit, say): its retire step may run on the keyless worker,
    // and still removes every copy this unit stored, by the ids its result names.
    const result = await loadBlock<UnitResult>(unitStore(ctx), done.result, UNIT_RESULT_TYPE);
    const ids = Object.values(result.storedAs ?? {});
    assert.equal(ids.length, done.shards, 'the result names the stored id of each shard');
    const keyless = createStageContext({ config: workers['no key'] });
    const { shared } = createPackActivities(keyless);
    const env = new MockActivityEnvironment({ activityType: 'provenantRetireUnits', heartbeatTimeoutMs: 60_000 });
    const retired = await env.run(shared.provenantRetireUnits, { results: [done.result] });
    assert.deepEqual(retired, { retired: done.shards, failed: 0 });
    const left = filesUnder(store);
    for (const id of ids) assert.ok(!left.some((f) => f.includes(id)), `${id} retired`);
    await keyless.providers.close();
    await ctx.providers.close();
    await planner.providers.close();
  });
});
