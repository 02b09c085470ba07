/**
 * The payload codec (workers/codec.ts): AES-256-GCM with key ids and rotation, checked on its own
 * and on the real Temporal dev server, where an archive's raw history must hold only encrypted
 * payloads, and the codec server (cli/commands/codec-server.ts) decodes them for the UI and CLI.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { temporal } from '@temporalio/proto';
import { startCodecServer } from '../../cli/commands/codec-server.js';
import { CodecKeyError, PayloadDecryptError } from '../../shared/errors.js';
import { startArchive, startRestore } from '../../workers/client.js';
import {
  clientDataConverter,
  codecOf,
  EncryptionCodec,
  ENCRYPTED_ENCODING,
  KEY_ID_METADATA,
  loadCodecKeys,
  parseCodecKeys,
  type CodecKeys,
} from '../../workers/codec.js';
import { ProvenantPlugin } from '../../workers/plugin.js';
import { bytesOf, readTree, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import { workflowTree } from '../helpers/histories.js';

const CLI = fileURLToPath(new URL('../../cli/provenant.js', import.meta.url));
const key = () => new Uint8Array(crypto.randomBytes(32));
const keysJson = (k: CodecKeys) =>
  JSON.stringify({
    current: k.current,
    keys: Object.fromEntries(Object.entries(k.keys).map(([id, b]) => [id, Buffer.from(b).toString('base64')])),
  });
const toPayload = (v: unknown): Payload => defaultPayloadConverter.toPayload(v)!;
const fromPayload = (p: Payload): unknown => defaultPayloadConverter.fromPayload(p);
const meta = (p: Payload, k: string) => Buffer.from(p.metadata?.[k] ?? new Uint8Array()).toString();

describe('EncryptionCodec', () => {
  const k1 = key();
  const k2 = key();
  const value = { datasetId: 'secret-dataset', sourcePath: '/data/private/run-42', n: 3 };

  it('round-trips payloads, which carry the encrypted encoding and the key id and no plaintext', async () => {
    const codec = new EncryptionCodec({ current: 'k1', keys: { k1 } });
    const [enc] = await codec.encode([toPayload(value)]);
    assert.equal(meta(enc!, 'encoding'), ENCRYPTED_ENCODING);
    assert.equal(meta(enc!, KEY_ID_METADATA), 'k1');
    assert.ok(!Buffer.from(enc!.data!).includes('secret-dataset'));
    assert.ok(!Buffer.from(enc!.data!).includes('/data/private'));
    const [dec] = await codec.decode([enc!]);
    assert.deepEqual(fromPayload(dec!), value);
    // Two encodings of one payload differ (a fresh IV each time).
    const [again] = await codec.encode([toPayload(value)]);
    assert.notDeepEqual(Buffer.from(again!.data!), Buffer.from(enc!.data!));
  });

  it('decodes payloads encoded under an old key after the current key changed (rotation)', async () => {
    const before = new EncryptionCodec({ current: 'k1', keys: { k1 } });
    const [old] = await before.encode([toPayload(value)]);
    const rotated = new EncryptionCodec({ current: 'k2', keys: { k1, k2 } });
    assert.deepEqual(fromPayload((await rotated.decode([old!]))[0]!), value);
    const [fresh] = await rotated.encode([toPayload(value)]);
    assert.equal(meta(fresh!, KEY_ID_METADATA), 'k2');
    assert.deepEqual(fromPayload((await rotated.decode([fresh!]))[0]!), value);
    // The old codec cannot read what the new key wrote: the id is unknown to it.
    await assert.rejects(before.decode([fresh!]), CodecKeyError);
  });

  it('rejects a tampered payload: a flipped bit, a truncation, or a payload moved to another key id', async () => {
    const codec = new EncryptionCodec({ current: 'k1', keys: { k1, k2 } });
    const [enc] = await codec.encode([toPayload(value)]);
    const flipped = Uint8Array.from(enc!.data!);
    flipped[20]! ^= 0x01;
    await assert.rejects(codec.decode([{ ...enc!, data: flipped }]), PayloadDecryptError);
    await assert.rejects(codec.decode([{ ...enc!, data: enc!.data!.subarray(0, 20) }]), PayloadDecryptError);
    await assert.rejects(
      codec.decode([{ ...enc!, data: enc!.data!.subarray(0, enc!.data!.length - 1) }]),
      PayloadDecryptError,
    );
    const moved = { ...enc!, metadata: { ...enc!.metadata, [KEY_ID_METADATA]: new TextEncoder().encode('k2') } };
    await assert.rejects(codec.decode([moved]), PayloadDecryptError);
  });

  it('names an unknown key id in a CodecKeyError', async () => {
    const [enc] = await new EncryptionCodec({ current: 'gone', keys: { gone: k1 } }).encode([toPayload(value)]);
    await assert.rejects(new EncryptionCodec({ current: 'k2', keys: { k2 } }).decode([enc!]), (err: Error) => {
      assert.ok(err instanceof CodecKeyError);
      assert.match(err.message, /'gone'/);
      assert.ok(!err.message.includes('\n'));
      return true;
    });
  });

  it('passes payloads that were never encrypted through decode', async () => {
    const codec = new EncryptionCodec({ current: 'k1', keys: { k1 } });
    assert.deepEqual(fromPayload((await codec.decode([toPayload(value)]))[0]!), value);
  });

  it('loads keys from PROVENANT_CODEC_KEYS, PROVENANT_CODEC_KEYS_FILE or codec.keysFile, and refuses bad ones', () => {
    const dir = tmpDir('pv-codec-keys-');
    const inFile = path.join(dir, 'keys.json');
    const inEnv = path.join(dir, 'env-keys.json');
    fs.writeFileSync(inFile, keysJson({ current: 'file', keys: { file: k1 } }));
    fs.writeFileSync(inEnv, keysJson({ current: 'envfile', keys: { envfile: k1 } }));
    const config = { codec: { keysFile: inFile } };
    assert.equal(loadCodecKeys({ codec: {} }, {}), undefined);
    assert.equal(codecOf({ codec: {} }, {}), undefined);
    assert.deepEqual(clientDataConverter({ codec: {} }, {}), {});
    assert.equal(loadCodecKeys(config, {})?.current, 'file');
    assert.equal(loadCodecKeys(config, { PROVENANT_CODEC_KEYS_FILE: inEnv })?.current, 'envfile');
    const inline = keysJson({ current: 'inline', keys: { inline: k2 } });
    assert.equal(loadCodecKeys(config, { PROVENANT_CODEC_KEYS: inline })?.current, 'inline');
    assert.equal(clientDataConverter(config, {}).dataConverter?.payloadCodecs?.length, 1);

    assert.throws(() => loadCodecKeys({ codec: { keysFile: path.join(dir, 'missing.json') } }, {}), CodecKeyError);
    assert.throws(() => parseCodecKeys('not json', 'test'), CodecKeyError);
    assert.throws(() => parseCodecKeys('{"current":"a","keys":{"a":"c2hvcnQ="}}', 'test'), CodecKeyError);
    assert.throws(
      () => parseCodecKeys(keysJson({ current: 'missing', keys: { other: k1 } }), 'test'),
      (err: Error) => err instanceof CodecKeyError && !err.message.includes(Buffer.from(k1).toString('base64')),
    );
  });

  it('is added by ProvenantPlugin to the data converter of clients and workers, after their own codecs', async () => {
    const dir = tmpDir('pv-codec-plugin-');
    const keys = path.join(dir, 'keys.json');
    fs.writeFileSync(keys, keysJson({ current: 'k1', keys: { k1 } }));
    const plugin = new ProvenantPlugin({ config: testConfig(dir, { codec: { keysFile: keys } }), hostWorker: false });
    const theirs = { encode: async (p: Payload[]) => p, decode: async (p: Payload[]) => p };
    const c = plugin.configureClient({ dataConverter: { payloadCodecs: [theirs] } });
    assert.equal(c.dataConverter?.payloadCodecs?.length, 2);
    assert.equal(c.dataConverter?.payloadCodecs?.[0], theirs);
    assert.equal(c.dataConverter?.payloadCodecs?.[1], plugin.codec);
    assert.equal(plugin.configureWorker({ taskQueue: 'q' }).dataConverter?.payloadCodecs?.[0], plugin.codec);
    const off = new ProvenantPlugin({ config: testConfig(dir, { codec: { keysFile: keys } }), codec: false });
    assert.equal(off.configureClient({}).dataConverter, undefined);
  });
});

type History = temporal.api.history.v1.IHistory;

/** Every payload in a history, with the path of fields that leads to it (search attributes aside: the server indexes them). */
function payloadsOf(h: History): { where: string; payload: Payload }[] {
  const out: { where: string; payload: Payload }[] = [];
  const walk = (v: unknown, where: string): void => {
    if (!v || typeof v !== 'object' || v instanceof Uint8Array) return;
    if (Array.isArray(v)) return v.forEach((x, i) => walk(x, `${where}[${i}]`));
    const o = v as Record<string, unknown>;
    if ('metadata' in o && o.metadata && typeof o.metadata === 'object' && 'data' in o) {
      out.push({ where, payload: o as Payload });
      return;
    }
    for (const [k, x] of Object.entries(o)) if (k !== 'searchAttributes') walk(x, `${where}.${k}`);
  };
  (h.events ?? []).forEach((e, i) => walk(e, `event ${i} (${String(e.eventType)})`));
  return out;
}

