/**
 * The restore comparison of `npm run bench` (also on its own: `node dist/bench/restore.js [options]`):
 * on the same tree, measured side by side, interleaved, each in a process of its own:
 *   (r) the real restoreDataset workflow from one local provider (an archive of the tree made by
 *       the archiveDataset workflow first) into an empty directory: every block checked against
 *       its CID and its CAR framing against the block index, every file against its sha256;
 *   (u) `ipfs-car unpack` (block hashes verified, its default) of an ipfs-car CAR of the same tree;
 * the page cache flushed (`sync`) before each. The figure is restore MiB/s / unpack MiB/s, best
 * of each and run by run; the target is ≥ 2.
 *
 * Options (standalone): --gib N      dataset size (default 1), the headline bench's mix of files
 *                       --runs N     interleaved runs of each (default 2)
 *                       --direct     also time restoreDataset called directly (no Temporal)
 *                       --dir DIR    where data, archive and restores live (default: the OS temp dir)
 *                       --keep       keep the generated data
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RestoreArchiveRun, RestoreBenchRun } from './restore-child.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const now = () => performance.now() / 1000;
const mibps = (bytes: number, secs: number) => bytes / MiB / secs;
const fmt = (n: number | undefined, digits = 0) => (n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(digits));
const rm = (p: string) => fs.rmSync(p, { recursive: true, force: true });

/** Runs a process; resolves with its stdout, wall time and sampled peak RSS (VmHWM). */
function run(cmd: string, args: string[]): Promise<{ stdout: string; secs: number; hwmKiB: number }> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const p = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: repoRoot,
      env: { ...process.env, NODE_NO_WARNINGS: '1' },
    });
    let stdout = '';
    let stderr = '';
    let hwmKiB = 0;
    const sample = () => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${p.pid}/status`, 'utf8'));
        if (m) hwmKiB = Math.max(hwmKiB, Number(m[1]));
      } catch {
        /* exited */
      }
    };
    const timer = setInterval(sample, 25);
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    p.on('error', reject);
    p.on('exit', (code) => {
      clearInterval(timer);
      if (code !== 0)
        return reject(new Error(`${path.basename(cmd)} ${args.slice(0, 2).join(' ')} exited with ${code}: ${stderr}`));
      resolve({ stdout, secs: now() - t0, hwmKiB });
    });
  });
}

const childJs = path.join(repoRoot, 'dist', 'bench', 'restore-child.js');
async function child<T>(mode: string, a: unknown): Promise<{ out: T; secs: number; hwmKiB: number }> {
  const r = await run(process.execPath, [childJs, mode, JSON.stringify(a)]);
  return { out: JSON.parse(r.stdout.trim().split('\n').pop()!) as T, secs: r.secs, hwmKiB: r.hwmKiB };
}

export interface RestoreComparison {
  dataset: { files: number; bytes: number; shards: number; carBytes: number; ipfsCarBytes: number };
  restore: (RestoreBenchRun & { mibps: number; hwmMiB: number })[];
  direct: (RestoreBenchRun & { mibps: number; hwmMiB: number })[];
  unpack: { secs: number; mibps: number; hwmMiB: number }[];
  best: { restoreMiBps: number; directMiBps?: number; unpackMiBps: number };
  /** Restore / unpack, best of each, and pair by pair (each pair measured next to each other). */
  ratio: number;
  ratioByRun: number[];
  load: { start: number[]; end: number[] };
  target: { target: string; measured: string; met: boolean };
}

/**
 * Archives `src` (the workflow, one local provider), packs it with ipfs-car, then restores and
 * unpacks it `runs` times, interleaved, checking that the restore wrote every file and byte.
 */
export async function compareRestore(o: {
  src: string;
  files: number;
  bytes: number;
  work: string;
  runs: number;
  direct?: boolean;
  shardBytes?: number;
  log: (msg: string) => void;
}): Promise<RestoreComparison> {
  const load = { start: os.loadavg(), end: [] as number[] };
  const base = { work: path.join(o.work, 'restore-worker'), providers: [path.join(o.work, 'restore-provider')] };
  const shardBytes = o.shardBytes;
  o.log('restore: archiving the tree to one local provider (the workflow; not timed against anything)');
  const arch = await child<RestoreArchiveRun>('archive', {
    ...base,
    src: o.src,
    ...(shardBytes ? { shardBytes } : {}),
  });
  rm(base.work);
  const carBytes = fs
    .readdirSync(base.providers[0]!, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .reduce((n, d) => n + fs.statSync(path.join(d.parentPath, d.name)).size, 0);
  o.log(`  ${arch.out.shards} shards, ${fmt(carBytes / MiB)} MiB stored, in ${fmt(arch.out.archiveSecs, 1)} s`);
  const ipfsCar = path.join(repoRoot, 'node_modules', 'ipfs-car', 'bin.js');
  const treeCar = path.join(o.work, 'ipfs-car.car');
  const packed = await run(process.execPath, [ipfsCar, 'pack', o.src, '--output', treeCar]);
  const ipfsCarBytes = fs.statSync(treeCar).size;
  o.log(`  ipfs-car pack: ${fmt(ipfsCarBytes / MiB)} MiB CAR in ${fmt(packed.secs, 1)} s`);

  const restores: RestoreComparison['restore'] = [];
  const directs: RestoreComparison['direct'] = [];
  const unpacks: RestoreComparison['unpack'] = [];
  const sync = () => run('sync', []);
  const doRestore = async (i: number, direct: boolean) => {
    const target = path.join(o.work, `restored-${i}`);
    await sync();
    const { out, hwmKiB } = await child<RestoreBenchRun>('restore', {
      ...base,
      manifestCid: arch.out.manifestCid,
      target,
      direct,
    });
    if (out.files !== o.files || out.bytes !== o.bytes)
      throw new Error(`restore wrote ${out.files} files, ${out.bytes} bytes; expected ${o.files}, ${o.bytes}`);
    rm(target);
    rm(base.work);
    const r = { ...out, mibps: mibps(out.bytes, out.restoreSecs), hwmMiB: hwmKiB / 1024 };
    (direct ? directs : restores).push(r);
    const activity = out.activitySecs === undefined ? '' : `, its activity ${fmt(out.activitySecs, 2)} s`;
    o.log(
      `(r) restore${direct ? ' (direct, no Temporal)' : ''} run ${i + 1}: ${fmt(r.mibps)} MiB/s (${fmt(out.restoreSecs, 2)} s${activity}, ${fmt(out.cpuSecs, 1)} CPU s, peak RSS ${fmt(r.hwmMiB)} MiB)`,
    );
  };
  const doUnpack = async (i: number) => {
    const target = path.join(o.work, `unpacked-${i}`);
    await sync();
    const r = await run(process.execPath, [ipfsCar, 'unpack', treeCar, '--output', target]);
    rm(target);
    unpacks.push({ secs: r.secs, mibps: mibps(o.bytes, r.secs), hwmMiB: r.hwmKiB / 1024 });
    o.log(
      `(u) ipfs-car unpack run ${i + 1}: ${fmt(mibps(o.bytes, r.secs))} MiB/s (${fmt(r.secs, 2)} s including its start-up, peak RSS ${fmt(r.hwmKiB / 1024)} MiB)`,
    );
  };
  try {
    for (let i = 0; i < o.runs; i++) {
      // Alternate the order, so that neither side always goes first.
      if (i % 2 === 0) {
        await doRestore(i, false);
        await doUnpack(i);
      } else {
        await doUnpack(i);
        await doRestore(i, false);
      }
      if (o.direct) await doRestore(i, true);
    }
  } finally {
    rm(treeCar);
    rm(base.providers[0]!);
    rm(base.work);
  }
  load.end = os.loadavg();
  const restoreMiBps = Math.max(...restores.map((r) => r.mibps));
  const unpackMiBps = Math.max(...unpacks.map((r) => r.mibps));
  const directMiBps = directs.length ? Math.max(...directs.map((r) => r.mibps)) : undefined;
  const ratio = restoreMiBps / unpackMiBps;
  return {
    dataset: { files: o.files, bytes: o.bytes, shards: arch.out.shards, carBytes, ipfsCarBytes },
    restore: restores,
    direct: directs,
    unpack: unpacks,
    best: { restoreMiBps, unpackMiBps, ...(directMiBps ? { directMiBps } : {}) },
    ratio,
    ratioByRun: restores.map((r, i) => r.mibps / unpacks[i]!.mibps),
    load,
    target: {
      target: 'full restore ≥ 2 × ipfs-car unpack (same tree, every block and file checked)',
      measured: `${fmt(ratio, 2)} × (${fmt(restoreMiBps)} vs ${fmt(unpackMiBps)} MiB/s on ${fmt(o.bytes / GiB, 2)} GiB)`,
      met: ratio >= 2,
    },
  };
}

/** ~7/8 of the bytes in 256 MiB files, the rest in ~1 MiB files over 4 directories (the headline mix). */
function generate(dir: string, totalBytes: number): { files: number; bytes: number } {
  const buf = Buffer.allocUnsafe(8 * MiB);
  const write = (file: string, size: number) => {
    const fd = fs.openSync(file, 'w');
    for (let left = size; left > 0;) {
      const n = Math.min(buf.length, left);
      crypto.randomFillSync(buf, 0, n);
      fs.writeSync(fd, buf, 0, n);
      left -= n;
    }
    fs.closeSync(fd);
  };
  const bigTotal = Math.floor((totalBytes * 7) / 8);
  let bytes = 0;
  let files = 0;
  fs.mkdirSync(path.join(dir, 'model'), { recursive: true });
  for (let i = 0; bytes < bigTotal; i++, files++) {
    const size = Math.min(256 * MiB + 12345 * i, bigTotal - bytes);
    write(path.join(dir, 'model', `part-${String(i).padStart(3, '0')}.safetensors`), size);
    bytes += size;
  }
  for (let i = 0; bytes < totalBytes; i++, files++) {
    const sub = path.join(dir, 'samples', `s${i % 4}`);
    fs.mkdirSync(sub, { recursive: true });
    const size = Math.min(MiB - ((i * 7919) % 4096), totalBytes - bytes);
    write(path.join(sub, `${String(i).padStart(5, '0')}.bin`), size);
    bytes += size;
  }
  return { files, bytes };
}

export function printComparison(c: RestoreComparison): void {
  const b = c.best;
  console.log(
    `\nrestore vs ipfs-car unpack, ${fmt(c.dataset.bytes / GiB, 2)} GiB in ${c.dataset.files} files (${c.dataset.shards} shards), best of ${c.restore.length}; ${os.cpus().length} cpus, load avg ${c.load.start.map((l) => l.toFixed(2)).join(' ')} → ${c.load.end.map((l) => l.toFixed(2)).join(' ')}`,
  );
  const peak = (xs: { hwmMiB: number }[]) => fmt(Math.max(...xs.map((x) => x.hwmMiB)));
  const line = (a: string, m: string, r: string) => console.log(`  ${a.padEnd(62)} ${m.padStart(7)} ${r.padStart(8)}`);
  line('', 'MiB/s', 'RSS MiB');
  line('(r) restore workflow, local provider, every block + file checked', fmt(b.restoreMiBps), peak(c.restore));
  if (b.directMiBps)
    line('(r) the same, restoreDataset called directly (no Temporal)', fmt(b.directMiBps), peak(c.direct));
  line('(u) ipfs-car unpack (blocks verified), with its start-up', fmt(b.unpackMiBps), peak(c.unpack));
  console.log(
    `  restore / ipfs-car unpack: ${fmt(c.ratio, 2)} × (by run ${c.ratioByRun.map((r) => fmt(r, 2)).join(', ')}); target ≥ 2 × — ${c.target.met ? 'met' : 'NOT met'}`,
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const option = (name: string, fallback: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
  };
  const work = fs.mkdtempSync(path.join(option('dir', os.tmpdir()), 'provenant-bench-restore-'));
  const log = (msg: string) =>
    process.stderr.write(
      `[bench:restore ${new Date().toISOString().slice(11, 19)} load ${os.loadavg()[0]!.toFixed(2)}] ${msg}\n`,
    );
  try {
    const gib = Number(option('gib', '1'));
    log(`generating ${gib} GiB under ${work}`);
    const src = path.join(work, 'src');
    const data = generate(src, Math.round(gib * GiB));
    const c = await compareRestore({
      src,
      ...data,
      work,
      runs: Math.max(1, Number(option('runs', '2'))),
      direct: process.argv.includes('--direct'),
      log,
    });
    printComparison(c);
  } finally {
    if (process.argv.includes('--keep')) log(`kept ${work}`);
    else rm(work);
  }
}
