/**
 * `node dist/bench/io.js [options]`: the I/O paths against S3, measured side by side, interleaved,
 * on the same bytes and the same MinIO server (started on loopback in a temp dir):
 *   (a) a plain AWS SDK multipart upload (lib-storage Upload, SDK defaults) of the archive's CAR
 *       shards, one after the other, into a bucket of its own;
 *   (b) the real archiveDataset workflow with one S3 provider (1 copy) on an embedded dev server,
 *       worker in the measured process: the put phase (the union of the provenantPutPiece spans,
 *       read from the workflow's history) and the archive end to end;
 *   (c) the real restoreDataset workflow from that bucket into an empty directory (every shard
 *       checked against its CAR CID, every block against its CID, every file against its sha256);
 *   (d) `ipfs-car unpack` (block hashes verified, its default) of an ipfs-car CAR of the same tree,
 *       and `cp -r` of the tree, as the floor.
 * Each of (a)–(d) runs in a process of its own whose peak RSS (VmHWM, sampled) is reported. Prints
 * a table and the ratios (S3 put / SDK multipart ≥ 0.8; restore / ipfs-car unpack ≥ 2; peak RSS
 * ≤ 300 MiB) and writes bench-io-results.json. Never part of `npm test`.
 *
 * Options: --gib N        dataset size, in 16 MiB pseudo-random files (default 2)
 *          --runs N       interleaved runs of each measurement (default 2)
 *          --shard-mib N  pack.shardBytes in MiB (default: the configured default)
 *          --dir DIR      where data, MinIO and restores live (default: the OS temp dir)
 *          --out FILE     results file (default ./bench-io-results.json)
 *          --keep         keep the generated data
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { resolveMinio } from '../workers/binaries.js';
import type { ArchiveRun, RestoreRun, S3Target, SdkRun } from './io-child.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const FILE_BYTES = 16 * MiB;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}
const opts = {
  gib: Number(option('gib', '2')),
  runs: Math.max(1, Number(option('runs', '2'))),
  shardMiB: Number(option('shard-mib', '0')) || undefined,
  dir: option('dir', os.tmpdir()),
  out: path.resolve(option('out', 'bench-io-results.json')),
  keep: process.argv.includes('--keep'),
};

const now = () => performance.now() / 1000;
const load = () => os.loadavg()[0]!.toFixed(2);
const log = (msg: string) =>
  process.stderr.write(`[bench:io ${new Date().toISOString().slice(11, 19)} load ${load()}] ${msg}\n`);
const mibps = (bytes: number, secs: number) => bytes / MiB / secs;
const fmt = (n: number | undefined, digits = 0) => (n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(digits));
const rm = (p: string) => fs.rmSync(p, { recursive: true, force: true });

/** Runs a process; resolves with its stdout, wall time and sampled peak RSS (VmHWM). */
function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ stdout: string; secs: number; hwmKiB: number }> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: repoRoot, env });
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

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** `gib` GiB of 16 MiB pseudo-random files over 4 directories. */
function generate(dir: string, totalBytes: number): { files: number; bytes: number } {
  const buf = Buffer.allocUnsafe(4 * MiB);
  let files = 0;
  let bytes = 0;
  for (; bytes < totalBytes; files++) {
    const sub = path.join(dir, `d${files % 4}`);
    fs.mkdirSync(sub, { recursive: true });
    const size = Math.min(FILE_BYTES, totalBytes - bytes);
    const fd = fs.openSync(path.join(sub, `f${String(files).padStart(4, '0')}.bin`), 'w');
    for (let left = size; left > 0;) {
      const n = Math.min(buf.length, left);
      crypto.randomFillSync(buf, 0, n);
      fs.writeSync(fd, buf, 0, n);
      left -= n;
    }
    fs.closeSync(fd);
    bytes += size;
  }
  return { files, bytes };
}

/** Union of the spans of one activity type in a workflow timeline, in seconds. */
function busySecs(timeline: [string, number, number][], type: string): number {
  const spans = timeline
    .filter(([t]) => t === type)
    .map(([, a, b]) => [a, b] as [number, number])
    .sort((x, y) => x[0] - y[0]);
  let total = 0;
  let end = -Infinity;
  for (const [a, b] of spans) {
    if (a > end) {
      total += b - a;
      end = b;
    } else if (b > end) {
      total += b - end;
      end = b;
    }
  }
  return total;
}

