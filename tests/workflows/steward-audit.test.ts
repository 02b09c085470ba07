/**
 * The audit log's stored copies, stewarded like shards (issue 12): a record copy deleted at one
 * provider is re-stored from a good copy in the next round and the repair is audited; a record
 * with no intact copy anywhere makes the audit log 'broken' and the dataset not 'healthy'.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { readAudit } from '../../activities/steward/activities.js';
import { describeAuditHealth } from '../../activities/steward/audit-check.js';
import type { Config, ConfigInput } from '../../config/schema.js';
import { startArchive } from '../../workers/client.js';
import { stewardStatusQuery, verifyNowUpdate } from '../../workflows/index.js';
import type { StewardStatus } from '../../shared/types.js';
import { bytesOf, startTemporal, testConfig, tmpDir, withWorker, writeTree } from '../helpers/env.js';

/** The file holding a record's copy at a local provider (its roots/ entry names the piece). */
function recordFile(config: Config, providerId: string, cid: string): string | undefined {
  const p = config.providers.find((x) => x.id === providerId)!;
  if (p.kind !== 'local') throw new Error('local providers only');
  const root = path.join(p.path, 'roots', cid);
  if (!fs.existsSync(root)) return undefined;
  return path.join(p.path, 'pieces', `${fs.readFileSync(root, 'utf8')}.car`);
}

describe('steward: audit log copies', () => {
  let env: TestWorkflowEnvironment | undefined;
  let data: string;
  before(async (t) => {
    env = await startTemporal(t as never);
    data = tmpDir('pv-steward-audit-');
    writeTree(path.join(data, 'src'), { 'model.bin': bytesOf(1024 * 1024 + 3, 'sa'), 'cfg.json': '{"x":1}' });
  });
  after(async () => {
    await env?.teardown();
  });

  const setup = (name: string) =>
    testConfig(path.join(data, name), {
      steward: { verifyEvery: '1 hour', searchAttributes: true },
    } as Partial<ConfigInput>);

  it('re-stores an audit record deleted at one provider, audits the repair, and status shows it', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const config = setup('deleted');
    await withWorker(env, config, async () => {
      const summary = await (
        await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: 'audit-deleted' })
      ).handle.result();
      const steward = env!.client.workflow.getHandle(summary.stewardWorkflowId!);
      const first: StewardStatus = await steward.executeUpdate(verifyNowUpdate);
      const clean = await readAudit(config, first.auditHead!);
      assert.deepEqual(clean.problems, []);
      const victim = clean.records[0]!;
      const file = recordFile(config, 'local-1', victim.cid)!;
      assert.ok(file && fs.existsSync(file), 'the first record has a copy at local-1');
      fs.rmSync(file);
      const broken = await readAudit(config, first.auditHead!);
      assert.ok(broken.problems.some((p) => p.cid === victim.cid && p.providerId === 'local-1'));

      const s: StewardStatus = await steward.executeUpdate(verifyNowUpdate);
      // Before the fix: health 'healthy', no audit field, and the copy still gone.
      assert.ok(s.audit, 'the status reports the audit log');
      assert.equal(s.audit.state, 'repaired', JSON.stringify(s.audit));
      assert.ok(s.audit.repairedLastRound >= 1 && s.audit.repairs >= 1);
      assert.equal(s.audit.records, s.auditRecords);
      assert.ok(
        s.audit.checked >= clean.records.length,
        `every record of a short chain checked: ${JSON.stringify(s.audit)}`,
      );
      assert.equal(s.health, 'healthy');
      assert.ok(fs.existsSync(file), 'the record is back at local-1');
      assert.match(describeAuditHealth(s.audit), /repaired/);

      const after = await readAudit(config, s.auditHead!);
      assert.deepEqual(after.problems, [], 'provenant audit: chain intact');
      assert.ok(
        after.records.some(
          (r) => r.kind === 'repair' && r.providerId === 'local-1' && r.evidence?.includes(victim.cid),
        ),
        'the repair is in the audit log',
      );

      const again: StewardStatus = await steward.executeUpdate(verifyNowUpdate);
      assert.equal(again.audit?.state, 'intact');
      assert.equal(again.audit?.repairedLastRound, 0);
      assert.ok((again.audit?.repairs ?? 0) >= 1, 'the repair stays counted');
      const q = await steward.query(stewardStatusQuery);
      assert.equal(q.audit?.state, 'intact');
    });
  });

  it('marks the audit log broken, and the dataset not healthy, when a record is corrupt at every provider', async (t) => {
    if (!env) return t.skip('no Temporal server');
    const config = setup('corrupt');
    await withWorker(env, config, async () => {
      const summary = await (
        await startArchive(env!.client, config, { dir: path.join(data, 'src'), datasetId: 'audit-corrupt' })
      ).handle.result();
      const steward = env!.client.workflow.getHandle(summary.stewardWorkflowId!);
      const first: StewardStatus = await steward.executeUpdate(verifyNowUpdate);
      const victim = (await readAudit(config, first.auditHead!)).records[0]!;
      let edited = 0;
      for (const p of config.providers) {
        const file = recordFile(config, p.id, victim.cid);
        if (!file || !fs.existsSync(file)) continue;
        const text = fs.readFileSync(file, 'latin1');
        fs.writeFileSync(file, Buffer.from(text.replace('archived', 'ARCHIVED'), 'latin1'));
        edited++;
      }
      assert.ok(edited >= 2, 'every copy edited');

      const s: StewardStatus = await steward.executeUpdate(verifyNowUpdate);
      assert.equal(s.audit?.state, 'broken', JSON.stringify(s.audit));
      assert.ok((s.audit?.problems.length ?? 0) >= 1);
      assert.notEqual(s.health, 'healthy');
      assert.match(describeAuditHealth(s.audit!), /broken/i);
      // It stays broken in later rounds (a record with no intact copy cannot be re-stored).
      const again: StewardStatus = await steward.executeUpdate(verifyNowUpdate);
      assert.equal(again.audit?.state, 'broken');
      assert.notEqual(again.health, 'healthy');
    });
  });
});
