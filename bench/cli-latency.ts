/**
 * Latency of the read-only CLI commands against a running server (issue 14, item 2), part of
 * `npm run bench` (also `npm run bench -- --only cli`, or on its own: `node dist/bench/cli-latency.js
 * [--runs N]`): starts a Temporal dev server and a `provenant worker`, archives a small generated
 * dataset, then times `provenant status <dataset>` and `provenant audit <dataset>`, each as a
 * process of its own as a user runs it, N times interleaved (default 7), beside `provenant --help`
 * (process start and module loading alone). The figure is each command's median wall time; the
 * target is under 1 s. A command that started a worker of its own would take 6–7 s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { startDevServer } from '../workers/dev-server.js';
import { workerPolling } from '../workers/runtime.js';

const CLI = fileURLToPath(new URL('../cli/provenant.js', import.meta.url));
const TARGET_SECS = 1;
const now = () => performance.now() / 1000;
const fmt = (n: number | undefined, digits = 2) => (n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(digits));

export interface CommandLatency {
  command: string;
  runs: number[];
  medianSecs: number;
  minSecs: number;
  maxSecs: number;
  /** Median CPU time (user + system) of the process, less sensitive than wall time to other load. */
  medianCpuSecs?: number;
}

export interface CliLatency {
  status: CommandLatency;
  audit: CommandLatency;
  /** `provenant --help`: node start + the CLI's modules, no connection. */
  help: CommandLatency;
  /** 1-minute load average before and after (other processes slow every figure). */
  load: [number, number];
  target: { target: string; measured: string; met: boolean };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function latency(command: string, runs: { secs: number; cpuSecs?: number }[]): CommandLatency {
  const wall = runs.map((r) => r.secs);
  const cpu = runs.flatMap((r) => (r.cpuSecs === undefined ? [] : [r.cpuSecs]));
  return {
    command,
    runs: wall,
    medianSecs: median(wall),
    minSecs: Math.min(...wall),
    maxSecs: Math.max(...wall),
    ...(cpu.length ? { medianCpuSecs: median(cpu) } : {}),
  };
}

/** GNU time, when installed, reports the command's CPU time. */
const GNU_TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Run the CLI once; resolves with its wall (and CPU) time, or rejects with its stderr when it fails. */
function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ secs: number; cpuSecs?: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const argv = [process.execPath, CLI, ...args];
    const p = GNU_TIME
      ? spawn(GNU_TIME, ['-f', 'PVCPU %U %S', ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('exit', (code) => {
      const secs = now() - t0;
      const m = /PVCPU ([\d.]+) ([\d.]+)\s*$/.exec(stderr);
      const cpuSecs = m ? Number(m[1]) + Number(m[2]) : undefined;
      if (code === 0) resolve({ secs, ...(cpuSecs !== undefined ? { cpuSecs } : {}), stdout });
      else {
        const lines = stderr.split('\n').filter((l) => l.trim() && !/^PVCPU |^Command exited/.test(l));
        reject(new Error(`provenant ${args.join(' ')} exited ${code}: ${lines.pop() ?? ''}`));
      }
    });
  });
}

