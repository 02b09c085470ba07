/**
 * `provenant report` on the real dev server (the CLI's embedded default: dev server, in-process
 * worker, three local providers), opened in headless Chromium: the rendered page names the
 * dataset, its providers, its health, its audit chain's state and its signed manifest. The
 * screenshot is kept as a test artifact (PROVENANT_ARTIFACTS_DIR, else tests/artifacts/ of the build).
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { resolveTemporalCli } from '../../workers/temporal-cli.js';
import { headless, resolveChromium } from '../helpers/chromium.js';
import { runCli, type CliRun } from '../helpers/cli.js';
import { bytesOf, REQUIRE_ALL, tmpDir, writeTree } from '../helpers/env.js';

const MiB = 1024 * 1024;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const json = <T>(r: CliRun): T => {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
};

function artifactsDir(): string {
  return process.env.PROVENANT_ARTIFACTS_DIR ?? fileURLToPath(new URL('../artifacts/', import.meta.url));
}

describe('provenant report', () => {
  it('writes one offline HTML page that headless Chromium renders with the fleet in it', async (t) => {
    if (!resolveTemporalCli({ build: true })) {
      if (REQUIRE_ALL) throw new Error('Temporal CLI unavailable');
      return t.skip('Temporal CLI unavailable');
    }
    const chromium = resolveChromium();
    if (!chromium) {
      if (REQUIRE_ALL) throw new Error('chromium unavailable (scripts/setup.sh installs it)');
      return t.skip('chromium unavailable (scripts/setup.sh installs it)');
    }
    const root = tmpDir('pv-report-');
    const src = path.join(root, 'src');
    writeTree(src, { 'weights.bin': bytesOf(2 * MiB + 3, 'report'), 'config.json': '{"layers":2}' });
    const keyFile = path.join(root, 'signing.pem');
    const { privateKey } = crypto.generateKeyPairSync('ed25519');
    fs.writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const env = {
      PROVENANT_DATA_DIR: path.join(root, 'home'),
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      PROVENANT_EMBEDDED: 'auto',
      PROVENANT_SIGNING_KEY_FILE: keyFile,
    };
    const datasetId = 'report-ds';
    const a = await runCli(['archive', src, '--id', datasetId, '--replicas', '2', '--json'], { env });
    assert.equal(a.code, 0, a.stderr);
    // A round, so that the timeline and the audit check have something to show.
    const v = await runCli(['verify', datasetId, '--json'], { env });
    assert.equal(v.code, 0, v.stderr);

    const file = path.join(root, 'out', 'report.html');
    const r = await runCli(['report', '--out', file, '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const summary = json<{
      out: string;
      datasets: number;
      health: Record<string, number>;
      providers: string[];
      audit: Record<string, number>;
      evidence: Record<string, number>;
    }>(r);
    assert.equal(summary.out, file);
    assert.equal(summary.datasets, 1);
    assert.equal(summary.health.healthy, 1);
    const held = [...new Set(json<{ replicas: { providerId: string }[] }>(v).replicas.map((x) => x.providerId))];
    assert.ok(held.length >= 2, 'two copies of each piece');
    assert.deepEqual(summary.providers, held.sort(), 'every provider that holds a replica');
    assert.equal(summary.evidence.trusted, 1, 'the manifest is signed with the configured key');
    const auditState = Object.entries(summary.audit).find(([, n]) => n === 1)?.[0];
    assert.ok(auditState && ['intact', 'repaired'].includes(auditState), JSON.stringify(summary.audit));

    const page = fs.readFileSync(file, 'utf8');
    assert.match(page, /^<!doctype html>/);
    assert.doesNotMatch(page, /<script|<link|@import|url\(|https?:\/\//i, 'loads nothing');

    // Rendered by a browser, not only written: the DOM after layout holds the content.
    const url = pathToFileURL(file).href;
    const dom = headless(chromium, url, ['--dump-dom'], path.join(root, 'chromium-dom'));
    assert.equal(dom.code, 0, dom.stderr);
    assert.match(dom.stdout, /<section id="datasets">/);
    const text = dom.stdout.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ');
    assert.ok(text.includes(datasetId), 'the dataset id');
    for (const p of summary.providers) assert.ok(text.includes(p), `provider ${p}`);
    assert.match(text, /Datasets .*report-ds .*healthy/, 'the dataset with its health');
    assert.ok(text.includes(`chains ${auditState}`), 'the audit chain state');
    assert.ok(text.includes('signed, verified'), 'the evidence status');
    for (const h of ['Replicas per provider', 'Verification timeline', 'Expiry and renewal calendar', 'Audit chain'])
      assert.ok(text.includes(h), h);

    // The screenshot, kept as the test's artifact.
    const dir = artifactsDir();
    fs.mkdirSync(dir, { recursive: true });
    const png = path.join(dir, 'report.png');
    fs.rmSync(png, { force: true });
    const shot = headless(
      chromium,
      url,
      [`--screenshot=${png}`, '--window-size=1400,1800'],
      path.join(root, 'chromium-shot'),
    );
    assert.equal(shot.code, 0, shot.stderr);
    const bytes = fs.readFileSync(png);
    assert.ok(bytes.subarray(0, 8).equals(PNG_SIGNATURE), 'a PNG');
    assert.equal(bytes.readUInt32BE(16), 1400, 'the window width');
    assert.ok(bytes.length > 20_000, `a page with content, not a blank image (${bytes.length} bytes)`);
    t.diagnostic(`screenshot: ${png} (${bytes.length} bytes)`);
  });
});
