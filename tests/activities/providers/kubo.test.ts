/** Kubo provider on a real Kubo daemon: what it keeps on the node, and every fault as a typed error. */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../../activities/errors.js';
import { KuboProvider } from '../../../activities/providers/kubo.js';
import { createProvider } from '../../../activities/providers/registry.js';
import { KuboProviderSchema, ProviderSchema } from '../../../config/schema.js';
import { bytesOf } from '../../helpers/env.js';
import { freePort, KuboServer, serverOr, type Started } from '../../helpers/servers.js';
import { carOf, collect, kuboProvider, piece } from './fixtures.js';

const MiB = 1024 * 1024;
const named = (name: string) => (e: unknown) => e instanceof Error && e.name === name;

let kubo: Started<KuboServer> | undefined;
before(async () => {
  kubo = await KuboServer.start();
});
after(async () => {
  if (kubo?.ok) await kubo.server.stop();
});

function server(t: { skip(m: string): void }): KuboServer | undefined {
  return serverOr(t, kubo);
}

/** Call the Kubo RPC API directly (to look at what the provider left on the node). */
async function rpc(apiUrl: string, cmd: string, args: Record<string, string>): Promise<Response> {
  return fetch(`${apiUrl}/api/v0/${cmd}?${new URLSearchParams(args)}`, { method: 'POST' });
}

const mfsDir = () => `/pv-${crypto.randomBytes(4).toString('hex')}`;

