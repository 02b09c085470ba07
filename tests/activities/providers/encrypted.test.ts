/** The encrypting provider decorator and its keys, over a local directory provider (no servers). */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import {
  encryptedProviders,
  kekIdOf,
  loadKek,
  newDatasetEncryption,
  refusePlaintextOnlyProviders,
  startRunEncryption,
  unwrapDataKey,
} from '../../../activities/encryption/keys.js';
import { DatasetEncryptionSchema } from '../../../activities/encryption/record.js';
import { EncryptedProvider, ShardCipher } from '../../../activities/providers/encrypted.js';
import { pieceOfCar, smallCar } from '../../../activities/providers/kit/car.js';
import { LocalProvider } from '../../../activities/providers/local.js';
import type { StorageProvider } from '../../../activities/providers/provider.js';
import { cidOf, RAW_CODE, sha256 } from '../../../activities/pack/cids.js';
import { parseConfig } from '../../../config/load.js';
import { bytesOf, tmpDir } from '../../helpers/env.js';

const MARKER = 'PLAINTEXT-MARKER-0f1e2d3c';

async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** A CAR of a few raw blocks, the marker in each. */
function testCar(n: number, blockBytes: number) {
  const blocks = Array.from({ length: n }, (_, i) => {
    const bytes = Buffer.concat([Buffer.from(`${MARKER}/${i}/`), bytesOf(blockBytes, `enc-${i}`)]);
    return { cid: cidOf(RAW_CODE, sha256(bytes)), bytes };
  });
  const car = smallCar(blocks[0]!.cid, blocks);
  return { car, piece: pieceOfCar(car, blocks[0]!.cid.toString()) };
}

function kekHex(): string {
  return crypto.randomBytes(32).toString('hex');
}

function setup(chunkBytes = 4096) {
  const root = tmpDir('pv-enc-');
  const inner = new LocalProvider('l1', path.join(root, 'l1'));
  const env = { PV_KEK: kekHex() };
  const kek = loadKek({ keyEnv: 'PV_KEK' }, env)!;
  const enc = newDatasetEncryption(kek, chunkBytes);
  const [p] = encryptedProviders([inner], enc, { keyEnv: 'PV_KEK' }, { env });
  return { root, inner, env, kek, enc, p: p! };
}

function piecesOf(root: string): Buffer[] {
  const dir = path.join(root, 'l1', 'pieces');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.car'))
    .map((f) => fs.readFileSync(path.join(dir, f)));
}

