/**
 * The embedded dev server serves the Temporal Web UI that ships with it, and `provenant dev` prints
 * its URL: fetching it gives the UI's HTML page. Headless on request (`ui: false`).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { startDevServer } from '../../workers/dev-server.js';
import { resolveTemporalCli } from '../../workers/temporal-cli.js';
import { REQUIRE_ALL, tmpDir } from '../helpers/env.js';

const cli = fileURLToPath(new URL('../../cli/provenant.js', import.meta.url));

/** A TCP port free now, whose + 1000 (the UI's default) is a valid port too. */
async function freePort(): Promise<number> {
  for (;;) {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen({ host: '127.0.0.1', port: 0 }, r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise((r) => srv.close(r));
    if (port + 1000 <= 65535) return port;
  }
}

/** GET `url` until it answers (the UI may come up just after the gRPC port), for at most a minute. */
async function fetchPage(url: string): Promise<{ status: number; type: string; body: string }> {
  let last: unknown;
  for (let i = 0; i < 240; i++) {
    try {
      const res = await fetch(url);
      return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`no answer from ${url}: ${String(last)}`);
}

function temporalOrSkip(t: { skip(m: string): void }): boolean {
  if (resolveTemporalCli({ build: true, log: (m) => console.error(`[test] ${m}`) })) return true;
  const why = 'Temporal CLI not found and could not be built (run `npm run setup`)';
  if (REQUIRE_ALL) assert.fail(why);
  t.skip(why);
  return false;
}

/** The UI's page: HTML that loads the UI app (SvelteKit), whose entry script is served too. */
async function isUiPage(base: string, p: { status: number; type: string; body: string }): Promise<void> {
  assert.equal(p.status, 200);
  assert.match(p.type, /text\/html/);
  assert.match(p.body, /<html/i);
  const entry = /import\("(\/_app\/immutable\/entry\/start\.[^"]+\.js)"\)/.exec(p.body)?.[1];
  assert.ok(entry, 'the page loads the UI app');
  const script = await fetch(new URL(entry, base));
  assert.equal(script.status, 200);
  assert.match(script.headers.get('content-type') ?? '', /javascript/);
  assert.ok((await script.text()).length > 0);
}

describe('the Temporal Web UI of the embedded dev server', () => {
  it('startDevServer serves the UI and gives its URL; ui: false starts headless', async (t) => {
    if (!temporalOrSkip(t)) return;
    const port = await freePort();
    const server = await startDevServer({
      address: `127.0.0.1:${port}`,
      dataDir: tmpDir('pv-devui-'),
      namespace: 'default',
    });
    try {
      assert.ok(server.uiUrl, 'a UI URL');
      await isUiPage(server.uiUrl, await fetchPage(server.uiUrl));
    } finally {
      await server.stop();
    }
    const headless = await startDevServer({
      address: `127.0.0.1:${await freePort()}`,
      dataDir: tmpDir('pv-devui-'),
      namespace: 'default',
      ui: false,
    });
    try {
      assert.equal(headless.uiUrl, undefined);
    } finally {
      await headless.stop();
    }
  });

  it('`provenant dev` prints the UI URL, and the UI answers there', async (t) => {
    if (!temporalOrSkip(t)) return;
    const home = tmpDir('pv-devui-cli-');
    const child = spawn(process.execPath, [cli, 'dev'], {
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
        PROVENANT_DATA_DIR: path.join(home, 'data'),
        PROVENANT_CONFIG: '',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const exited = once(child, 'exit');
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const onData = (b: Buffer) => {
          output += b.toString();
          const m = /Temporal Web UI: (http:\/\/\S+)/.exec(output);
          if (m) resolve(m[1]!);
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        void exited.then(() => reject(new Error(`provenant dev exited before printing a UI URL:\n${output}`)));
      });
      await isUiPage(url, await fetchPage(url));
    } finally {
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
  });
});
