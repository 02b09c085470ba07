/**
 * Crash suite (issue 12, item 1): the worker process is SIGKILLed at a seeded point of the scan, the
 * pack, the replication, the manifest, a steward round or a restore; then the same with the Temporal
 * server SIGKILLed and restarted on its persistent database (same port, same file), and with two
 * workers of which one is killed and not brought back. Every run must complete with the root and
 * manifest CIDs of an uninterrupted run, restore byte-identical, leave no duplicate, partial or
 * orphan object at any provider (each local provider's directory is listed and compared with the
 * replica table, the manifest, the table's own blocks and the audit chain), and leave its staging
 * empty.
 *
 * Seeded (PROVENANT_CRASH_SEED); trials: PROVENANT_CRASH_TRIALS (worker kills, default 20),
 * PROVENANT_CRASH_SERVER_TRIALS and PROVENANT_CRASH_PAIR_TRIALS (default 3 each).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Client, Connection, WorkflowNotFoundError, type WorkflowHandle } from '@temporalio/client';
import { parseConfig } from '../../config/load.js';
import type { Config, ConfigInput } from '../../config/schema.js';
import { readAudit, readReplicaTable } from '../../activities/steward/activities.js';
import { startArchive, startRestore } from '../../workers/client.js';
import { resolveTemporalCli } from '../../workers/temporal-cli.js';
import { isListening } from '../../workers/dev-server.js';
import { archiveProgressQuery, stewardStatusQuery, stewardWorkflowId, verifyNowUpdate } from '../../workflows/index.js';
import type { ArchiveProgress, ArchiveSummary, StewardStatus } from '../../shared/types.js';
import { bytesOf, nodeForAnyUid, readTree, REQUIRE_ALL, tmpDir, writeTree } from '../helpers/env.js';
import { recordReliability } from '../helpers/reliability.js';

const KiB = 1024;
const CREATED = '2026-01-01T00:00:00.000Z';
const SEED = Number(process.env.PROVENANT_CRASH_SEED ?? 12);
const TRIALS = Number(process.env.PROVENANT_CRASH_TRIALS ?? 20);
const SERVER_TRIALS = Number(process.env.PROVENANT_CRASH_SERVER_TRIALS ?? 3);
const PAIR_TRIALS = Number(process.env.PROVENANT_CRASH_PAIR_TRIALS ?? 3);
const PROVIDERS = 3;

const STAGES = ['scan', 'pack', 'replicate', 'manifest', 'steward', 'restore'] as const;
type Stage = (typeof STAGES)[number];
/** The archive's progress stages in order: a kill aimed at one lands at it or later. */
const ORDER: ArchiveProgress['stage'][] = ['starting', 'scan', 'pack', 'replicate', 'manifest', 'cleanup', 'done'];
/** The longest seeded delay after a stage is seen, per stage (the stages of this small dataset last about this long). */
const MAX_DELAY_MS: Record<Stage, number> = {
  scan: 150,
  pack: 800,
  replicate: 500,
  manifest: 300,
  steward: 800,
  restore: 800,
};

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Wait for a child process to be gone (returns at once when it already is). */
function exited(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((r) => p.once('exit', () => r()));
}

/** The Temporal dev server on a persistent SQLite file, which this suite kills and restarts on the same port and file. */
class PersistentServer {
  child: ChildProcess | undefined;
  constructor(
    readonly bin: string,
    readonly port: number,
    readonly dbFile: string,
    readonly logFile: string,
  ) {}
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    const out = fs.openSync(this.logFile, 'a');
    const child = spawn(
      this.bin,
      [
        'server',
        'start-dev',
        '--headless',
        '--ip',
        '127.0.0.1',
        '--port',
        String(this.port),
        '--db-filename',
        this.dbFile,
        '--namespace',
        'default',
        '--log-level',
        'error',
        '--search-attribute',
        'ProvenantHealth=Keyword',
        '--search-attribute',
        'ProvenantDataset=Keyword',
      ],
      { stdio: ['ignore', out, out] },
    );
    fs.closeSync(out);
    this.child = child;
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`the Temporal dev server exited at start; see ${this.logFile}`);
      if (await isListening(this.address, 500)) {
        try {
          const c = await Connection.connect({ address: this.address, connectTimeout: 2000 });
          try {
            await c.workflowService.getSystemInfo({});
            await c.workflowService.describeNamespace({ namespace: 'default' });
          } finally {
            await c.close();
          }
          return;
        } catch {
          /* not ready yet */
        }
      }
      if (Date.now() > deadline) throw new Error(`the Temporal dev server did not become ready; see ${this.logFile}`);
      await sleep(200);
    }
  }
  async kill(): Promise<void> {
    const c = this.child;
    if (!c) return;
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await exited(c);
    this.child = undefined;
  }
}