describe('the payload codec on a real Temporal server', () => {
  let env: TestWorkflowEnvironment | undefined;
  let dir: string;
  const datasetId = `codec-${crypto.randomBytes(3).toString('hex')}-private`;
  let src: string;
  let keysFile: string;
  let raw: { where: string; payload: Payload }[] = [];
  const keys = { k0: key(), k1: key() };

  before(async (t) => {
    env = await startTemporal(t as never);
    dir = tmpDir('pv-codec-');
    src = path.join(dir, 'very-private-source');
    writeTree(src, { 'secret-plans/model.bin': bytesOf(300_000, 'codec'), 'notes.txt': 'hello' });
    keysFile = path.join(dir, 'keys.json');
    fs.writeFileSync(keysFile, keysJson({ current: 'k1', keys }));
  });
  after(async () => {
    await env?.teardown();
  });

  it('archives and restores with the codec on; the raw history holds only encrypted payloads, no ids or paths', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const config = testConfig(path.join(dir, 'home'), { codec: { keysFile } });
    const client = new Client({
      connection: env.connection,
      namespace: env.namespace ?? 'default',
      ...clientDataConverter(config, {}),
    });
    const target = path.join(dir, 'restored');
    const { summary, archiveId } = await withWorker(env, config, async () => {
      const { handle } = await startArchive(client, config, { dir: src, datasetId });
      const summary = await handle.result();
      await (await startRestore(client, config, { manifestCid: summary.manifestCid, target, force: false })).result();
      return { summary, archiveId: handle.workflowId };
    });
    // A client with the codec reads the results as usual.
    assert.equal(summary.datasetId, datasetId);
    assert.deepEqual(readTree(target), readTree(src));

    // Raw: the histories as the server stores them, read by a client without the codec.
    const histories = await workflowTree(env.client, archiveId);
    if (summary.stewardWorkflowId)
      histories.push(...(await workflowTree(env.client, summary.stewardWorkflowId).catch(() => [])));
    raw = histories.flatMap((h) => payloadsOf(h.history));
    assert.ok(raw.length > 10, `expected the histories to hold payloads, found ${raw.length}`);
    const inputs = raw.filter((r) => /input/i.test(r.where));
    assert.ok(inputs.length > 3, 'the histories hold input payloads');
    for (const { where, payload } of raw) {
      const data = Buffer.from(payload.data ?? new Uint8Array());
      for (const secret of [datasetId, src, 'very-private-source', 'secret-plans'])
        assert.ok(!data.includes(secret), `${where} holds '${secret}' in the clear`);
      // Patch markers are written by the SDK's core, outside any codec: they name only the patch.
      if (/markerRecordedEventAttributes\.details\.patch-data/.test(where)) {
        assert.match(JSON.stringify(fromPayload(payload)), /provenant-/, `${where} is a patch marker`);
        continue;
      }
      assert.equal(meta(payload, 'encoding'), ENCRYPTED_ENCODING, `${where} is not encrypted`);
      assert.equal(meta(payload, KEY_ID_METADATA), 'k1', `${where} names another key`);
    }
    // Without the codec, the result cannot be read.
    await assert.rejects(env.client.workflow.getHandle(archiveId).result());
  });

  it('serves /decode and /encode over HTTP (codec server protocol, CORS, X-Namespace) for a payload from raw history', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const input = raw.find((r) => /workflowExecutionStartedEventAttributes\.input/.test(r.where));
    if (!input) return assert.fail('the archive test found no workflow input in raw history');
    const codec = new EncryptionCodec({ current: 'k1', keys });
    const server = await startCodecServer(codec, { port: 0, namespace: 'default' });
    try {
      const asJson = (p: Payload) => ({
        metadata: Object.fromEntries(
          Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
        ),
        data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
      });
      const post = (route: string, body: unknown, headers: Record<string, string> = {}) =>
        fetch(`${server.url}/${route}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'X-Namespace': 'default', ...headers },
          body: JSON.stringify(body),
        });
      const res = await post('decode', { payloads: [asJson(input.payload)] }, { Origin: 'http://localhost:8233' });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('access-control-allow-origin'), 'http://localhost:8233');
      const { payloads } = (await res.json()) as { payloads: { metadata: Record<string, string>; data: string }[] };
      assert.equal(Buffer.from(payloads[0]!.metadata.encoding!, 'base64').toString(), 'json/plain');
      const decoded = JSON.parse(Buffer.from(payloads[0]!.data, 'base64').toString()) as { datasetId: string };
      assert.equal(decoded.datasetId, datasetId);

      // Encode then decode through the server gives the payload back.
      const plain = asJson(toPayload({ hello: 'ui' }));
      const enc = (await (await post('encode', { payloads: [plain] })).json()) as { payloads: typeof payloads };
      assert.equal(Buffer.from(enc.payloads[0]!.metadata.encoding!, 'base64').toString(), ENCRYPTED_ENCODING);
      const back = (await (await post('decode', enc)).json()) as { payloads: typeof payloads };
      assert.deepEqual(back.payloads[0], plain);

      // The UI's preflight, another namespace, an origin not allowed, bad bodies, unknown routes.
      const pre = await fetch(`${server.url}/decode`, {
        method: 'OPTIONS',
        headers: { Origin: 'http://localhost:8233', 'Access-Control-Request-Headers': 'x-namespace,content-type' },
      });
      assert.equal(pre.status, 204);
      assert.match(pre.headers.get('access-control-allow-headers') ?? '', /X-Namespace/i);
      assert.equal((await post('decode', { payloads: [] }, { 'X-Namespace': 'other' })).status, 403);
      const foreign = await post('decode', { payloads: [] }, { Origin: 'https://evil.example' });
      assert.equal(foreign.headers.get('access-control-allow-origin'), null);
      assert.equal((await post('decode', { nope: 1 })).status, 400);
      assert.equal((await post('nothing', { payloads: [] })).status, 404);
      const unknown = new EncryptionCodec({ current: 'k9', keys: { k9: key() } });
      const res2 = await post('decode', { payloads: [asJson((await unknown.encode([toPayload(1)]))[0]!)] });
      assert.equal(res2.status, 400);
      assert.match(((await res2.json()) as { error: string }).error, /^CodecKeyError/);
    } finally {
      await server.close();
    }
  });

  it('runs as `provenant codec-server --port 0`, keys from PROVENANT_CODEC_KEYS_FILE', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const p = spawn(process.execPath, [CLI, 'codec-server', '--port', '0'], {
      env: { ...process.env, PROVENANT_CODEC_KEYS_FILE: keysFile, PROVENANT_DATA_DIR: path.join(dir, 'cli-home') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        let err = '';
        p.stdout.on('data', (b: Buffer) => {
          out += b.toString();
          const m = /^(http:\/\/\S+)$/m.exec(out);
          if (m) resolve(m[1]!);
        });
        p.stderr.on('data', (b: Buffer) => (err += b.toString()));
        p.once('exit', (code) => reject(new Error(`codec-server exited ${code}: ${err}`)));
      });
      const [enc] = await new EncryptionCodec({ current: 'k0', keys }).encode([toPayload({ old: 'key' })]);
      const res = await fetch(`${url}/decode`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          payloads: [
            {
              metadata: Object.fromEntries(
                Object.entries(enc!.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
              ),
              data: Buffer.from(enc!.data!).toString('base64'),
            },
          ],
        }),
      });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { payloads: { data: string }[] };
      assert.deepEqual(JSON.parse(Buffer.from(body.payloads[0]!.data, 'base64').toString()), { old: 'key' });
    } finally {
      p.kill('SIGTERM');
    }
    const code = await new Promise<number | null>((resolve) =>
      p.exitCode !== null ? resolve(p.exitCode) : p.once('exit', resolve),
    );
    assert.equal(code, 0);

    // No keys: a CodecKeyError, exit 1.
    const none = spawn(process.execPath, [CLI, 'codec-server', '--port', '0'], {
      env: { ...process.env, PROVENANT_CODEC_KEYS_FILE: '', PROVENANT_CODEC_KEYS: '', PROVENANT_DATA_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    none.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    assert.equal(await new Promise((resolve) => none.once('exit', resolve)), 1);
    assert.match(stderr, /^provenant: CodecKeyError: /m);
  });
});
