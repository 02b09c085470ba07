/** Spot checks: a replica's state comes from its provider, never from the check being cancelled. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { appendRecords } from '../../../activities/audit/audit.js';
import { LocalProvider } from '../../../activities/providers/local.js';
import { carCidOfStream } from '../../../activities/providers/kit/verified-stream.js';
import { verifyReplica } from '../../../activities/verify/verify.js';
import { tmpDir } from '../../helpers/env.js';

/** One stored piece (an audit record: a small CAR checked whole) and its CAR CID. */
async function storedPiece() {
  const root = tmpDir('pv-verify-');
  const provider = new LocalProvider('a', path.join(root, 'a'));
  const event = { kind: 'verify' as const, result: 'one', time: new Date(0).toISOString() };
  const { head } = await appendRecords('ds', { cid: null, seq: 0 }, [event], [provider]);
  const pieceCid = fs.readFileSync(path.join(root, 'a', 'roots', head), 'utf8');
  const { carCid } = await carCidOfStream(fs.createReadStream(path.join(root, 'a', 'pieces', `${pieceCid}.car`)));
  return { root, provider, pieceCid, carCid };
}

const opts = { seed: 's', probability: 0.99, lossFraction: 0.01 };

describe('verifyReplica', () => {
  it('reports a stored piece healthy and a provider that is gone unreachable', async () => {
    const p = await storedPiece();
    const ok = await verifyReplica(p.provider, p.pieceCid, { blocks: [] }, { ...opts, carCid: p.carCid });
    assert.equal(ok.state, 'healthy', ok.evidence);
    fs.renameSync(path.join(p.root, 'a'), path.join(p.root, 'a.unmounted'));
    const gone = await verifyReplica(p.provider, p.pieceCid, { blocks: [] }, { ...opts, carCid: p.carCid });
    assert.equal(gone.state, 'unreachable', gone.evidence);
  });

  it('throws when cancelled, instead of calling the replica unreachable (a worker shutting down)', async () => {
    const p = await storedPiece();
    const ac = new AbortController();
    ac.abort(new Error('WORKER_SHUTDOWN'));
    await assert.rejects(
      verifyReplica(p.provider, p.pieceCid, { blocks: [] }, { ...opts, carCid: p.carCid, signal: ac.signal }),
      /WORKER_SHUTDOWN/,
    );
  });
});