export async function measureCliLatency(o: {
  work: string;
  runs?: number;
  log?: (m: string) => void;
}): Promise<CliLatency> {
  const log = o.log ?? (() => {});
  const runs = Math.max(1, o.runs ?? 7);
  const home = fs.mkdtempSync(path.join(o.work, 'cli-latency-'));
  const load0 = os.loadavg()[0]!;
  const server = await startDevServer({
    address: `127.0.0.1:${await freePort()}`,
    dataDir: path.join(home, 'temporal'),
    namespace: 'default',
    log,
  });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TEMPORAL_ADDRESS: server.address,
    TEMPORAL_NAMESPACE: 'default',
    PROVENANT_DATA_DIR: path.join(home, 'data'),
    PROVENANT_TASK_QUEUE: `bench-cli-${crypto.randomBytes(3).toString('hex')}`,
    PROVENANT_EMBEDDED: 'never',
    NODE_NO_WARNINGS: '1',
  };
  delete env.PROVENANT_CONFIG;
  let worker: ChildProcess | undefined;
  try {
    // The running worker the read-only commands rely on, as `provenant worker` runs it.
    worker = spawn(process.execPath, [CLI, 'worker'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let workerErr = '';
    worker.stderr!.on('data', (d) => (workerErr = (workerErr + d).slice(-2000)));
    const connection = await Connection.connect({ address: server.address });
    const client = new Client({ connection });
    try {
      for (let i = 0; !(await workerPolling(client, 'default', env.PROVENANT_TASK_QUEUE!)); i++) {
        if (worker.exitCode !== null || i > 600) throw new Error(`provenant worker did not start: ${workerErr.trim()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await connection.close();
    }
    log('cli latency: worker polling; archiving a small dataset');
    const src = path.join(home, 'src');
    fs.mkdirSync(src, { recursive: true });
    for (let i = 0; i < 8; i++) fs.writeFileSync(path.join(src, `f${i}.bin`), crypto.randomBytes(64 * 1024 + i));
    const datasetId = 'bench-cli';
    await cli(['archive', src, '--id', datasetId, '--json'], env);
    // One unmeasured run of each (page cache, the server's caches, the worker's workflow cache).
    await cli(['status', datasetId], env);
    await cli(['audit', datasetId], env);
    type Run = { secs: number; cpuSecs?: number };
    const times = { status: [] as Run[], audit: [] as Run[], help: [] as Run[] };
    for (let i = 0; i < runs; i++) {
      times.status.push(await cli(['status', datasetId], env));
      times.audit.push(await cli(['audit', datasetId], env));
      times.help.push(await cli(['--help'], env));
      log(
        `cli latency run ${i + 1}/${runs}: status ${fmt(times.status[i]!.secs)} s, audit ${fmt(times.audit[i]!.secs)} s, --help ${fmt(times.help[i]!.secs)} s`,
      );
    }
    const status = latency(`provenant status ${datasetId}`, times.status);
    const audit = latency(`provenant audit ${datasetId}`, times.audit);
    const help = latency('provenant --help', times.help);
    const worst = Math.max(status.medianSecs, audit.medianSecs);
    return {
      status,
      audit,
      help,
      load: [load0, os.loadavg()[0]!],
      target: {
        target: `status and audit against a running server < ${TARGET_SECS} s (median of ${runs})`,
        measured: `status ${fmt(status.medianSecs)} s, audit ${fmt(audit.medianSecs)} s (--help alone ${fmt(help.medianSecs)} s)${status.medianCpuSecs !== undefined ? `; CPU: status ${fmt(status.medianCpuSecs)} s, audit ${fmt(audit.medianCpuSecs)} s` : ''}`,
        met: worst < TARGET_SECS,
      },
    };
  } finally {
    if (worker && worker.exitCode === null) {
      const gone = new Promise((r) => worker!.once('exit', r));
      worker.kill('SIGTERM');
      const t = setTimeout(() => worker!.kill('SIGKILL'), 15_000);
      await gone;
      clearTimeout(t);
    }
    await server.stop();
    fs.rmSync(home, { recursive: true, force: true });
  }
}

export function printCliLatency(c: CliLatency): void {
  console.log('\nread-only CLI commands against a running dev server + `provenant worker` (each its own process):');
  for (const l of [c.status, c.audit, c.help])
    console.log(
      `  ${l.command.padEnd(28)} median ${fmt(l.medianSecs)} s (min ${fmt(l.minSecs)}, max ${fmt(l.maxSecs)}, ${l.runs.length} runs)${l.medianCpuSecs !== undefined ? `, CPU ${fmt(l.medianCpuSecs)} s` : ''}`,
    );
  console.log(`  target < ${TARGET_SECS} s — ${c.target.met ? 'met' : 'NOT met'}: ${c.target.measured}`);
  if (Math.max(...c.load) > 0.5 * os.cpus().length)
    console.log(
      `  note: load average ${fmt(c.load[0])} → ${fmt(c.load[1])} on ${os.cpus().length} cpus: other processes slowed these figures`,
    );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--runs');
  const runs = i >= 0 ? Number(process.argv[i + 1]) : 7;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'provenant-bench-cli-'));
  try {
    const c = await measureCliLatency({
      work,
      runs,
      log: (m) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`),
    });
    printCliLatency(c);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