/** A worker process running the real plugin (workers/main.js), its stderr kept for a failure's message. */
class WorkerProcess {
  readonly child: ChildProcess;
  private err = '';
  readonly ready: Promise<void>;
  constructor(script: string, env: Record<string, string>) {
    this.child = spawn(nodeForAnyUid(), [script], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.ready = new Promise((resolve) => {
      this.child.stderr!.on('data', (b: Buffer) => {
        this.err = (this.err + b.toString()).slice(-4000);
        if (this.err.includes('provenant worker: queue')) resolve();
      });
      this.child.once('exit', () => resolve());
    });
  }
  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  get stderr(): string {
    return this.err;
  }
  async kill(): Promise<void> {
    if (this.alive) this.child.kill('SIGKILL');
    await exited(this.child);
  }
}

type Mode = 'worker' | 'server' | 'pair';

interface TrialOutcome {
  stage: Stage;
  /** Where the run was when the fault struck (the archive's progress stage, or steward / restore). */
  at: string;
  delayMs: number;
  problems: string[];
  lostFiles: number;
  tookMs: number;
}

describe('crash suite: SIGKILL at seeded points', () => {
  let server: PersistentServer | undefined;
  let connection: Connection | undefined;
  let client: Client;
  let data: string;
  let src: string;
  let home: string;
  let staging: string;
  let config: Config;
  let cfgFile: string;
  let workerScript: string;
  let reference: ArchiveSummary;
  let workers: WorkerProcess[] = [];
  let skipped: string | undefined;

  before(async () => {
    const bin = resolveTemporalCli({ build: true, log: (m) => console.error(`[test] ${m}`) });
    if (!bin) {
      skipped = 'Temporal CLI not found and could not be built (run `npm run setup`)';
      if (REQUIRE_ALL) throw new Error(skipped);
      return;
    }
    data = tmpDir('pv-crash-');
    src = path.join(data, 'src');
    home = path.join(data, 'home');
    staging = path.join(data, 'staging');
    const files: Record<string, Buffer | string> = {
      'big/model.bin': bytesOf(600 * KiB + 54_321, 'crash-model'),
      'big/weights.bin': bytesOf(300 * KiB + 3, 'crash-weights'),
      'empty.txt': '',
      'a-b/x.txt': 'a sibling whose name sorts after a/',
      'a/y.txt': 'inside a/',
    };
    for (let i = 0; i < 120; i++)
      files[`small/d-${i % 12}/f-${String(i).padStart(3, '0')}.bin`] = bytesOf(300 + ((i * 2311) % 4000), `c-${i}`);
    writeTree(src, files);
    server = new PersistentServer(
      bin,
      await freePort(),
      path.join(data, 'temporal.sqlite'),
      path.join(data, 'server.log'),
    );
    await server.start();
    connection = await Connection.connect({ address: server.address });
    client = new Client({ connection, namespace: 'default' });
    const cfg = {
      dataDir: home,
      stagingDir: staging,
      pack: { shardBytes: 192 * KiB, chunkBytes: 64 * KiB },
      replication: { copies: 2 },
      providers: Array.from({ length: PROVIDERS }, (_, i) => ({
        kind: 'local',
        id: `local-${i}`,
        path: path.join(data, 'providers', `local-${i}`),
      })),
      temporal: { address: server.address, namespace: 'default', taskQueue: 'pv-crash', heartbeatTimeout: '3 seconds' },
    };
    cfgFile = path.join(data, 'config.json');
    fs.writeFileSync(cfgFile, JSON.stringify(cfg));
    config = parseConfig(cfg as ConfigInput);
    workerScript = fileURLToPath(new URL('./crash-worker.js', import.meta.url));
  });

  after(async () => {
    for (const w of workers) await w.kill();
    await connection?.close().catch(() => undefined);
    await server?.kill();
    if (data) fs.rmSync(data, { recursive: true, force: true });
  });

  const startWorker = async (): Promise<WorkerProcess> => {
    const w = new WorkerProcess(workerScript, {
      PROVENANT_CONFIG: cfgFile,
      TEMPORAL_ADDRESS: server!.address,
      TEMPORAL_NAMESPACE: 'default',
    });
    workers.push(w);
    await w.ready;
    assert.ok(w.alive, `the worker did not start: ${w.stderr}`);
    return w;
  };
  const living = () => workers.filter((w) => w.alive);
  /** `n` live workers (started as needed). */
  const ensureWorkers = async (n: number) => {
    workers = living();
    while (workers.length < n) await startWorker();
  };

  const stewardOf = (s: ArchiveSummary) => client.workflow.getHandle(stewardWorkflowId(s.manifestCid));

  /**
   * The steward's status once it is at rest: its table and first audit record stored, `rounds`
   * rounds done and no activity of it pending (the table and audit chain are not in flux).
   */
  const stewardStatus = async (s: ArchiveSummary, rounds = 0): Promise<StewardStatus> => {
    const h = stewardOf(s);
    const deadline = Date.now() + 120_000;
    for (;;) {
      const st = await h.query(stewardStatusQuery).catch(() => undefined);
      if (st && st.auditHead && st.replicaTable?.tableCid && st.rounds >= rounds) {
        const d = await h.describe();
        if ((d.raw.pendingActivities ?? []).length === 0) {
          // Asked again: a round may have begun between the query and the describe.
          const again = await h.query(stewardStatusQuery);
          if (again.rounds === st.rounds && again.auditHead === st.auditHead) return again;
        }
      }
      assert.ok(Date.now() < deadline, 'the steward never came to rest (table, audit record, first round)');
      await sleep(100);
    }
  };

  /** End the dataset's steward and empty the providers, staging and caches for the next trial. */
  const reset = async (s: ArchiveSummary | undefined) => {
    if (s) {
      await stewardOf(s)
        .terminate('crash suite: next trial')
        .catch((err: unknown) => {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        });
    }
    // The provider roots stay (a worker takes a root it has seen that is gone for an unmounted volume).
    // The workers' caches stay too (a running worker remembers what it cached there).
    const dirs = [staging, path.join(data, 'restored')];
    for (let i = 0; i < PROVIDERS; i++) dirs.push(path.join(data, 'providers', `local-${i}`));
    for (const d of dirs) {
      for (const e of fs.existsSync(d) ? fs.readdirSync(d) : [])
        fs.rmSync(path.join(d, e), { recursive: true, force: true });
    }
  };

  /** Every file below `dir`, relative. */
  const listAll = (dir: string): string[] => {
    const out: string[] = [];
    const walk = (rel: string) => {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(path.join(dir, rel), { withFileTypes: true });
      } catch {
        return;
      }
      for (const d of entries) {
        const r = rel ? `${rel}/${d.name}` : d.name;
        if (d.isDirectory()) walk(r);
        else out.push(r);
      }
    };
    walk('');
    return out;
  };

  /**
   * What each provider holds, against what the dataset says it stored: the replica table's
   * replicas, the manifest, the table's own blocks and the audit records. Anything else (a temp
   * file, a piece without its metadata or root, a second piece for one root, an object nobody
   * lists) is a problem.
   */
  const checkProviders = async (s: ArchiveSummary, st: StewardStatus): Promise<string[]> => {
    const problems: string[] = [];
    const table = await readReplicaTable(config, st.replicaTable!.tableCid);
    const chain = await readAudit(config, st.auditHead!);
    for (const p of chain.problems) problems.push(`audit: ${JSON.stringify(p)}`);
    const listed = new Set<string>([s.manifestCid, st.replicaTable!.tableCid!, ...chain.records.map((r) => r.cid)]);
    for (const page of table.root?.pages ?? []) listed.add(page.cid.toString());
    const byShard = new Map<number, string[]>();
    for (const r of table.replicas) {
      byShard.set(r.shard, [...(byShard.get(r.shard) ?? []), r.providerId]);
      if (r.state !== 'healthy') problems.push(`replica of shard ${r.shard} at ${r.providerId} is ${r.state}`);
    }
    for (const [shard, at] of byShard) {
      if (at.length !== s.copies || new Set(at).size !== at.length)
        problems.push(`shard ${shard}: replicas at ${at.join(', ')} (want ${s.copies} distinct)`);
    }
    // The manifest has its own entry (shard −1) beside the data shards.
    const dataShards = [...byShard.keys()].filter((k) => k >= 0).length;
    if (dataShards !== s.shards) problems.push(`replica table lists ${dataShards} shards of ${s.shards}`);
    let manifestCopies = 0;
    for (let i = 0; i < PROVIDERS; i++) {
      const id = `local-${i}`;
      const root = path.join(data, 'providers', id);
      const mine = new Map(table.replicas.filter((r) => r.providerId === id).map((r) => [r.pieceCid, r]));
      const files = listAll(root);
      const cars = new Set<string>();
      for (const f of files) {
        const m = /^pieces\/([a-z0-9]+)\.(car|json)$/.exec(f) ?? /^roots\/([a-z0-9]+)$/.exec(f);
        if (!m) {
          problems.push(`${id}: stray file ${f}`);
          continue;
        }
        if (m[2] === 'car') cars.add(m[1]!);
      }
      for (const f of files) {
        const m = /^pieces\/([a-z0-9]+)\.json$/.exec(f);
        if (m && !cars.has(m[1]!)) problems.push(`${id}: metadata without its piece ${m[1]}`);
      }
      const rootsSeen = new Map<string, string>();
      for (const piece of cars) {
        const car = path.join(root, 'pieces', `${piece}.car`);
        let meta: { pieceCid: string; rootCid: string; bytes: number } | undefined;
        try {
          meta = JSON.parse(fs.readFileSync(path.join(root, 'pieces', `${piece}.json`), 'utf8')) as typeof meta;
        } catch {
          problems.push(`${id}: piece ${piece} has no metadata`);
        }
        const rep = mine.get(piece);
        const rootCid = meta?.rootCid ?? rep?.rootCid;
        const size = fs.statSync(car).size;
        if (meta && size !== meta.bytes)
          problems.push(`${id}: piece ${piece} is partial (${size} of ${meta.bytes} bytes)`);
        if (rep) {
          if (size !== rep.bytes) problems.push(`${id}: shard ${rep.shard} piece has ${size} of ${rep.bytes} bytes`);
          mine.delete(piece);
        } else if (!rootCid || !listed.has(rootCid)) {
          problems.push(`${id}: orphan piece ${piece} (root ${rootCid ?? '?'}, listed nowhere)`);
        }
        if (rootCid === s.manifestCid) manifestCopies++;
        if (rootCid) {
          const other = rootsSeen.get(rootCid);
          if (other) problems.push(`${id}: duplicate: root ${rootCid} stored as pieces ${other} and ${piece}`);
          rootsSeen.set(rootCid, piece);
          const pointer = fs.existsSync(path.join(root, 'roots', rootCid))
            ? fs.readFileSync(path.join(root, 'roots', rootCid), 'utf8')
            : undefined;
          if (pointer !== piece)
            problems.push(`${id}: root ${rootCid} points at ${pointer ?? 'nothing'}, not ${piece}`);
        }
      }
      for (const f of files) {
        const m = /^roots\/([a-z0-9]+)$/.exec(f);
        if (m && !rootsSeen.has(m[1]!)) problems.push(`${id}: root entry ${m[1]} without a piece`);
      }
      for (const r of mine.values()) problems.push(`${id}: shard ${r.shard} listed in the table, not stored`);
    }
    if (manifestCopies < s.copies) problems.push(`manifest stored ${manifestCopies} times, want ${s.copies}`);
    return problems;
  };

  /** Staging and the worker's repair cache hold nothing once the runs are over. */
  const checkLeftovers = (): string[] => {
    const problems: string[] = [];
    for (const f of listAll(staging)) problems.push(`staging not cleaned: ${f}`);
    for (const f of listAll(path.join(home, 'cache', 'repair'))) problems.push(`repair cache not cleaned: ${f}`);
    return problems;
  };

  const restoreAndCompare = async (s: ArchiveSummary, tag: string, during?: (h: WorkflowHandle) => Promise<void>) => {
    const target = path.join(data, 'restored', tag);
    const h = await startRestore(client, config, { manifestCid: s.manifestCid, target, force: false });
    if (during) await during(h);
    await h.result();
    const got = readTree(target);
    const want = readTree(src);
    let lost = 0;
    for (const [f, b] of want) if (!got.get(f)?.equals(b)) lost++;
    const extra = [...got.keys()].filter((f) => !want.has(f));
    return { lost, extra };
  };

  /** Wait until a workflow has a started activity (one a worker holds), or it closes. */
  const untilActivityRuns = async (h: WorkflowHandle, deadlineMs = 60_000) => {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      const d = await h.describe();
      if (d.status.name !== 'RUNNING') return false;
      const raw = d.raw.pendingActivities ?? [];
      if (raw.some((a) => a.state === 2 /* PENDING_ACTIVITY_STATE_STARTED */)) return true;
      assert.ok(Date.now() < deadline, 'no activity started');
      await sleep(20);
    }
  };

