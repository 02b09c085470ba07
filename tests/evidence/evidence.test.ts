/**
 * `provenant evidence` and `provenant verify-evidence` on the real dev server: a tree archived
 * with an Ed25519 signing key, restored, its evidence bundle written, then the key rotated to
 * ECDSA P-256 and a second bundle written. With the Temporal server STOPPED, verify-evidence
 * proves the restored tree and the history (exit 0), says "unverified" without --trust, and
 * names the broken link of a bundle with one byte changed in each part.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as dagJson from '@ipld/dag-json';
import { CarIndexer } from '@ipld/car/indexer';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { EvidenceIndex } from '../../activities/evidence/bundle.js';
import type { EvidenceReport } from '../../activities/evidence/verify-evidence.js';
import { startArchive, startRestore } from '../../workers/client.js';
import { stewardStatusQuery, verifyNowUpdate } from '../../workflows/index.js';
import { bytesOf, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';
import { writeKeyPair } from './keypairs.js';
import { runCli } from '../helpers/cli.js';
import { putBlock, rewrite } from '../helpers/bundle.js';
/** The CLI with only its --config file deciding the server and the key. */
const runCliIsolated = (args: string[]) => runCli(args, { isolated: true });

/** The bundle's blocks by role, with their byte ranges in the file. */
async function blocksOf(file: string) {
  const bytes = fs.readFileSync(file);
  const indexer = await CarIndexer.fromBytes(bytes);
  const at = new Map<string, { offset: number; length: number }>();
  for await (const e of indexer) at.set(e.cid.toString(), { offset: e.blockOffset, length: e.blockLength });
  const root = (await indexer.getRoots())[0]!.toString();
  const r = at.get(root)!;
  const index = dagJson.decode(bytes.subarray(r.offset, r.offset + r.length)) as EvidenceIndex;
  const block = (cid: string) => {
    const b = at.get(cid)!;
    return { ...b, bytes: bytes.subarray(b.offset, b.offset + b.length) };
  };
  return { bytes, index, block };
}

/** A copy of the bundle with one character after `marker` (in block `cid`) changed. */
async function tamper(file: string, out: string, cid: string, marker: string): Promise<string> {
  const { bytes, block } = await blocksOf(file);
  const b = block(cid);
  const i = b.bytes.indexOf(marker);
  assert.ok(i >= 0, `${marker} not in block ${cid}`);
  const copy = Buffer.from(bytes);
  const at = b.offset + i + marker.length;
  copy[at] = copy[at] === 0x61 ? 0x62 : 0x61; // 'a' ↔ 'b': the block still decodes, its hash does not match
  fs.writeFileSync(out, copy);
  return out;
}

type Rec = Record<string, unknown> & { prev: string | null };

