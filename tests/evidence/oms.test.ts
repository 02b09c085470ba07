/**
 * `provenant export --format oms` of a tree archived on the real dev server is an OpenSSF Model
 * Signing v1.0 signature that the reference tool (`model_signing verify key`, PyPI model-signing,
 * from the virtualenv `npm run setup` makes) accepts against the restored tree, and rejects once a
 * restored file or the signature changes. The tool's own signature of the restored tree carries
 * the same resources, subject digest and serialization as ours.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { comparePosixPaths } from '../../activities/evidence/oms.js';
import { startArchive, startRestore } from '../../workers/client.js';
import { bytesOf, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import { pythonTool, type PyTool } from './tools.js';
import { runCli } from '../helpers/cli.js';

const MODEL_SIGNING_VERSION = '1.1.1'; // keep in step with scripts/setup.sh

function modelSigning(tool: PyTool, args: string[]) {
  const r = spawnSync(path.join(tool.bin, 'model_signing'), args, { encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

interface Bundle {
  mediaType: string;
  verificationMaterial: { publicKey: { hint: string }; tlogEntries: unknown[] };
  dsseEnvelope: { payload: string; payloadType: string; signatures: { sig: string; keyid: string }[] };
}
interface Statement {
  _type: string;
  subject: { name: string; digest: { sha256: string } }[];
  predicateType: string;
  predicate: {
    serialization: { method: string; hash_type: string; allow_symlinks: boolean; ignore_paths: string[] };
    resources: { name: string; algorithm: string; digest: string }[];
  };
}

const payloadOf = (b: Bundle) =>
  JSON.parse(Buffer.from(b.dsseEnvelope.payload, 'base64').toString('utf8')) as Statement;
const sha256 = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');

function writeKeyPair(dir: string, name: string, type: 'ec' | 'ed25519') {
  const { privateKey, publicKey } =
    type === 'ec'
      ? crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      : crypto.generateKeyPairSync('ed25519');
  const priv = path.join(dir, `${name}.pem`);
  const pub = path.join(dir, `${name}.pub.pem`);
  fs.writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  fs.writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  return { priv, pub };
}

describe('OMS export', () => {
  let env: TestWorkflowEnvironment | undefined;
  before(async (t) => {
    env = await startTemporal(t as never);
  });
  after(async () => {
    await env?.teardown();
  });

  it('sorts resources by path components as Python does', () => {
    const paths = ['a-c', 'a/b', 'a', 'B', 'a/b/c', 'é', '\u{1F600}', '\uFFFD', 'a b'];
    // Python: sorted(PurePosixPath(p) for p in paths)
    const python = ['B', 'a', 'a/b', 'a/b/c', 'a b', 'a-c', 'é', '\uFFFD', '\u{1F600}'];
    assert.deepEqual([...paths].sort(comparePosixPaths), python);
  });

  it(`verifies with model_signing ${MODEL_SIGNING_VERSION} against the restored tree; a changed byte or signature does not`, async (t) => {
    if (!env) return t.skip('no Temporal server');
    const tool = pythonTool(t, `python-model-signing-${MODEL_SIGNING_VERSION}`, 'import model_signing._cli');
    if (!tool) return;
    const data = tmpDir('pv-oms-');
    const src = path.join(data, 'src');
    const files: Record<string, Buffer | string> = {
      'a/b': 'nested\n',
      'a-c': 'sorts after a/b in Python\n',
      'train/part 1.jsonl': '{"a":1}\n',
      'données/é.txt': 'unicode path\n',
      'model.safetensors': bytesOf(3 * 1024 * 1024 + 11, 'oms'),
      '.gitignore': '*.tmp\n',
      empty: '',
    };
    writeTree(src, files);
    const home = path.join(data, 'home');
    const config = testConfig(home);
    const restored = path.join(data, 'restored');
    const summary = await withWorker(env, config, async () => {
      const { handle } = await startArchive(env!.client, config, { dir: src, datasetId: 'oms-ds' });
      const s = await handle.result();
      const r = await startRestore(env!.client, config, { manifestCid: s.manifestCid, target: restored, force: false });
      await r.result();
      return s;
    });
    for (const [p, body] of Object.entries(files))
      assert.equal(sha256(fs.readFileSync(path.join(restored, p))), sha256(body), `restored ${p}`);

    const keys = writeKeyPair(data, 'signer', 'ec');
    const cfgFile = path.join(data, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ dataDir: home }));
    const sig = path.join(data, 'tree.sig');
    const r = await runCli([
      'export',
      summary.manifestCid,
      '--format',
      'oms',
      '--out',
      sig,
      '--key',
      keys.priv,
      '--config',
      cfgFile,
    ]);
    assert.equal(r.code, 0, r.stderr);

    const bundle = JSON.parse(fs.readFileSync(sig, 'utf8')) as Bundle;
    assert.equal(bundle.mediaType, 'application/vnd.dev.sigstore.bundle.v0.3+json');
    assert.equal(bundle.verificationMaterial.publicKey.hint, sha256(fs.readFileSync(keys.pub, 'utf8')));
    assert.deepEqual(bundle.verificationMaterial.tlogEntries, []);
    assert.equal(bundle.dsseEnvelope.payloadType, 'application/vnd.in-toto+json');
    const st = payloadOf(bundle);
    assert.equal(st._type, 'https://in-toto.io/Statement/v1');
    assert.equal(st.predicateType, 'https://model_signing/signature/v1.0');
    assert.deepEqual(st.predicate.serialization, {
      method: 'files',
      hash_type: 'sha256',
      allow_symlinks: false,
      ignore_paths: ['.git', '.gitattributes', '.github', '.gitignore'],
    });
    const signed = Object.keys(files).filter((p) => p !== '.gitignore');
    assert.deepEqual(
      st.predicate.resources.map((x) => x.name),
      ['a/b', 'a-c', 'données/é.txt', 'empty', 'model.safetensors', 'train/part 1.jsonl'],
    );
    for (const x of st.predicate.resources) {
      assert.equal(x.algorithm, 'sha256');
      assert.equal(x.digest, sha256(files[x.name]!), x.name);
    }
    assert.equal(st.predicate.resources.length, signed.length);

    // The reference tool accepts it against the restored tree.
    const verify = (sigFile: string, pub = keys.pub) =>
      modelSigning(tool, ['verify', 'key', '--signature', sigFile, '--public_key', pub, restored]);
    const good = verify(sig);
    assert.ok(good.ok, `model_signing rejected the export:\n${good.output}`);
    assert.match(good.output, /Verification succeeded/);

    // The tool's own signature of the restored tree says the same (but for the model name).
    const theirs = path.join(data, 'theirs.sig');
    const signedByTool = modelSigning(tool, [
      'sign',
      'key',
      '--private_key',
      keys.priv,
      '--signature',
      theirs,
      restored,
    ]);
    assert.ok(signedByTool.ok, signedByTool.output);
    const ref = payloadOf(JSON.parse(fs.readFileSync(theirs, 'utf8')) as Bundle);
    assert.deepEqual(st.predicate.resources, ref.predicate.resources);
    assert.equal(st.subject[0]!.digest.sha256, ref.subject[0]!.digest.sha256);
    assert.deepEqual(
      { ...st.predicate.serialization, ignore_paths: [...st.predicate.serialization.ignore_paths].sort() },
      { ...ref.predicate.serialization, ignore_paths: [...ref.predicate.serialization.ignore_paths].sort() },
    );

    // One byte of one restored file changed: rejected, naming the file; put back: accepted again.
    const victim = path.join(restored, 'model.safetensors');
    const original = fs.readFileSync(victim);
    const changed = Buffer.from(original);
    changed[1024] = changed[1024]! ^ 0x01;
    fs.writeFileSync(victim, changed);
    const tampered = verify(sig);
    assert.equal(tampered.ok, false, 'model_signing accepted a changed file');
    assert.match(tampered.output, /model\.safetensors/);
    fs.writeFileSync(victim, original);
    assert.ok(verify(sig).ok, 'the tree put back no longer verifies');

    // A file added to the tree: rejected (the signature lists every file).
    fs.writeFileSync(path.join(restored, 'extra.txt'), 'x');
    assert.equal(verify(sig).ok, false, 'model_signing accepted an extra file');
    fs.rmSync(path.join(restored, 'extra.txt'));

    // The signature file tampered: a resource digest changed in the payload, or a byte of the signature.
    const forged = structuredClone(bundle);
    const lie = payloadOf(bundle);
    lie.predicate.resources[0]!.digest = sha256('something else');
    forged.dsseEnvelope.payload = Buffer.from(JSON.stringify(lie)).toString('base64');
    const forgedFile = path.join(data, 'forged.sig');
    fs.writeFileSync(forgedFile, JSON.stringify(forged));
    assert.equal(verify(forgedFile).ok, false, 'model_signing accepted a changed payload');

    const badSig = structuredClone(bundle);
    const raw = Buffer.from(badSig.dsseEnvelope.signatures[0]!.sig, 'base64');
    raw[raw.length - 1] = raw[raw.length - 1]! ^ 0x01;
    badSig.dsseEnvelope.signatures[0]!.sig = raw.toString('base64');
    const badSigFile = path.join(data, 'bad-sig.sig');
    fs.writeFileSync(badSigFile, JSON.stringify(badSig));
    assert.equal(verify(badSigFile).ok, false, 'model_signing accepted a changed signature');

    // Another key's public half: rejected.
    const other = writeKeyPair(data, 'other', 'ec');
    assert.equal(verify(sig, other.pub).ok, false, 'model_signing accepted the wrong public key');

    // No key, or an Ed25519 key (which model_signing cannot verify): a typed error, no file.
    const noKey = await runCli([
      'export',
      summary.manifestCid,
      '--format',
      'oms',
      '--out',
      path.join(data, 'x.sig'),
      '--config',
      cfgFile,
    ]);
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /SigningKeyError/);
    const ed = writeKeyPair(data, 'ed', 'ed25519');
    const edKey = await runCli([
      'export',
      summary.manifestCid,
      '--format',
      'oms',
      '--out',
      path.join(data, 'y.sig'),
      '--key',
      ed.priv,
      '--config',
      cfgFile,
    ]);
    assert.equal(edKey.code, 1);
    assert.match(edKey.stderr, /SigningKeyError/);
    assert.equal(fs.existsSync(path.join(data, 'x.sig')) || fs.existsSync(path.join(data, 'y.sig')), false);
  });
});
