/** The audit log's copies checked in bounded rounds: the newest records, a rotating window, repairs of corrupt copies. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { appendRecords, readChain } from '../../../activities/audit/audit.js';
import { LocalProvider } from '../../../activities/providers/local.js';
import { checkAuditChain } from '../../../activities/steward/audit-check.js';
import type { AuditCheckRequest } from '../../../shared/types.js';
import { tmpDir } from '../../helpers/env.js';

async function chain(n: number) {
  const root = tmpDir('pv-audit-check-');
  const providers = ['a', 'b'].map((id) => new LocalProvider(id, path.join(root, id)));
  const events = Array.from({ length: n }, (_, i) => ({
    kind: 'verify' as const,
    result: `event ${i + 1}`,
    time: new Date(0).toISOString(),
  }));
  const { head, seq } = await appendRecords('ds', { cid: null, seq: 0 }, events, providers);
  const { records } = await readChain(head, providers, path.join(root, 'work'));
  const file = (id: string, cid: string) => {
    const piece = fs.readFileSync(path.join(root, id, 'roots', cid), 'utf8');
    return path.join(root, id, 'pieces', `${piece}.car`);
  };
  return { providers, head, seq, records, file, root };
}

const request = (head: string, seq: number, over: Partial<AuditCheckRequest> = {}): AuditCheckRequest => ({
  datasetId: 'ds',
  head,
  seq,
  providerIds: ['a', 'b'],
  newest: 4,
  window: 5,
  cursor: null,
  broken: [],
  now: 0,
  ...over,
});

describe('audit copies check', () => {
  it('reads the newest records and a window that moves back and wraps, so every record is read', async () => {
    const c = await chain(20);
    // Rounds of at most newest + window records; the window walks back to record 1 and wraps (null:
    // the next round starts just below the newest again): every record read within ⌈(20 − 4) / 5⌉ rounds.
    let seen = 0;
    let cursor: string | null = null;
    const cids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await checkAuditChain(c.providers, request(c.head, c.seq, { cursor }));
      assert.ok(r.checked <= 9, 'bounded: newest + window');
      assert.equal(r.problemCount, 0);
      seen += r.checked;
      cids.push(String(r.cursor));
      cursor = r.cursor;
    }
    assert.equal(cids[3], 'null', 'the window wraps after (20 − 4) / 5 rounds');
    assert.equal(seen, 4 * 4 + 16);
  });

  it('re-stores a copy corrupt at one provider (same size) from the other, and reports a record corrupt everywhere', async () => {
    const c = await chain(3);
    const victim = c.records[1]!;
    const f = c.file('a', victim.cid);
    const text = fs.readFileSync(f, 'latin1');
    fs.writeFileSync(f, Buffer.from(text.replace('event 2', 'EVENT 2'), 'latin1'));
    const r = await checkAuditChain(c.providers, request(c.head, c.seq));
    assert.equal(r.repaired, 1);
    assert.equal(r.events[0]?.providerId, 'a');
    assert.deepEqual((await readChain(c.head, c.providers, path.join(c.root, 'w2'))).problems, []);

    for (const id of ['a', 'b']) {
      const g = c.file(id, victim.cid);
      fs.writeFileSync(g, Buffer.from(fs.readFileSync(g, 'latin1').replace('event 2', 'EVENT 2'), 'latin1'));
    }
    const b = await checkAuditChain(c.providers, request(c.head, c.seq));
    assert.deepEqual(b.broken, [victim.cid]);
    assert.equal(b.repaired, 0);
    assert.ok(b.problemCount >= 1);
    // Checked again while broken, even when the walk does not reach it.
    const again = await checkAuditChain(c.providers, request(c.head, c.seq, { newest: 1, broken: b.broken }));
    assert.deepEqual(again.broken, [victim.cid]);
  });
});
