/**
 * `provenant export --format slsa` of a tree archived on the real dev server: an in-toto Statement
 * v1 of SLSA Provenance v1 whose fields match the manifest and the archive run (workflow and run id
 * from the server), with every field the SLSA v1 spec requires; with a key, a DSSE envelope whose
 * signature verifies over the same statement.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { CID } from 'multiformats/cid';
import { readManifestFacts } from '../../activities/evidence/manifest-facts.js';
import { archiveWorkflowId, startArchive } from '../../workers/client.js';
import { TOOL_VERSION } from '../../version.js';
import { bytesOf, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import { runCli } from '../helpers/cli.js';

const sha256 = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');
const cidSha256 = (cid: string) => Buffer.from(CID.parse(cid).multihash.digest).toString('hex');
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

type Json = Record<string, unknown>;
interface Descriptor {
  name?: string;
  uri?: string;
  digest?: Record<string, string>;
  content?: string;
  mediaType?: string;
  annotations?: Json;
}
interface Provenance {
  _type: string;
  subject: Descriptor[];
  predicateType: string;
  predicate: {
    buildDefinition: {
      buildType: string;
      externalParameters: Json;
      internalParameters?: Json;
      resolvedDependencies?: Descriptor[];
    };
    runDetails: {
      builder: { id: string; version?: Record<string, string>; builderDependencies?: Descriptor[] };
      metadata?: { invocationId?: string; startedOn?: string; finishedOn?: string };
      byproducts?: Descriptor[];
    };
  };
}

/** The in-toto ResourceDescriptor rules: one of uri, digest or content; digests are hex. */
function checkDescriptor(d: Descriptor, where: string) {
  assert.ok(
    d.uri !== undefined || d.digest !== undefined || d.content !== undefined,
    `${where}: uri, digest or content`,
  );
  if (d.uri !== undefined) assert.doesNotThrow(() => new URL(d.uri!), `${where}: uri ${d.uri}`);
  for (const [alg, v] of Object.entries(d.digest ?? {})) assert.match(v, /^[0-9a-f]+$/, `${where}: digest ${alg}`);
  if (d.annotations !== undefined) assert.equal(typeof d.annotations, 'object', `${where}: annotations`);
}

/** What the in-toto Statement v1 and SLSA Provenance v1 specs require, field by field. */
function checkSlsaShape(p: Provenance) {
  assert.equal(p._type, 'https://in-toto.io/Statement/v1');
  assert.ok(Array.isArray(p.subject) && p.subject.length > 0, 'subject: non-empty');
  for (const [i, s] of p.subject.entries()) {
    assert.equal(typeof s.name, 'string', `subject ${i}: name`);
    assert.ok(s.digest && Object.keys(s.digest).length > 0, `subject ${i}: digest`);
    checkDescriptor(s, `subject ${i}`);
  }
  assert.equal(p.predicateType, 'https://slsa.dev/provenance/v1');
  const { buildDefinition: bd, runDetails: rd } = p.predicate;
  assert.equal(typeof bd.buildType, 'string');
  assert.doesNotThrow(() => new URL(bd.buildType), 'buildType is a TypeURI');
  assert.equal(typeof bd.externalParameters, 'object');
  assert.ok(bd.externalParameters && !Array.isArray(bd.externalParameters));
  if (bd.internalParameters !== undefined) assert.equal(typeof bd.internalParameters, 'object');
  for (const [i, d] of (bd.resolvedDependencies ?? []).entries()) checkDescriptor(d, `resolvedDependencies ${i}`);
  assert.equal(typeof rd.builder.id, 'string');
  assert.doesNotThrow(() => new URL(rd.builder.id), 'builder.id is a TypeURI');
  for (const v of Object.values(rd.builder.version ?? {})) assert.equal(typeof v, 'string');
  for (const k of ['startedOn', 'finishedOn'] as const)
    if (rd.metadata?.[k] !== undefined) assert.match(rd.metadata[k]!, RFC3339, k);
  for (const [i, d] of (rd.byproducts ?? []).entries()) checkDescriptor(d, `byproducts ${i}`);
}

