/**
 * An unreachable source (connection refused) on the embedded dev server: `provenant archive`
 * shows why it is retrying while it retries, then fails with SourceUnavailableError once the
 * source has been unavailable for `temporal.sourceUnavailableFor` — instead of retrying for ever
 * in silence — and leaves no staging behind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { resolveTemporalCli } from '../../workers/temporal-cli.js';
import { REQUIRE_ALL, tmpDir } from '../helpers/env.js';

const CLI = path.resolve('dist/cli/provenant.js');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

describe('provenant archive of an unreachable source', () => {
  it('says why it retries, then fails with SourceUnavailableError after temporal.sourceUnavailableFor', async (t) => {
    if (!resolveTemporalCli({ build: true })) {
      if (REQUIRE_ALL) throw new Error('Temporal CLI unavailable');
      return t.skip('Temporal CLI unavailable');
    }
    const root = tmpDir('pv-cli-unavailable-');
    const cfg = path.join(root, 'config.yaml');
    fs.writeFileSync(cfg, 'temporal: { sourceUnavailableFor: 4 seconds }\n');
    const closed = await freePort(); // nothing listens there: connection refused
    const started = Date.now();
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [CLI, 'archive', `http://127.0.0.1:${closed}/x.bin`, '--config', cfg], {
        env: {
          ...process.env,
          PROVENANT_DATA_DIR: path.join(root, 'home'),
          TEMPORAL_ADDRESS: '127.0.0.1:1',
          PROVENANT_EMBEDDED: 'auto',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      p.stderr.on('data', (d) => (stderr += d));
      p.on('exit', (code) => resolve({ code: code ?? -1, stderr }));
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /retrying provenantScan \(attempt \d+\): .*127\.0\.0\.1/,
      'the reason is shown while retrying',
    );
    assert.match(r.stderr, /^provenant: SourceUnavailableError: source unavailable for \d+ s, giving up/m);
    assert.ok(Date.now() - started < 120_000, 'it ends, within the bound plus start-up');
    const staging = path.join(root, 'home', 'staging');
    assert.deepEqual(fs.existsSync(staging) ? fs.readdirSync(staging) : [], [], 'nothing left in staging');
  });
});
