/**
 * Headless Chromium for the tests that open what Provenant writes (the HTML report): Debian's
 * `chromium`, which `scripts/setup.sh` installs. Found as the Temporal CLI and the storage servers
 * are: an explicit path (PROVENANT_CHROMIUM_BIN), then the PATH; undefined when neither has it (the
 * test reports SKIPPED, which PROVENANT_REQUIRE_ALL=1 makes a failure).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { isExecutable, onPath } from '../../workers/temporal-cli.js';

const NAMES = ['chromium', 'chromium-browser'];

export function resolveChromium(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const explicit = env.PROVENANT_CHROMIUM_BIN;
  if (explicit) {
    if (!isExecutable(explicit)) throw new Error(`PROVENANT_CHROMIUM_BIN is not an executable file: ${explicit}`);
    return explicit;
  }
  for (const n of NAMES) {
    const found = onPath(n, env);
    if (found) return found;
  }
  return undefined;
}

export interface HeadlessRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run headless Chromium on a URL with the given extra flags (`--dump-dom`, `--screenshot=…`), in a
 * profile of its own under `profileDir`. No sandbox: the suite runs as root in CI, where
 * Chromium's sandbox refuses to start.
 */
export function headless(bin: string, url: string, flags: string[], profileDir: string): HeadlessRun {
  fs.mkdirSync(profileDir, { recursive: true });
  const r = spawnSync(
    bin,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--no-default-browser-check',
      '--disable-extensions',
      '--hide-scrollbars',
      `--user-data-dir=${path.resolve(profileDir)}`,
      ...flags,
      url,
    ],
    { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, HOME: profileDir } },
  );
  return { code: r.status, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}