describe('SLSA export', () => {
  let env: TestWorkflowEnvironment | undefined;
  before(async (t) => {
    env = await startTemporal(t as never);
  });
  after(async () => {
    await env?.teardown();
  });

  it('names the manifest, the source, the pieces and the archive run; signed with a key, it is a DSSE envelope', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const data = tmpDir('pv-slsa-');
    const src = path.join(data, 'src');
    const files: Record<string, Buffer | string> = {
      'a/b.txt': 'nested\n',
      'b.csv': 'x,y\n1,2\n',
      'weights.bin': bytesOf(5 * 1024 * 1024 + 3, 'slsa'),
    };
    writeTree(src, files);
    const home = path.join(data, 'home');
    const config = testConfig(home);
    const datasetId = 'slsa-ds';
    const { summary, runId } = await withWorker(env, config, async () => {
      const { handle } = await startArchive(env!.client, config, {
        dir: src,
        datasetId,
        meta: { license: 'cc-by-4.0' },
      });
      const s = await handle.result();
      return { summary: s, runId: (await handle.describe()).runId };
    });
    const facts = await readManifestFacts(config, summary.manifestCid);
    assert.ok(facts.shards.length >= 3, 'the tree spans several shards');

    const cfgFile = path.join(data, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify({ dataDir: home, temporal: { address: env.address } }));
    const out = path.join(data, 'provenance.json');
    // By dataset id: the server finds the manifest, and the run.
    const r = await runCli(['export', datasetId, '--format', 'slsa', '--out', out, '--config', cfgFile]);
    assert.equal(r.code, 0, r.stderr);
    const p = JSON.parse(fs.readFileSync(out, 'utf8')) as Provenance;
    checkSlsaShape(p);

    assert.deepEqual(p.subject, [
      { name: `ipfs://${summary.manifestCid}`, digest: { sha256: cidSha256(summary.manifestCid) } },
      { name: `ipfs://${facts.rootCid}`, digest: { sha256: cidSha256(facts.rootCid) } },
    ]);
    const { buildDefinition: bd, runDetails: rd } = p.predicate;
    assert.equal(bd.buildType, 'https://provenant.dev/archive/v1');
    assert.deepEqual(bd.externalParameters, {
      datasetId,
      source: { kind: 'local', uri: facts.source.uri },
      meta: { license: 'cc-by-4.0' },
    });
    const workflowId = archiveWorkflowId(datasetId);
    assert.deepEqual(bd.internalParameters, { namespace: 'default', workflowId, runId });
    assert.equal(rd.metadata?.invocationId, `${workflowId}/${runId}`);
    assert.ok(rd.metadata?.startedOn && rd.metadata.finishedOn, 'the run has start and close times');
    assert.ok(Date.parse(rd.metadata.startedOn) <= Date.parse(rd.metadata.finishedOn));
    assert.equal(rd.builder.id, 'https://provenant.dev/builder/v1');
    assert.deepEqual(rd.builder.version, { [facts.tool.name]: facts.tool.version, 'provenant-export': TOOL_VERSION });

    // The source: its URI, and sha256 over the files' sha256 digests in path order.
    assert.equal(bd.resolvedDependencies?.length, 1);
    const dep = bd.resolvedDependencies[0]!;
    assert.equal(dep.uri, pathToFileURL(src).href);
    const tree = crypto.createHash('sha256');
    for (const f of ['a/b.txt', 'b.csv', 'weights.bin']) tree.update(Buffer.from(sha256(files[f]!), 'hex'));
    assert.deepEqual(dep.digest, { sha256: tree.digest('hex') });
    assert.equal(dep.annotations?.rootCid, facts.rootCid);
    assert.equal(dep.annotations?.files, 3);

    // Byproducts: every shard's piece, then the manifest's.
    assert.deepEqual(
      rd.byproducts?.map((b) => b.name),
      [...facts.shards.map((s) => s.pieceCid), facts.manifestPieceCid],
    );
    for (const [i, s] of facts.shards.entries()) {
      const b: Descriptor = rd.byproducts![i]!;
      assert.equal(b.uri, `ipfs://${s.carCid}`);
      assert.deepEqual(b.digest, { sha256: cidSha256(s.carCid) });
      assert.equal(b.annotations?.carBytes, s.carBytes);
    }

    // With a key (--key, here Ed25519): a DSSE envelope over the same statement.
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
    const keyFile = path.join(data, 'key.pem');
    fs.writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const signedOut = path.join(data, 'provenance.dsse.json');
    const signedRun = await runCli([
      'export',
      summary.manifestCid,
      '--format',
      'slsa',
      '--out',
      signedOut,
      '--key',
      keyFile,
      '--config',
      cfgFile,
    ]);
    assert.equal(signedRun.code, 0, signedRun.stderr);
    const envl = JSON.parse(fs.readFileSync(signedOut, 'utf8')) as {
      payloadType: string;
      payload: string;
      signatures: { keyid: string; sig: string }[];
    };
    assert.equal(envl.payloadType, 'application/vnd.in-toto+json');
    const body = Buffer.from(envl.payload, 'base64');
    const keyId = sha256(publicKey.export({ type: 'spki', format: 'der' }));
    assert.equal(envl.signatures.length, 1);
    assert.equal(envl.signatures[0]!.keyid, keyId);
    const pae = Buffer.concat([
      Buffer.from(`DSSEv1 ${envl.payloadType.length} ${envl.payloadType} ${body.length} `),
      body,
    ]);
    const sig = Buffer.from(envl.signatures[0]!.sig, 'base64');
    assert.ok(crypto.verify(null, pae, publicKey, sig), 'the DSSE signature verifies');
    const flipped = Buffer.from(pae);
    flipped[flipped.length - 2] = flipped[flipped.length - 2]! ^ 1;
    assert.equal(crypto.verify(null, flipped, publicKey, sig), false);
    assert.deepEqual(JSON.parse(body.toString('utf8')), p, 'the signed statement is the unsigned one');
  });
});