describe('evidence bundles', () => {
  let env: TestWorkflowEnvironment | undefined;
  before(async (t) => {
    env = await startTemporal(t as never);
  });
  after(async () => {
    await env?.teardown();
  });

  it('verify offline after the server stops: restored tree proven, unverified without --trust, each tampered part named', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const data = tmpDir('pv-evidence-');
    const src = path.join(data, 'src');
    writeTree(src, {
      'weights.bin': bytesOf(3 * 1024 * 1024 + 7, 'evidence'),
      'cfg/model.json': '{"layers":2}',
      'data/train.jsonl': '{"text":"a"}\n{"text":"b"}\n',
      empty: '',
    });
    const home = path.join(data, 'home');
    const oldKey = writeKeyPair(data, 'old-ed25519', 'ed25519');
    const newKey = writeKeyPair(data, 'new-p256', 'ec');
    const restored = path.join(data, 'restored');
    const config = testConfig(home, { signing: { keyFile: oldKey.priv } });
    const address = env.address;
    const cliConfig = (signing: object) => {
      const f = path.join(data, `cli-${Object.keys(signing).length}-${Math.random().toString(16).slice(2)}.json`);
      fs.writeFileSync(
        f,
        JSON.stringify({
          dataDir: home,
          temporal: { address, taskQueue: config.temporal.taskQueue, embedded: 'never' },
          signing,
        }),
      );
      return f;
    };
    const bundle1 = path.join(data, 'evidence-1.car');
    const bundle2 = path.join(data, 'evidence-2.car');

    const stewardId = await withWorker(env, config, async () => {
      const summary = await (
        await startArchive(env!.client, config, { dir: src, datasetId: 'evidence-ds' })
      ).handle.result();
      const steward = env!.client.workflow.getHandle(summary.stewardWorkflowId!);
      for (let i = 0; i < 200 && (await steward.query(stewardStatusQuery)).auditRecords < 1; i++)
        await new Promise((r) => setTimeout(r, 50));
      await steward.executeUpdate(verifyNowUpdate); // a round: verify records, signed by the round's activity
      await (
        await startRestore(env!.client, config, { manifestCid: summary.manifestCid, target: restored, force: false })
      ).result();
      const e = await runCliIsolated([
        'evidence',
        'evidence-ds',
        '--out',
        bundle1,
        '--config',
        cliConfig({ keyFile: oldKey.priv }),
        '--json',
      ]);
      assert.equal(e.code, 0, e.stderr);
      const s = JSON.parse(e.stdout) as { signed: boolean; auditRecords: number; replicas: number };
      assert.equal(s.signed, true);
      assert.ok(s.auditRecords >= 2, `audit records: ${s.auditRecords}`);
      assert.ok(s.replicas >= 2);
      return summary.stewardWorkflowId!;
    });

    // Rotation: the worker signs with a new P-256 key; the old public key is kept as a previous one.
    const rotated = testConfig(home, {
      temporal: { ...config.temporal },
      signing: { keyFile: newKey.priv, previousPublicKeyFiles: [oldKey.pub] },
    } as never);
    await withWorker(env, rotated, async () => {
      await env!.client.workflow.getHandle(stewardId).executeUpdate(verifyNowUpdate);
      const e = await runCliIsolated([
        'evidence',
        'evidence-ds',
        '--out',
        bundle2,
        '--config',
        cliConfig({ keyFile: newKey.priv, previousPublicKeyFiles: [oldKey.pub] }),
      ]);
      assert.equal(e.code, 0, e.stderr);
    });

    // No server from here on.
    await env.teardown();
    env = undefined;

    const verify = async (args: string[]) => {
      const r = await runCliIsolated(['verify-evidence', ...args, '--json']);
      const human = await runCliIsolated(['verify-evidence', ...args]);
      assert.equal(human.code, r.code);
      return { code: r.code, report: JSON.parse(r.stdout) as EvidenceReport, text: human.stdout, stderr: human.stderr };
    };

    const ok = await verify([bundle1, '--restored', restored, '--trust', oldKey.pub]);
    assert.equal(ok.code, 0, ok.text + ok.stderr);
    assert.equal(ok.report.signer, 'trusted');
    assert.equal(ok.report.files?.matched, 4);
    assert.ok(
      ok.report.signatures.some((s) => s.what.startsWith('manifest signature')),
      'signed at archive time',
    );
    assert.ok(ok.report.audit!.signed >= 2 && ok.report.audit!.unsigned === 0);
    t.diagnostic(ok.text);
    assert.match(ok.text, /VERIFIED/);
    assert.match(ok.text, /4\/4 files match/);
    assert.match(ok.text, /signer: trusted/);

    const unverified = await verify([bundle1, '--source', src]);
    assert.equal(unverified.code, 0, unverified.text);
    assert.equal(unverified.report.signer, 'unverified');
    assert.match(unverified.text, /UNVERIFIED/);

    const wrongKey = await verify([bundle1, '--trust', newKey.pub]);
    assert.equal(wrongKey.code, 1, 'trusting only another key does not pass');
    assert.ok(wrongKey.report.broken.some((b) => b.part === 'trust'));

    // After the rotation: old and new signatures both verify when both keys are trusted.
    const both = await verify([bundle2, '--restored', restored, '--trust', oldKey.pub, '--trust', newKey.pub]);
    assert.equal(both.code, 0, both.text);
    assert.deepEqual(
      both.report.signers.map((s) => s.trusted),
      both.report.signers.map(() => true),
    );
    assert.ok(both.report.signers.length >= 2, JSON.stringify(both.report.signers));
    // Trusting only the old key: the audit head (signed by the new key) is not trusted.
    const oldOnly = await verify([bundle2, '--trust', oldKey.pub]);
    assert.equal(oldOnly.code, 1);
    assert.match(oldOnly.report.broken.map((b) => b.detail).join(), /audit head/);

    // One byte changed in each part: each caught, and named.
    const { index, block } = await blocksOf(bundle1);
    const filesPage = index.manifest.blocks.find((c) => block(c).bytes.includes('"sha256":"'))!;
    assert.notEqual(filesPage, index.manifestCid, 'the file records are on a page of their own');
    const cases: [string, string, string, RegExp][] = [
      ['manifest', index.manifestCid, '"datasetId":"', /manifest root/],
      ['manifest', filesPage, '"sha256":"', /file-records page/],
      ['audit', index.audit.records[0]!, '"result":"', /audit record #1/],
      ['signature', index.signatures[0]!, '"sig":"', /evidence signature block/],
      ['replica', index.replicaTable.pages[0]!, '"providerId":"', /replica table page 1/],
    ];
    for (const [part, cid, marker, named] of cases) {
      const file = await tamper(
        bundle1,
        path.join(data, `tampered-${part}-${cases.findIndex((c) => c[1] === cid)}.car`),
        cid,
        marker,
      );
      const r = await verify([file, '--restored', restored, '--trust', oldKey.pub]);
      assert.equal(r.code, 1, `${part} change not caught:\n${r.text}`);
      const hit = r.report.broken.find((b) => b.part === part);
      assert.ok(hit, `${part}: ${JSON.stringify(r.report.broken)}`);
      assert.match(`${hit.ref} ${hit.detail}`, named);
      t.diagnostic(
        r.text
          .split('\n')
          .slice(-r.report.broken.length - 1)
          .join('\n'),
      );
      assert.match(r.text, /BROKEN/);
      assert.match(r.text, named);
    }

    // Rewritten and re-hashed, every CID consistent again: the signatures tell.
    const edited = await rewrite(bundle1, path.join(data, 'rewritten-record.car'), (index, blocks) => {
      const last = index.audit.records.length - 1;
      const rec = dagJson.decode(blocks.get(index.audit.records[last]!)!) as Rec;
      index.audit.records[last] = putBlock(blocks, { ...rec, result: 'all fine, honestly' });
      index.audit.head = index.audit.records[last]!;
    });
    const e1 = await verify([edited]);
    assert.equal(e1.code, 1, e1.text);
    assert.ok(
      e1.report.broken.some((b) => b.part === 'signature' && /differs from what was signed/.test(b.detail)),
      JSON.stringify(e1.report.broken),
    );
    const unsigned = await rewrite(bundle1, path.join(data, 'rewritten-chain.car'), (index, blocks) => {
      // The whole chain written again without signatures, and the bundle's own signature dropped.
      let prev: string | null = null;
      index.audit.records = index.audit.records.map((c) => {
        const { signature: _s, signer: _k, ...rec } = dagJson.decode(blocks.get(c)!) as Rec;
        prev = putBlock(blocks, { ...rec, prev, result: 'rewritten' });
        return prev;
      });
      index.audit.head = prev;
      index.signatures = [];
    });
    const e2 = await verify([unsigned, '--trust', oldKey.pub]);
    assert.equal(e2.code, 1, e2.text);
    assert.ok(
      e2.report.broken.some((b) => b.part === 'trust' && /audit head/.test(b.detail)),
      JSON.stringify(e2.report.broken),
    );
    const swapped = await rewrite(bundle1, path.join(data, 'rewritten-manifest.car'), (index, blocks) => {
      // One file's sha256 changed in its page, the page and the manifest root re-hashed.
      const page = blocks.get(filesPage)!;
      const text = Buffer.from(page).toString();
      const at = text.indexOf('"sha256":"') + 10;
      const newPage = putBlock(
        blocks,
        dagJson.decode(Buffer.from(text.slice(0, at) + (text[at] === 'a' ? 'b' : 'a') + text.slice(at + 1))),
      );
      const rootText = Buffer.from(blocks.get(index.manifestCid)!).toString().replace(filesPage, newPage);
      assert.ok(rootText.includes(newPage), 'the manifest root links the file page');
      const newRoot = putBlock(blocks, dagJson.decode(Buffer.from(rootText)));
      index.manifest.blocks = index.manifest.blocks.map((c) =>
        c === filesPage ? newPage : c === index.manifestCid ? newRoot : c,
      );
      index.manifestCid = newRoot;
    });
    const e3 = await verify([swapped]);
    assert.equal(e3.code, 1, e3.text);
    assert.ok(
      e3.report.broken.some((b) => b.part === 'signature' && /another manifest/.test(b.detail)),
      JSON.stringify(e3.report.broken),
    );

    // A restored file changed after the fact.
    fs.appendFileSync(path.join(restored, 'cfg/model.json'), ' ');
    const changed = await verify([bundle1, '--restored', restored, '--trust', oldKey.pub]);
    assert.equal(changed.code, 1);
    assert.deepEqual(
      changed.report.broken.map((b) => [b.part, b.ref]),
      [['file', 'cfg/model.json']],
    );

    // A signing key file that is no key: a one-line SigningKeyError, before the server is asked anything.
    const noKey = await runCliIsolated([
      'evidence',
      'evidence-ds',
      '--out',
      path.join(data, 'never.car'),
      '--config',
      cliConfig({ keyFile: path.join(data, 'src', 'cfg', 'model.json') }),
    ]);
    assert.equal(noKey.code, 1);
    assert.match(noKey.stderr, /^provenant: SigningKeyError: [^\n]+\n$/);
    assert.equal(fs.existsSync(path.join(data, 'never.car')), false);

    // A trust key file that is no key: a one-line SigningKeyError.
    const bad = await runCliIsolated(['verify-evidence', bundle1, '--trust', path.join(data, 'src', 'empty')]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^provenant: SigningKeyError: [^\n]+\n$/);
  });
});
