/** Run the built `provenant` CLI (dist/cli/provenant.js) as a process of its own, as a user does. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The CLI of the build this test belongs to. */
export const CLI = fileURLToPath(new URL('../../cli/provenant.js', import.meta.url));

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Variables that would win over a `--config` file's Temporal and signing settings. */
const OVERRIDING = [
  'TEMPORAL_ADDRESS',
  'TEMPORAL_NAMESPACE',
  'PROVENANT_TASK_QUEUE',
  'PROVENANT_CONFIG',
  'PROVENANT_SIGNING_KEY_FILE',
];

/**
 * `provenant ...args`; `env` is added to this process's environment. With `isolated`, the
 * variables that would override a `--config` file are left out, so that the file decides.
 */
export function runCli(args: string[], o: { env?: Record<string, string>; isolated?: boolean } = {}): Promise<CliRun> {
  const env = { ...process.env, ...o.env };
  if (o.isolated) for (const k of OVERRIDING) delete env[k];
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