async function main(): Promise<void> {
  const t0 = now();
  const work = fs.mkdtempSync(path.join(opts.dir, 'provenant-bench-io-'));
  const src = path.join(work, 'src');
  const minioBin = resolveMinio({ build: true, log });
  if (!minioBin) throw new Error('MinIO not found (run `npm run setup`, or set PROVENANT_MINIO_BIN)');
  let minio: ChildProcess | undefined;
  try {
    log(`generating ${opts.gib} GiB in ${FILE_BYTES / MiB} MiB files under ${src}`);
    const data = generate(src, Math.round(opts.gib * GiB));

    const port = await freePort();
    const key = `bench${crypto.randomBytes(6).toString('hex')}`;
    const secret = crypto.randomBytes(24).toString('base64url');
    minio = spawn(
      minioBin,
      [
        'server',
        '--quiet',
        '--address',
        `127.0.0.1:${port}`,
        '--console-address',
        `127.0.0.1:${await freePort()}`,
        path.join(work, 'minio'),
      ],
      {
        env: {
          PATH: process.env.PATH,
          HOME: work,
          MINIO_ROOT_USER: key,
          MINIO_ROOT_PASSWORD: secret,
          MINIO_BROWSER: 'off',
          MINIO_UPDATE: 'off',
        },
        stdio: 'ignore',
      },
    );
    const endpoint = `http://127.0.0.1:${port}`;
    for (let ready = false; !ready;) {
      ready = await fetch(`${endpoint}/minio/health/ready`).then(
        (r) => r.ok,
        () => false,
      );
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    const s3 = new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: key, secretAccessKey: secret },
    });
    const bucket = async (name: string): Promise<S3Target> => {
      await s3.send(new CreateBucketCommand({ Bucket: name }));
      return { endpoint, bucket: name };
    };
    const env = { ...process.env, BENCH_S3_KEY: key, BENCH_S3_SECRET: secret, NODE_NO_WARNINGS: '1' };
    const childJs = path.join(repoRoot, 'dist', 'bench', 'io-child.js');
    const child = async <T>(mode: string, a: unknown) => {
      const r = await run(process.execPath, [childJs, mode, JSON.stringify(a)], env);
      return { out: JSON.parse(r.stdout.trim().split('\n').pop()!) as T, secs: r.secs, hwmKiB: r.hwmKiB };
    };

    log('ipfs-car pack of the tree (for the unpack comparison; not timed against anything)');
    const treeCar = path.join(work, 'tree.car');
    const ipfsCar = path.join(repoRoot, 'node_modules', '.bin', 'ipfs-car');
    const packed = await run(ipfsCar, ['pack', src, '--output', treeCar]);
    log(`  ${fmt(fs.statSync(treeCar).size / MiB)} MiB CAR in ${fmt(packed.secs, 1)} s`);

    const shardBytes = opts.shardMiB ? opts.shardMiB * MiB : undefined;
    const archives: (ArchiveRun & { hwmKiB: number; putSecs: number; carBytes: number })[] = [];
    const sdks: (SdkRun & { hwmKiB: number })[] = [];
    const restores: (RestoreRun & { hwmKiB: number })[] = [];
    const unpacks: { secs: number; hwmKiB: number }[] = [];
    const copies: { secs: number }[] = [];
    let shardFiles: string[] = [];
    let carBytes = 0;

    const doArchive = async (i: number) => {
      const target = await bucket(`prov-${i}`);
      const wdir = path.join(work, `archive-${i}`);
      const { out, hwmKiB } = await child<ArchiveRun>('archive', { src, work: wdir, s3: target, shardBytes });
      rm(wdir);
      if (shardFiles.length === 0) {
        // The SDK side uploads the very bytes the provider stored: the archive's CAR shards.
        const dir = path.join(work, 'shards');
        fs.mkdirSync(dir);
        const listed = await s3.send(new ListObjectsV2Command({ Bucket: target.bucket, Prefix: 'pieces/' }));
        for (const o of listed.Contents ?? []) {
          if ((o.Size ?? 0) < MiB) continue; // the manifest and its pages, not shards
          const file = path.join(dir, path.basename(o.Key!));
          const r = await s3.send(new GetObjectCommand({ Bucket: target.bucket, Key: o.Key! }));
          await pipeline(r.Body as NodeJS.ReadableStream, fs.createWriteStream(file));
          shardFiles.push(file);
          carBytes += o.Size ?? 0;
        }
        shardFiles = shardFiles.sort();
      }
      const putSecs = busySecs(out.timeline, 'provenantPutPiece');
      archives.push({ ...out, hwmKiB, putSecs, carBytes });
      log(
        `(b) archive run ${i + 1}: put ${fmt(mibps(carBytes, putSecs))} MiB/s (${fmt(putSecs, 2)} s of puts, ${out.shards} shards), end to end ${fmt(mibps(data.bytes, out.archiveSecs))} MiB/s (${fmt(out.archiveSecs, 2)} s), peak RSS ${fmt(hwmKiB / 1024)} MiB (idle worker ${out.rss.idleMiB}; ${Object.entries(
          out.rss.byActivity,
        )
          .map(([k, v]) => `${k.replace('provenant', '')} ${v}`)
          .join(', ')})`,
      );
      return { target, manifestCid: out.manifestCid };
    };
    const doSdk = async (i: number) => {
      const { out, hwmKiB } = await child<SdkRun>('sdk', {
        files: shardFiles,
        s3: await bucket(`sdk-${i}`),
        prefix: 'pieces/',
      });
      sdks.push({ ...out, hwmKiB });
      log(
        `(a) SDK multipart run ${i + 1}: ${fmt(mibps(out.bytes, out.secs))} MiB/s (${fmt(out.secs, 2)} s, ${shardFiles.length} objects), peak RSS ${fmt(hwmKiB / 1024)} MiB`,
      );
    };
    const doRestore = async (i: number, from: { target: S3Target; manifestCid: string }) => {
      const target = path.join(work, `restored-${i}`);
      const wdir = path.join(work, `restore-${i}`);
      const { out, hwmKiB } = await child<RestoreRun>('restore', {
        manifestCid: from.manifestCid,
        target,
        work: wdir,
        s3: from.target,
      });
      if (out.files !== data.files || out.bytes !== data.bytes)
        throw new Error(`restore wrote ${out.files} files, ${out.bytes} bytes; expected ${data.files}, ${data.bytes}`);
      rm(target);
      rm(wdir);
      restores.push({ ...out, hwmKiB });
      log(
        `(c) restore run ${i + 1}: ${fmt(mibps(out.bytes, out.restoreSecs))} MiB/s (${fmt(out.restoreSecs, 2)} s), peak RSS ${fmt(hwmKiB / 1024)} MiB (idle worker ${out.rss.idleMiB})`,
      );
    };
    const doUnpack = async (i: number) => {
      const target = path.join(work, `unpacked-${i}`);
      const r = await run(ipfsCar, ['unpack', treeCar, '--output', target]);
      rm(target);
      unpacks.push({ secs: r.secs, hwmKiB: r.hwmKiB });
      const c = path.join(work, `copied-${i}`);
      const cp = await run('cp', ['-r', src, c]);
      rm(c);
      copies.push({ secs: cp.secs });
      log(
        `(d) ipfs-car unpack run ${i + 1}: ${fmt(mibps(data.bytes, r.secs))} MiB/s (${fmt(r.secs, 2)} s); cp -r ${fmt(mibps(data.bytes, cp.secs))} MiB/s`,
      );
    };

    for (let i = 0; i < opts.runs; i++) {
      // Alternate the order within a run, so that neither side always goes first.
      let from;
      if (i % 2 === 0 || shardFiles.length === 0) {
        from = await doArchive(i);
        await doSdk(i);
      } else {
        await doSdk(i);
        from = await doArchive(i);
      }
      if (i % 2 === 0) {
        await doRestore(i, from);
        await doUnpack(i);
      } else {
        await doUnpack(i);
        await doRestore(i, from);
      }
    }

    const best = <T>(xs: T[], rate: (x: T) => number) => Math.max(...xs.map(rate));
    const sdkMiBps = best(sdks, (r) => mibps(r.bytes, r.secs));
    const putMiBps = best(archives, (r) => mibps(r.carBytes, r.putSecs));
    const archiveMiBps = best(archives, (r) => mibps(data.bytes, r.archiveSecs));
    const restoreMiBps = best(restores, (r) => mibps(r.bytes, r.restoreSecs));
    const unpackMiBps = best(unpacks, (r) => mibps(data.bytes, r.secs));
    const cpMiBps = best(copies, (r) => mibps(data.bytes, r.secs));
    const workerRssMiB = Math.max(...archives.map((r) => r.hwmKiB), ...restores.map((r) => r.hwmKiB)) / 1024;
    const ratios = {
      putToSdk: putMiBps / sdkMiBps,
      archiveToSdk: archiveMiBps / sdkMiBps,
      restoreToUnpack: restoreMiBps / unpackMiBps,
      restoreToCp: restoreMiBps / cpMiBps,
      // Run by run (each pair measured next to each other).
      putToSdkByRun: archives.map((a, i) => mibps(a.carBytes, a.putSecs) / mibps(sdks[i]!.bytes, sdks[i]!.secs)),
      restoreToUnpackByRun: restores.map((r, i) => mibps(r.bytes, r.restoreSecs) / mibps(data.bytes, unpacks[i]!.secs)),
    };
    const targets = [
      {
        target: 'S3 put ≥ 0.8 × SDK multipart upload',
        measured: `${fmt(ratios.putToSdk, 2)} × (${fmt(putMiBps)} vs ${fmt(sdkMiBps)} MiB/s)`,
        met: ratios.putToSdk >= 0.8,
      },
      {
        target: 'full restore ≥ 2 × ipfs-car unpack',
        measured: `${fmt(ratios.restoreToUnpack, 2)} × (${fmt(restoreMiBps)} vs ${fmt(unpackMiBps)} MiB/s)`,
        met: ratios.restoreToUnpack >= 2,
      },
      {
        target: 'peak RSS of the worker process ≤ 300 MiB',
        measured: `${fmt(workerRssMiB)} MiB`,
        met: workerRssMiB <= 300,
      },
    ];
    const results = {
      when: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model,
        node: process.version,
        loadavgEnd: os.loadavg(),
      },
      options: { ...opts, shardBytes },
      dataset: { ...data, carBytes, shards: shardFiles.length },
      sdk: sdks,
      archive: archives,
      restore: restores,
      ipfsCarUnpack: unpacks,
      cp: copies,
      best: { sdkMiBps, putMiBps, archiveMiBps, restoreMiBps, unpackMiBps, cpMiBps, workerRssMiB },
      ratios,
      targets,
      benchSecs: now() - t0,
    };
    fs.writeFileSync(opts.out, JSON.stringify(results, null, 2) + '\n');

    const rssOf = (xs: { hwmKiB: number }[]) => fmt(Math.max(...xs.map((x) => x.hwmKiB)) / 1024);
    const rows: [string, string, string][] = [
      [`(a) AWS SDK multipart upload (lib-storage defaults)`, fmt(sdkMiBps), rssOf(sdks)],
      [`(b) Provenant S3 provider put (archive's put phase)`, fmt(putMiBps), rssOf(archives)],
      [`(b) archive end to end (scan, pack, put, manifest)`, fmt(archiveMiBps), ''],
      [`(c) restore from S3, everything verified`, fmt(restoreMiBps), rssOf(restores)],
      [`(d) ipfs-car unpack (--verify)`, fmt(unpackMiBps), rssOf(unpacks)],
      [`(d) cp -r`, fmt(cpMiBps), ''],
    ];
    console.log(
      `\nProvenant I/O bench: ${fmt(data.bytes / GiB, 2)} GiB in ${data.files} files, ${shardFiles.length} shards, MinIO on loopback; best of ${opts.runs}; ${os.cpus().length} cpus, load ${load()}\n`,
    );
    console.log(`${''.padEnd(54)} ${'MiB/s'.padStart(7)} ${'RSS MiB'.padStart(8)}`);
    for (const [a, b, c] of rows) console.log(`${a.padEnd(54)} ${b.padStart(7)} ${c.padStart(8)}`);
    console.log(
      `\nratios: put/SDK ${fmt(ratios.putToSdk, 2)} (by run ${ratios.putToSdkByRun.map((r) => fmt(r, 2)).join(', ')}), archive end to end/SDK ${fmt(ratios.archiveToSdk, 2)}, restore/unpack ${fmt(ratios.restoreToUnpack, 2)} (by run ${ratios.restoreToUnpackByRun.map((r) => fmt(r, 2)).join(', ')}), restore/cp ${fmt(ratios.restoreToCp, 2)}`,
    );
    console.log('\ntargets:');
    for (const tg of targets) console.log(`  ${tg.met ? 'met    ' : 'NOT met'}  ${tg.target}: ${tg.measured}`);
    console.log(`\nresults: ${opts.out} (bench took ${fmt(now() - t0)} s)`);
    s3.destroy();
  } finally {
    minio?.kill('SIGTERM');
    if (!opts.keep) rm(work);
    else log(`kept ${work}`);
  }
}

await main();
