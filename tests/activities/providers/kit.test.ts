/** The provider kit: the HTTP status rules (every row), the verified stream, requireEnv, piece CID v1 ↔ v2. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ConfigError,
  IntegrityError,
  PieceNotFoundError,
  ProviderAuthError,
  ProviderUnavailableError,
  SourceAccessDeniedError,
  SourceNotFoundError,
  SourceUnavailableError,
  StoreError,
  UnsupportedSourceError,
} from '../../../activities/errors.js';
import { pieceCidV2, pieceInfo } from '../../../activities/pack/cids.js';
import { commpOf } from '../../../activities/pack/commp.js';
import { requireEnv } from '../../../activities/providers/kit/env.js';
import { httpStatusError, httpStatusKind } from '../../../activities/providers/kit/http-status.js';
import { abortable } from '../../../activities/providers/kit/signal.js';
import { carCidOfStream, verifiedStream } from '../../../activities/providers/kit/verified-stream.js';
import { piece } from './fixtures.js';

describe('HTTP status rules', () => {
  const rows: [number[], object, object, object][] = [
    // statuses, provider read, provider write, source
    [[401, 403], ProviderAuthError, ProviderAuthError, SourceAccessDeniedError],
    [[404, 410], PieceNotFoundError, PieceNotFoundError, SourceNotFoundError],
    [[408, 425, 429, 500, 502, 503, 504], ProviderUnavailableError, ProviderUnavailableError, SourceUnavailableError],
    [[400, 405, 409, 412, 416, 422, 304], ProviderUnavailableError, StoreError, UnsupportedSourceError],
  ];
  for (const [statuses, read, write, source] of rows) {
    for (const status of statuses) {
      it(`maps HTTP ${status} on each side`, () => {
        assert.ok(httpStatusError(status, { side: 'provider', op: 'read', message: 'm' }) instanceof (read as never));
        for (const op of ['put', 'delete', 'renew'] as const) {
          assert.ok(httpStatusError(status, { side: 'provider', op, message: 'm' }) instanceof (write as never), op);
        }
        assert.ok(httpStatusError(status, { side: 'source', message: 'm' }) instanceof (source as never));
      });
    }
  }

  it("reads an RPC endpoint's 404/405 as unavailable (not the API) and its 500 as the command failing", () => {
    for (const status of [404, 405]) {
      assert.ok(
        httpStatusError(status, { side: 'provider', op: 'status', endpoint: 'rpc', message: 'm' }) instanceof
          ProviderUnavailableError,
      );
    }
    assert.ok(
      httpStatusError(403, { side: 'provider', op: 'status', endpoint: 'rpc', message: 'm' }) instanceof
        ProviderAuthError,
    );
    assert.ok(
      httpStatusError(500, { side: 'provider', op: 'put', endpoint: 'rpc', message: 'm' }) instanceof StoreError,
      'a failed command',
    );
    assert.ok(
      httpStatusError(500, { side: 'provider', op: 'read', endpoint: 'rpc', message: 'm' }) instanceof
        ProviderUnavailableError,
    );
    assert.ok(
      httpStatusError(503, { side: 'provider', op: 'put', endpoint: 'rpc', message: 'm' }) instanceof
        ProviderUnavailableError,
    );
  });

  it('retries exactly the unavailable kind on the source side', () => {
    for (let status = 300; status < 600; status++) {
      const e = httpStatusError(status, { side: 'source', message: 'm' });
      assert.equal(e.retryable, httpStatusKind(status) === 'unavailable', `HTTP ${status}`);
    }
  });

  it('keeps the cause', () => {
    const cause = new Error('underneath');
    assert.equal(httpStatusError(503, { side: 'provider', op: 'put', message: 'm', cause }).cause, cause);
  });
});

describe('verified stream', () => {
  const bytes = Buffer.from('a CAR, as far as the hash is concerned '.repeat(1000));
  const ref = piece(bytes, 'bafyroot');
  const ctx = { provider: 'p1', piece: ref.pieceCid };
  const chunks = (b: Buffer, size = 4096) =>
    (async function* () {
      for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
    })();
  const drain = async (it: AsyncIterable<Buffer>) => {
    const out: Buffer[] = [];
    for await (const c of it) out.push(c);
    return Buffer.concat(out);
  };

  it('passes the bytes on unchanged when they are the piece', async () => {
    const s = verifiedStream(chunks(bytes), ref, ctx);
    assert.deepEqual(await drain(s), bytes);
    assert.equal(s.bytes, bytes.length);
    assert.equal(s.failure, undefined);
  });

  it('rejects corrupt bytes with IntegrityError before the stream ends', async () => {
    const bad = Buffer.from(bytes);
    bad[100]! ^= 1;
    const s = verifiedStream(chunks(bad), ref, ctx);
    await assert.rejects(drain(s), IntegrityError);
    assert.ok(s.failure instanceof IntegrityError);
  });

  it('rejects a truncated stream', async () => {
    await assert.rejects(drain(verifiedStream(chunks(bytes.subarray(0, bytes.length - 1)), ref, ctx)), IntegrityError);
  });

  it('rejects a stream longer than the piece without passing on the excess', async () => {
    const s = verifiedStream(chunks(Buffer.concat([bytes, Buffer.from('x')]), bytes.length), ref, ctx);
    const seen: Buffer[] = [];
    await assert.rejects(async () => {
      for await (const c of s) seen.push(c);
    }, IntegrityError);
    assert.equal(Buffer.concat(seen).length, bytes.length);
  });

  it('checks only the CID when no length is given', async () => {
    await drain(verifiedStream(chunks(bytes), { carCid: ref.carCid }, ctx));
    await assert.rejects(drain(verifiedStream(chunks(bytes.subarray(1)), { carCid: ref.carCid }, ctx)), IntegrityError);
  });

  it('passes a failure of the source through as it is', async () => {
    const boom = new RangeError('source broke');
    const src = (async function* () {
      yield bytes.subarray(0, 10);
      throw boom;
    })();
    await assert.rejects(drain(verifiedStream(src, ref, ctx)), (e) => e === boom);
  });

  it('computes the CAR CID of a stream', async () => {
    assert.deepEqual(await carCidOfStream(chunks(bytes)), { carCid: ref.carCid, bytes: bytes.length });
  });
});

describe('requireEnv', () => {
  it('returns the value of a set variable', () => {
    assert.equal(requireEnv('PV_TOKEN', { path: 'providers.a.tokenEnv', env: { PV_TOKEN: 'secret' } }), 'secret');
  });

  it('throws ConfigError naming the config path when the variable is unset or empty', () => {
    for (const env of [{}, { PV_TOKEN: '' }]) {
      assert.throws(
        () => requireEnv('PV_TOKEN', { path: 'providers.a.tokenEnv', env }),
        (e) => e instanceof ConfigError && e.issues.length === 1 && e.issues[0]!.path === 'providers.a.tokenEnv',
      );
    }
  });

  it('throws ConfigError when the value does not have the required format', () => {
    const format = { pattern: /^0x[0-9a-f]{4}$/, description: 'four hex digits' };
    assert.equal(requireEnv('K', { path: 'p', env: { K: '0xabcd' }, format }), '0xabcd');
    assert.throws(() => requireEnv('K', { path: 'p', env: { K: 'abcd' }, format }), ConfigError);
  });
});

describe('abortable', () => {
  it('stops waiting when the signal aborts, with its reason', async () => {
    const ac = new AbortController();
    const never = new Promise<never>(() => {});
    const waiting = abortable(ac.signal, () => never);
    const reason = new Error('cancelled');
    ac.abort(reason);
    await assert.rejects(waiting, (e) => e === reason);
  });

  it('does not start work under a signal already aborted', async () => {
    let started = false;
    await assert.rejects(abortable(AbortSignal.abort(), async () => (started = true)));
    assert.equal(started, false);
  });
});

describe('piece CID v1 ↔ v2', () => {
  it('round-trips the piece CIDs of several sizes', () => {
    for (const n of [127, 128, 1000, 65_024, 100_000]) {
      const v2 = commpOf(Buffer.alloc(n, 7)).pieceCid;
      const info = pieceInfo(v2);
      assert.equal(info.rawBytes, n);
      assert.ok(info.v1.startsWith('baga'));
      assert.equal(pieceCidV2(info.v1, info.paddedBytes, info.rawBytes), v2);
    }
  });
});