  /** The fault: SIGKILL one worker (brought back or not by the mode), or the server (restarted on its file). */
  const inject = async (mode: Mode, rnd: () => number) => {
    if (mode === 'server') {
      await server!.kill();
      await sleep(Math.floor(rnd() * 1000));
      await server!.start();
      return;
    }
    const live = living();
    const victim = live[Math.floor(rnd() * live.length)]!;
    await victim.kill();
    if (mode === 'worker') await startWorker();
  };

  const trial = async (mode: Mode, n: number): Promise<TrialOutcome> => {
    const rnd = prng(SEED * 7919 + n * 31 + ['worker', 'server', 'pair'].indexOf(mode));
    const stage = STAGES[Math.floor(rnd() * STAGES.length)]!;
    const delayMs = Math.floor(rnd() * MAX_DELAY_MS[stage]);
    await ensureWorkers(mode === 'pair' ? 2 : 1);
    const problems: string[] = [];
    const t0 = Date.now();
    const phases: string[] = [];
    let last = t0;
    const mark = (what: string) => {
      phases.push(`${what} ${((Date.now() - last) / 1000).toFixed(1)}`);
      last = Date.now();
    };
    let at: string = stage;
    let lostFiles = 0;
    let summary: ArchiveSummary | undefined;
    try {
      const { handle } = await startArchive(client, config, {
        dir: src,
        datasetId: 'crash',
        createdAt: CREATED,
        workflowId: `crash-${mode}-${n}`,
      });
      let restored = false;
      if (stage === 'steward' || stage === 'restore') {
        summary = await handle.result();
        mark('archive');
        await stewardStatus(summary);
        mark('steward at rest');
        if (stage === 'steward') {
          const h = stewardOf(summary);
          const round = await h.startUpdate<StewardStatus, []>(verifyNowUpdate.name, { waitForStage: 'ACCEPTED' });
          await untilActivityRuns(h);
          await sleep(delayMs);
          await inject(mode, rnd);
          const st = await round.result();
          mark('killed round');
          if (st.lastRoundError) problems.push(`steward round failed: ${st.lastRoundError.message}`);
        } else {
          const r = await restoreAndCompare(summary, `${mode}-${n}`, async (h) => {
            await untilActivityRuns(h);
            await sleep(delayMs);
            await inject(mode, rnd);
          });
          mark('killed restore');
          lostFiles += r.lost;
          if (r.extra.length) problems.push(`restore wrote files not in the source: ${r.extra.join(', ')}`);
          restored = true;
        }
      } else {
        const want = ORDER.indexOf(stage);
        for (;;) {
          const p = await handle.query(archiveProgressQuery).catch(() => undefined);
          if (p && ORDER.indexOf(p.stage) >= want) {
            at = p.stage;
            break;
          }
          const d = await handle.describe();
          if (d.status.name !== 'RUNNING') {
            at = 'done';
            break;
          }
          await sleep(15);
        }
        await sleep(delayMs);
        await inject(mode, rnd);
        mark('kill');
        summary = await handle.result();
        mark('archive');
      }
      if (summary.rootCid !== reference.rootCid) problems.push(`root CID ${summary.rootCid} ≠ ${reference.rootCid}`);
      if (summary.manifestCid !== reference.manifestCid)
        problems.push(`manifest CID ${summary.manifestCid} ≠ ${reference.manifestCid}`);
      if (!restored) {
        const r = await restoreAndCompare(summary, `${mode}-${n}`);
        mark('restore');
        lostFiles += r.lost;
        if (r.extra.length) problems.push(`restore wrote files not in the source: ${r.extra.join(', ')}`);
      }
      const st = await stewardStatus(summary);
      mark('steward at rest');
      problems.push(...(await checkProviders(summary, st)), ...checkLeftovers());
    } catch (err) {
      const chain: string[] = [];
      for (let e: unknown = err; e instanceof Error && chain.length < 4; e = e.cause)
        chain.push(`${e.name}: ${e.message}`);
      problems.push(`run did not complete: ${chain.join(' ← ') || String(err)}`);
    } finally {
      await reset(summary);
      mark('reset');
    }
    if (process.env.PROVENANT_CRASH_VERBOSE) console.log(`# phases: ${phases.join(', ')}`);
    return { stage, at, delayMs, problems, lostFiles, tookMs: Date.now() - t0 };
  };

