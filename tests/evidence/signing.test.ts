/**
 * Signing without a server: DSSE envelopes over in-toto statements with Ed25519 and ECDSA P-256
 * keys, audit records signed as they are written (and old unsigned ones still read), the
 * manifest statement, and key files that are not usable keys.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { appendRecords, readChain } from '../../activities/audit/audit.js';
import {
  checkEnvelope,
  openEnvelope,
  pae,
  signStatement,
  statementOf,
  STATEMENT_TYPE,
} from '../../activities/evidence/dsse.js';
import { keyIdOf, loadSigningKey, loadVerifyingKey } from '../../activities/evidence/keys.js';
import { auditStatementMismatch, manifestStatementMismatch, signManifest } from '../../activities/evidence/sign.js';
import * as dagJson from '@ipld/dag-json';
import { SigningKeyError } from '../../activities/errors.js';
import { cidOf, sha256 } from '../../activities/pack/cids.js';
import { LocalProvider } from '../../activities/providers/local.js';
import { tmpDir } from '../helpers/env.js';
import { writeKeyPair } from './keypairs.js';

describe('DSSE signing', () => {
  it('pre-authenticates type and body with their byte lengths', () => {
    assert.equal(pae('application/x', Buffer.from('héllo')).toString(), 'DSSEv1 13 application/x 6 héllo');
  });

  for (const kind of ['ed25519', 'ec'] as const) {
    it(`signs an in-toto statement with ${kind} and refuses a changed payload or signature`, () => {
      const dir = tmpDir('pv-dsse-');
      const k = writeKeyPair(dir, 'k', kind);
      const key = loadSigningKey(k.priv);
      const pub = loadVerifyingKey(k.pub);
      assert.equal(key.keyId, pub.keyId, 'the key id is the public key SPKI sha256 for both halves');
      assert.equal(key.keyId, keyIdOf(pub.publicKey));
      const st = statementOf([{ name: 'x', digest: { sha256: '00'.repeat(32) } }], 'https://example/p', { a: 1 });
      const env = signStatement(st, key);
      assert.equal(openEnvelope(env, 'test')._type, STATEMENT_TYPE);
      assert.deepEqual(checkEnvelope(env, [pub], []), { state: 'trusted', keyId: pub.keyId });
      assert.equal(checkEnvelope(env, [], [pub]).state, 'unverified-signer');

      const other = loadVerifyingKey(writeKeyPair(dir, 'o', kind).pub);
      assert.equal(checkEnvelope(env, [other], []).state, 'bad', 'another key does not verify it');

      const payload = Buffer.from(JSON.stringify({ ...st, predicate: { a: 2 } })).toString('base64');
      assert.equal(checkEnvelope({ ...env, payload }, [pub], [pub]).state, 'bad');
      const sig = Buffer.from(env.signatures[0]!.sig, 'base64');
      sig[sig.length - 1] = sig[sig.length - 1]! ^ 1;
      const bad = { ...env, signatures: [{ keyid: key.keyId, sig: sig.toString('base64') }] };
      assert.equal(checkEnvelope(bad, [pub], [pub]).state, 'bad');
    });
  }

  it('a manifest statement names the manifest root block by CID and sha256', () => {
    const dir = tmpDir('pv-dsse-m-');
    const key = loadSigningKey(writeKeyPair(dir, 'k', 'ed25519').priv);
    const cidOfValue = (v: unknown) => cidOf(dagJson.code, sha256(dagJson.encode(v))).toString();
    const cid = cidOfValue({ a: 1 });
    const env = signManifest(cid, 'ds', key);
    assert.equal(manifestStatementMismatch(env, cid), undefined);
    assert.match(manifestStatementMismatch(env, cidOfValue({ a: 2 })) ?? '', /another manifest/);
  });
});

describe('signed audit records', () => {
  it('each record written with a key names its signer and verifies; unsigned records still read', async () => {
    const dir = tmpDir('pv-audit-sign-');
    const k = writeKeyPair(dir, 'k', 'ec');
    const key = loadSigningKey(k.priv);
    const p = new LocalProvider('local-1', path.join(dir, 'p1'));
    const time = new Date().toISOString();
    // Two records from before signing was configured, then two signed ones on the same chain.
    const a = await appendRecords('ds', { cid: null, seq: 0 }, [{ kind: 'archive', result: 'archived', time }], [p]);
    const b = await appendRecords(
      'ds',
      { cid: a.head, seq: a.seq },
      [
        { kind: 'verify', result: 'ok', time },
        { kind: 'verify', result: 'ok again', time },
      ],
      [p],
      { key },
    );
    const { records, problems } = await readChain(b.head, [p], path.join(dir, 'work'));
    assert.deepEqual(problems, []);
    assert.deepEqual(
      records.map((r) => [r.seq, r.signer?.keyId ?? null]),
      [
        [1, null],
        [2, key.keyId],
        [3, key.keyId],
      ],
    );
    const pub = loadVerifyingKey(k.pub);
    for (const r of records.slice(1)) {
      const { cid: _c, ...rec } = r;
      assert.equal(r.signer?.algorithm, 'ecdsa-p256');
      assert.equal(auditStatementMismatch(rec, openEnvelope(r.signature, 'r')), undefined);
      assert.equal(checkEnvelope(r.signature!, [pub], []).state, 'trusted');
      // The signature covers the record: a changed result no longer matches what was signed.
      const changed = { ...rec, result: 'x' };
      assert.match(auditStatementMismatch(changed, openEnvelope(r.signature, 'r')) ?? '', /differs/);
    }
  });
});

describe('signing key files', () => {
  it('an unreadable, non-PEM or unsupported key file is a SigningKeyError with a one-line message', () => {
    const dir = tmpDir('pv-badkey-');
    const garbage = path.join(dir, 'garbage.pem');
    fs.writeFileSync(garbage, 'not a key\n');
    const rsa = path.join(dir, 'rsa.pem');
    fs.writeFileSync(
      rsa,
      crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    const p384 = path.join(dir, 'p384.pem');
    fs.writeFileSync(
      p384,
      crypto.generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    for (const f of [path.join(dir, 'absent.pem'), garbage, rsa, p384]) {
      assert.throws(
        () => loadSigningKey(f),
        (e: Error) => e instanceof SigningKeyError && !e.message.includes('\n') && e.message.includes(f),
        f,
      );
    }
    assert.throws(() => loadVerifyingKey(garbage), SigningKeyError);
  });
});