describe('encrypted provider', () => {
  it('stores only ciphertext, under an id that is not the piece CID, and reads the plaintext back', async () => {
    const { root, p, inner } = setup();
    const { car, piece } = testCar(5, 10_000);
    const placed = await p.put(piece, () => Readable.from([car]));
    assert.equal(placed.pieceCid, piece.pieceCid);
    assert.equal(placed.existed, false);
    const stored = piecesOf(root);
    assert.equal(stored.length, 1);
    assert.ok(!stored[0]!.includes(Buffer.from(MARKER)), 'the marker is not in the stored bytes');
    assert.ok(!stored[0]!.includes(car.subarray(0, 64)), 'no run of the CAR is stored as it is');
    assert.equal((await inner.status({ pieceCid: piece.pieceCid })).present, false, 'nothing under the piece CID');
    assert.ok(
      fs.readdirSync(path.join(root, 'l1', 'roots')).every((r) => r !== piece.rootCid),
      'nor its root',
    );
    assert.deepEqual(await readAll(p.readRange(piece)), car);
    const st = await p.status(piece);
    assert.equal(st.present, true);
    assert.equal(st.bytes, car.length);
    assert.equal(st.pieceCid, piece.pieceCid);
  });

  it('serves any byte range from the chunks that hold it', async () => {
    const { p } = setup(4096);
    const { car, piece } = testCar(4, 9_000);
    await p.put(piece, () => Readable.from([car]));
    const ranges = [
      [0, 1],
      [0, 4096],
      [4095, 2],
      [4096, 4096],
      [5000, 12_345],
      [car.length - 1, 1],
      [car.length - 4097, 4097],
      [100, car.length - 100],
    ] as const;
    for (const [offset, length] of ranges)
      assert.deepEqual(
        await readAll(p.readRange(piece, { offset, length })),
        car.subarray(offset, offset + length),
        `range ${offset}+${length}`,
      );
    assert.deepEqual(await readAll(p.readRange(piece, { offset: 7777 })), car.subarray(7777), 'to the end');
  });

  it('is deterministic: a second put (another provider, a retry) makes the same ciphertext', async () => {
    const { root, env, enc } = setup();
    const { car, piece } = testCar(3, 5000);
    const a = new LocalProvider('l1', path.join(root, 'l1'));
    const b = new LocalProvider('l2', path.join(root, 'l2'));
    const [ea, eb] = encryptedProviders([a, b], enc, { keyEnv: 'PV_KEK' }, { env });
    await ea!.put(piece, () => Readable.from([car]));
    await eb!.put(piece, () => Readable.from([car]));
    assert.equal((await eb!.put(piece, () => Readable.from([car]))).existed, true);
    const files = (dir: string) => fs.readdirSync(path.join(root, dir, 'pieces')).filter((f) => f.endsWith('.car'));
    assert.deepEqual(files('l1'), files('l2'));
    const name = files('l1')[0]!;
    assert.ok(
      fs
        .readFileSync(path.join(root, 'l1', 'pieces', name))
        .equals(fs.readFileSync(path.join(root, 'l2', 'pieces', name))),
    );
  });

  it('copies ciphertext as it is stored (a repair), refusing a copy that fails authentication', async () => {
    const { root, env, enc } = setup();
    const { car, piece } = testCar(3, 5000);
    const [a, b] = encryptedProviders(
      [new LocalProvider('l1', path.join(root, 'l1')), new LocalProvider('l2', path.join(root, 'l2'))],
      enc,
      { keyEnv: 'PV_KEK' },
      { env },
    ) as EncryptedProvider[];
    await a!.put(piece, () => Readable.from([car]));
    const dir = path.join(root, 'l1', 'pieces');
    const name = fs.readdirSync(dir).find((f) => f.endsWith('.car'))!;
    const good = fs.readFileSync(path.join(dir, name));
    assert.ok(a!.sameKey(b!));
    const file = path.join(root, 'copy.car');
    fs.writeFileSync(path.join(dir, name), Buffer.from(good).fill(good[100]! ^ 1, 100, 101));
    await assert.rejects(a!.readSealed(piece, file), { name: 'IntegrityError' });
    fs.writeFileSync(path.join(dir, name), good);
    const sealedCid = await a!.readSealed(piece, file);
    assert.ok(fs.readFileSync(file).equals(good), 'the file holds the ciphertext, not the plaintext');
    await b!.putSealed(piece, file, sealedCid, { consumeLocalFile: true });
    assert.ok(fs.readFileSync(path.join(root, 'l2', 'pieces', name)).equals(good));
    assert.deepEqual(await readAll(b!.readRange(piece)), car);
  });

  it('refuses to store plaintext that does not match the piece', async () => {
    const { root, p } = setup();
    const { car, piece } = testCar(2, 5000);
    const bad = Buffer.from(car);
    bad[bad.length - 10]! ^= 1;
    await assert.rejects(
      p.put(piece, () => Readable.from([bad])),
      { name: 'IntegrityError' },
    );
    assert.deepEqual(piecesOf(root), []);
  });

  it('finds a flipped ciphertext bit, a truncation and a chunk swap as IntegrityError', async () => {
    const { root, p } = setup(4096);
    const { car, piece } = testCar(3, 6000);
    await p.put(piece, () => Readable.from([car]));
    const dir = path.join(root, 'l1', 'pieces');
    const file = path.join(
      dir,
      fs.readdirSync(dir).find((f) => f.endsWith('.car'))!,
    );
    const good = fs.readFileSync(file);
    const sealed = 4096 + 16;
    const faults: [string, Buffer][] = [
      ['bit flip', Buffer.from(good).fill(good[5000]! ^ 4, 5000, 5001)],
      ['truncation', good.subarray(0, good.length - 5)],
      [
        'chunk swap',
        Buffer.concat([good.subarray(sealed, 2 * sealed), good.subarray(0, sealed), good.subarray(2 * sealed)]),
      ],
    ];
    for (const [name, bytes] of faults) {
      fs.writeFileSync(file, bytes);
      await assert.rejects(readAll(p.readRange(piece)), { name: 'IntegrityError' }, name);
    }
    // A byte range in an untouched chunk still reads (the fault is located, not everywhere).
    fs.writeFileSync(file, faults[0]![1]);
    assert.deepEqual(await readAll(p.readRange(piece, { offset: 10, length: 100 })), car.subarray(10, 110));
  });

  it('passes the pieces it is told are plain (the manifest) through as they are', async () => {
    const { root, env, enc, inner } = setup();
    const { car, piece } = testCar(1, 3000);
    const [p] = encryptedProviders([inner], enc, { keyEnv: 'PV_KEK' }, { env, plain: new Set([piece.pieceCid]) });
    await p!.put(piece, () => Readable.from([car]));
    assert.ok(piecesOf(root)[0]!.equals(car));
    assert.deepEqual(await p!.locate(piece.rootCid), piece);
  });

  it('deletes the ciphertext by the piece CID', async () => {
    const { root, p } = setup();
    const { car, piece } = testCar(1, 3000);
    await p.put(piece, () => Readable.from([car]));
    await p.delete(piece);
    assert.deepEqual(piecesOf(root), []);
    assert.equal((await p.status(piece)).present, false);
  });

  it('refuses providers that must see the plaintext CAR (Filecoin, Kubo) with EncryptionUnsupportedError', async () => {
    const { car, piece } = testCar(1, 3000);
    const fake = { id: 'k', kind: 'kubo' } as unknown as StorageProvider;
    const p = new EncryptedProvider(fake, new ShardCipher(crypto.randomBytes(32), 4096));
    await assert.rejects(
      p.put(piece, () => Readable.from([car])),
      { name: 'EncryptionUnsupportedError' },
    );
    await assert.rejects(readAll(p.readRange(piece)), { name: 'EncryptionUnsupportedError' });
  });
});