  it('an uninterrupted run: the reference CIDs, a byte-identical restore, providers hold exactly what is listed', async (t) => {
    if (skipped) return t.skip(skipped);
    await ensureWorkers(1);
    const { handle } = await startArchive(client, config, {
      dir: src,
      datasetId: 'crash',
      createdAt: CREATED,
      workflowId: 'crash-reference',
    });
    reference = await handle.result();
    assert.ok(reference.shards >= 5, `${reference.shards} shards`);
    const r = await restoreAndCompare(reference, 'reference');
    assert.equal(r.lost, 0);
    assert.deepEqual(r.extra, []);
    // A steward round, then the providers' contents against the table, manifest and audit chain.
    await stewardStatus(reference);
    await stewardOf(reference).executeUpdate<StewardStatus, []>(verifyNowUpdate.name);
    const st = await stewardStatus(reference, 1);
    assert.deepEqual(await checkProviders(reference, st), []);
    assert.deepEqual(checkLeftovers(), []);
    await reset(reference);
  });

  const suite = (mode: Mode, trials: number, name: string) => async () => {
    if (skipped || !reference) return;
    const outcomes: TrialOutcome[] = [];
    for (let n = 0; n < trials; n++) {
      const o = await trial(mode, n);
      outcomes.push(o);
      console.log(
        `# crash ${mode} #${n}: aimed at ${o.stage}, struck at ${o.at} +${o.delayMs} ms (${(o.tookMs / 1000).toFixed(1)} s): ${o.problems.length ? o.problems.join('; ') : 'ok'}`,
      );
    }
    recordReliability({
      suite: name,
      trials,
      faultsInjected: outcomes.length,
      faultsDetected: outcomes.filter((o) => o.problems.length === 0).length,
      dataLost: outcomes.reduce((n, o) => n + o.lostFiles, 0),
    });
    assert.deepEqual(
      outcomes.filter((o) => o.problems.length || o.lostFiles).map((o) => `${o.stage}: ${o.problems.join('; ')}`),
      [],
    );
  };

  it(`${TRIALS} seeded worker SIGKILLs: every run completes identical, nothing orphaned, staging clean`, async (t) => {
    if (skipped) return t.skip(skipped);
    await suite('worker', TRIALS, 'crash (worker SIGKILL)')();
  });
  it(`${SERVER_TRIALS} seeded Temporal server SIGKILLs, restarted on its database`, async (t) => {
    if (skipped) return t.skip(skipped);
    await suite('server', SERVER_TRIALS, 'crash (server SIGKILL + restart)')();
  });
  it(`${PAIR_TRIALS} seeded kills of one of two workers: the other finishes`, async (t) => {
    if (skipped) return t.skip(skipped);
    await suite('pair', PAIR_TRIALS, 'crash (one of two workers SIGKILL)')();
  });
});