describe('kubo provider on a Kubo daemon', () => {
  it('serves the piece’s blocks by their own CIDs and reads the CAR across chunk boundaries', async (t) => {
    const k = server(t);
    if (!k) return;
    const p = kuboProvider(k, { mfsDir: mfsDir() });
    const car = await carOf(3 * MiB + 123, 'blocks', MiB);
    const ref = piece(car.bytes, car.rootCid);
    await p.put(ref, () => Readable.from([car.bytes]));
    const block = await rpc(k.apiUrl, 'block/get', { arg: car.rootCid });
    assert.equal(block.status, 200);
    assert.ok(Buffer.from(await block.arrayBuffer()).equals(bytesOf(MiB, 'blocks/0')), 'the root block as imported');
    // 1 MiB UnixFS chunks: ranges that start before and end after a chunk boundary.
    for (const [offset, length] of [
      [MiB - 1, 2],
      [MiB - 100, MiB + 200],
      [0, 3 * MiB],
      [2 * MiB + 5, undefined],
    ] as const) {
      const want = car.bytes.subarray(offset, length === undefined ? undefined : offset + length);
      assert.ok((await collect(p.readRange(ref, { offset, length }))).equals(want), `range ${offset}+${length}`);
    }
  });

  it('keeps the CAR pinned under a provenant name, and unpins it on delete', async (t) => {
    const k = server(t);
    if (!k) return;
    const p = kuboProvider(k, { mfsDir: mfsDir() });
    const car = await carOf(10_000, 'pin');
    const ref = piece(car.bytes, car.rootCid);
    await p.put(ref, () => Readable.from([car.bytes]));
    const fileCid = /file (\S+)/.exec((await p.status(ref)).detail ?? '')?.[1];
    assert.ok(fileCid, 'status names the pinned file');
    const pins = (await (await rpc(k.apiUrl, 'pin/ls', { arg: fileCid, type: 'recursive', names: 'true' })).json()) as {
      Keys: Record<string, { Name?: string }>;
    };
    assert.equal(pins.Keys[fileCid]?.Name, `provenant:${ref.pieceCid}`);
    await p.delete(ref);
    assert.notEqual(
      (await rpc(k.apiUrl, 'pin/ls', { arg: fileCid, type: 'recursive' })).status,
      200,
      'no longer pinned',
    );
  });

  it('is built from config through the registry', async (t) => {
    const k = server(t);
    if (!k) return;
    const p = createProvider(
      ProviderSchema.parse({ kind: 'kubo', id: 'from-config', apiUrl: k.apiUrl, mfsDir: mfsDir() }),
    );
    assert.ok(p instanceof KuboProvider);
    const car = await carOf(2000, 'cfg');
    await p.put(piece(car.bytes, car.rootCid), () => Readable.from([car.bytes]));
    assert.equal((await p.status(piece(car.bytes, car.rootCid))).present, true);
  });

  it('fails with StoreError on bytes that match the piece but are not a CAR, and leaves no pin', async (t) => {
    const k = server(t);
    if (!k) return;
    const p = kuboProvider(k, { mfsDir: mfsDir() });
    const bytes = bytesOf(5000, 'not-a-car');
    const ref = piece(bytes);
    const before = await (await rpc(k.apiUrl, 'pin/ls', { type: 'recursive' })).text();
    await assert.rejects(
      p.put(ref, () => Readable.from([bytes])),
      named('StoreError'),
    );
    assert.equal((await p.status(ref)).present, false);
    assert.equal(await (await rpc(k.apiUrl, 'pin/ls', { type: 'recursive' })).text(), before);
  });

  it('maps a stopped daemon to ProviderUnavailableError, which is retryable', async (t) => {
    if (!server(t)) return;
    const own = serverOr(t, await KuboServer.start());
    if (!own) return;
    const p = kuboProvider(own);
    const car = await carOf(1000, 'down');
    const ref = piece(car.bytes, car.rootCid);
    await p.put(ref, () => Readable.from([car.bytes]));
    await own.stop();
    const down = (e: unknown) =>
      named('ProviderUnavailableError')(e) && (e as { retryable: boolean }).retryable === true;
    await assert.rejects(p.status(ref), down);
    await assert.rejects(collect(p.readRange(ref, { length: 10 })), down);
    await assert.rejects(p.locate(ref.rootCid), down);
    await assert.rejects(
      p.put(ref, () => Readable.from([car.bytes])),
      down,
    );
  });

  it('maps an API URL where nothing listens to ProviderUnavailableError', async () => {
    const p = kuboProvider({ apiUrl: `http://127.0.0.1:${await freePort()}` });
    await assert.rejects(p.status(piece(bytesOf(10, 'x'))), named('ProviderUnavailableError'));
  });

  it('sends the Authorization value from the environment, and maps a refused one to ProviderAuthError', async (t) => {
    if (!server(t)) return;
    const secret = crypto.randomBytes(16).toString('hex');
    const own = serverOr(t, await KuboServer.start({ authSecret: secret }));
    if (!own) return;
    try {
      const car = await carOf(1000, 'auth');
      const ref = piece(car.bytes, car.rootCid);
      const good = kuboProvider(own, { authorizationEnv: 'PV_KUBO_AUTH' }, { PV_KUBO_AUTH: `Bearer ${secret}` });
      await good.put(ref, () => Readable.from([car.bytes]));
      assert.equal((await good.status(ref)).present, true);
      const wrong = kuboProvider(own, { authorizationEnv: 'PV_KUBO_AUTH' }, { PV_KUBO_AUTH: 'Bearer wrong' });
      const auth = (e: unknown) => named('ProviderAuthError')(e) && (e as { retryable: boolean }).retryable === false;
      await assert.rejects(wrong.status(ref), auth);
      await assert.rejects(
        wrong.put(ref, () => Readable.from([car.bytes])),
        auth,
      );
      await assert.rejects(collect(wrong.readRange(ref, { length: 10 })), auth);
      await assert.rejects(kuboProvider(own).locate(ref.rootCid), auth, 'no credentials at all');
    } finally {
      await own.stop();
    }
  });

  it('fails with ConfigError when the named Authorization variable is not set', () => {
    const cfg = KuboProviderSchema.parse({
      kind: 'kubo',
      id: 'x',
      apiUrl: 'http://127.0.0.1:5001',
      authorizationEnv: 'PV_UNSET_KUBO_AUTH',
    });
    assert.throws(
      () => new KuboProvider(cfg, {}),
      (e) => e instanceof ConfigError && /PV_UNSET_KUBO_AUTH/.test(e.message),
    );
  });
});