describe('encryption keys', () => {
  it('wraps a data key that only the same key-encryption key unwraps; the record holds no key', () => {
    const env = { A: kekHex(), B: kekHex() };
    const a = loadKek({ keyEnv: 'A' }, env)!;
    const b = loadKek({ keyEnv: 'B' }, env)!;
    const enc = newDatasetEncryption(a, 1 << 20);
    DatasetEncryptionSchema.parse(enc);
    assert.equal(enc.keyId, kekIdOf(a.key));
    const dataKey = unwrapDataKey(enc, a);
    assert.equal(dataKey.length, 32);
    const text = JSON.stringify(enc);
    for (const secret of [a.key, dataKey])
      for (const form of ['hex', 'base64', 'base64url'] as const)
        assert.ok(!text.includes(secret.toString(form)), `no key in the record (${form})`);
    assert.throws(() => unwrapDataKey(enc, b), { name: 'EncryptionKeyError' });
    assert.throws(() => unwrapDataKey(enc, undefined), { name: 'EncryptionKeyError' });
    // A KEK with the right id but altered wrapped bytes fails the key wrap's own check.
    const altered = { ...enc, wrappedKey: Buffer.from(enc.wrappedKey, 'base64').fill(1, 0, 1).toString('base64') };
    assert.throws(() => unwrapDataKey(altered, a), { name: 'EncryptionKeyError' });
  });

  it('reads the key from a file (raw, hex or base64) or a variable; a missing or malformed one is EncryptionKeyError', () => {
    const dir = tmpDir('pv-enc-key-');
    const key = crypto.randomBytes(32);
    const id = kekIdOf(key);
    for (const [name, body] of [
      ['raw', key],
      ['hex', `${key.toString('hex')}\n`],
      ['b64', key.toString('base64')],
    ] as const) {
      const f = path.join(dir, name);
      fs.writeFileSync(f, body);
      assert.equal(loadKek({ keyFile: f })!.keyId, id, name);
    }
    assert.equal(loadKek({}), undefined);
    assert.throws(() => loadKek({ keyFile: path.join(dir, 'none') }), { name: 'EncryptionKeyError' });
    fs.writeFileSync(path.join(dir, 'short'), 'abcd');
    assert.throws(() => loadKek({ keyFile: path.join(dir, 'short') }), { name: 'EncryptionKeyError' });
    assert.throws(() => loadKek({ keyEnv: 'PV_UNSET_KEK' }, {}), { name: 'EncryptionKeyError' });
    assert.throws(() => loadKek({ keyEnv: 'K' }, { K: 'not a key' }), { name: 'EncryptionKeyError' });
  });

  it('refuses, before packing, a run whose providers include Filecoin or Kubo ones', () => {
    const p = (id: string, kind: string) => ({ id, kind }) as unknown as StorageProvider;
    assert.doesNotThrow(() => refusePlaintextOnlyProviders([p('a', 'local'), p('b', 's3')]));
    for (const kind of ['synapse', 'lotus', 'kubo'])
      assert.throws(() => refusePlaintextOnlyProviders([p('a', 'local'), p('x', kind)]), {
        name: 'EncryptionUnsupportedError',
      });
  });

  it('takes the key by file or by variable, not both (ConfigError)', () => {
    assert.throws(() => parseConfig({ encryption: { keyFile: '/k', keyEnv: 'K' } }), { name: 'ConfigError' });
    assert.equal(parseConfig({}).encryption.chunkBytes, 1 << 20);
  });

  it('gives a run one data key, kept in its staging, whatever the attempts', async () => {
    const dir = tmpDir('pv-enc-run-');
    const env = { PV_KEK: kekHex() };
    const config = parseConfig({ dataDir: dir, encryption: { keyEnv: 'PV_KEK' } });
    const stage = path.join(dir, 'stage');
    fs.mkdirSync(stage);
    const first = await startRunEncryption(config, stage, env);
    const second = await startRunEncryption(config, stage, env);
    assert.ok(first);
    assert.deepEqual(second, first);
    const off = parseConfig({ dataDir: dir });
    const other = path.join(dir, 'other');
    fs.mkdirSync(other);
    assert.equal(await startRunEncryption(off, other, env), undefined, 'no key configured: no encryption');
  });
});
