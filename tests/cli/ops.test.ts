/**
 * The ops commands through the `provenant` CLI on its embedded default (dev server + in-process
 * worker + three local providers): verify, repair, replicas --add, providers, retire (--yes,
 * --delete) and rehome off a provider that is shut down.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { resolveTemporalCli } from '../../workers/temporal-cli.js';
import { bytesOf, readTree, REQUIRE_ALL, tmpDir, writeTree } from '../helpers/env.js';

const CLI = fileURLToPath(new URL('../../cli/provenant.js', import.meta.url));
const MiB = 1024 * 1024;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The environment minus every variable that would win over the test's Temporal settings. */
function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'PROVENANT_TASK_QUEUE', 'PROVENANT_CONFIG']) delete env[k];
  return env;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    // stdin is not a terminal here (/dev/null): retire must refuse without --yes.
    const p = spawn(process.execPath, [CLI, ...args], {
      env: { ...baseEnv(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const json = <T = Record<string, unknown>>(r: Run): T => {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
};

interface Row {
  shard: number;
  pieceCid: string;
  providerId: string;
  state: string;
}

describe('provenant ops commands', () => {
  it('verify, repair, replicas --add, providers and retire --delete on the real server', async (t) => {
    if (!resolveTemporalCli({ build: true })) {
      if (REQUIRE_ALL) throw new Error('Temporal CLI unavailable');
      return t.skip('Temporal CLI unavailable');
    }
    const root = tmpDir('pv-ops-');
    const src = path.join(root, 'src');
    writeTree(src, { 'weights.bin': bytesOf(3 * MiB + 7, 'ops'), 'cfg.json': '{"a":1}' });
    const home = path.join(root, 'home');
    const env = {
      PROVENANT_DATA_DIR: home,
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      PROVENANT_EMBEDDED: 'auto',
    };
    const pieces = (id: string) => path.join(home, 'providers', id, 'pieces');
    const a = await run(['archive', src, '--id', 'ops-a', '--replicas', '2', '--json'], env);
    assert.equal(a.code, 0, a.stderr);

    // verify: every replica's result and the round's detection probability.
    const v = await run(['verify', 'ops-a', '--json'], env);
    assert.equal(v.code, 0, v.stderr);
    const vr = json<{ health: string; detectionProbability: number; replicas: Row[] }>(v);
    assert.equal(vr.health, 'healthy');
    assert.ok(vr.detectionProbability > 0 && vr.detectionProbability <= 1, String(vr.detectionProbability));
    assert.ok(vr.replicas.length >= 4, 'manifest and shards, 2 copies each');
    assert.ok(vr.replicas.every((r) => r.state === 'healthy'));
    const human = await run(['verify', 'ops-a'], env);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /healthy \(\d+\/\d+ replicas healthy/);

    // repair: a shard copy deleted behind the steward's back is replaced in the round.
    const shard = vr.replicas.find((r) => r.shard >= 0)!;
    fs.rmSync(path.join(pieces(shard.providerId), `${shard.pieceCid}.car`));
    const rp = await run(['repair', 'ops-a', '--json'], env);
    assert.equal(rp.code, 0, rp.stderr);
    const rpr = json<{ repaired: number; health: string; replicas: Row[] }>(rp);
    assert.ok(rpr.repaired >= 1, rp.stdout);
    assert.equal(rpr.health, 'healthy');
    assert.equal(rpr.replicas.filter((r) => r.pieceCid === shard.pieceCid && r.state === 'healthy').length, 2);

    // replicas --add: the target rises and a round places the new copies.
    const bad = await run(['replicas', 'ops-a', '--add', '0'], env);
    assert.equal(bad.code, 2, 'a usage error');
    const add = await run(['replicas', 'ops-a', '--add', '1', '--json'], env);
    assert.equal(add.code, 0, add.stderr);
    const ar = json<{ copies: number; copiesBefore: number; minHealthyCopies: number; placed: boolean }>(add);
    assert.equal(ar.copiesBefore, 2);
    assert.equal(ar.copies, 3);
    assert.equal(ar.minHealthyCopies, 3);
    assert.equal(ar.placed, true);

    // providers: reachable, not cooling, and the pieces the replica table puts on each.
    const pv = await run(['providers', '--json'], env);
    assert.equal(pv.code, 0, pv.stderr);
    const rows = json<{
      providers: { id: string; reachable: boolean; cooling: boolean; pieces: number; bytes: number }[];
    }>(pv).providers;
    assert.deepEqual(
      rows.map((r) => r.id),
      ['local-1', 'local-2', 'local-3'],
    );
    const perPiece = new Set(vr.replicas.map((r) => r.pieceCid)).size;
    for (const r of rows) {
      assert.equal(r.reachable, true);
      assert.equal(r.cooling, false);
      assert.equal(r.pieces, perPiece, `${r.id}: one copy of each piece`);
      assert.ok(r.bytes > 3 * MiB);
    }
    // A provider shut down (its directory gone) is reported unreachable, and the command says so.
    fs.renameSync(path.join(home, 'providers', 'local-3'), path.join(home, 'providers', 'local-3.off'));
    const down = await run(['providers', '--json', '--no-usage'], env);
    assert.equal(down.code, 1);
    const downRows = json<{ providers: { id: string; reachable: boolean; pieces?: number }[] }>(down).providers;
    assert.equal(downRows.find((r) => r.id === 'local-3')?.reachable, false);
    assert.equal(downRows.find((r) => r.id === 'local-1')?.reachable, true);
    assert.equal(downRows[0]!.pieces, undefined, '--no-usage reads no table');
    fs.renameSync(path.join(home, 'providers', 'local-3.off'), path.join(home, 'providers', 'local-3'));

    // retire: refused without --yes when stdin is not a terminal; with --delete every replica goes.
    const refused = await run(['retire', 'ops-a'], env);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /^provenant: UsageError: .*--yes/m);
    const ret = await run(['retire', 'ops-a', '--yes', '--delete', '--json'], env);
    assert.equal(ret.code, 0, ret.stderr);
    const rr = json<{ retired: boolean; deletion: { deleted: number; failed: number; tableBlocks: number } }>(ret);
    assert.equal(rr.retired, true);
    assert.equal(rr.deletion.failed, 0);
    assert.equal(rr.deletion.deleted, 3 * perPiece, 'every replica of every piece');
    assert.ok(rr.deletion.tableBlocks > 0);
    // Only the audit records are left on the providers.
    const audit = await run(['audit', 'ops-a', '--json'], env);
    assert.equal(audit.code, 0, audit.stderr);
    const log = json<{ records: { kind: string; result: string }[]; problems: unknown[] }>(audit);
    assert.deepEqual(log.problems, []);
    const asked = log.records.findIndex((r) => r.kind === 'retire' && /deleting every replica/.test(r.result));
    const done = log.records.findIndex((r) => r.kind === 'retire' && /^deleted \d+ replicas/.test(r.result));
    assert.ok(asked >= 0 && done > asked, 'the retirement is audited before the deletion, and what went after it');
    for (const pieceCid of new Set(rpr.replicas.map((r) => r.pieceCid)))
      for (const id of ['local-1', 'local-2', 'local-3'])
        assert.equal(fs.existsSync(path.join(pieces(id), `${pieceCid}.car`)), false, `${pieceCid} still at ${id}`);
    const again = await run(['retire', 'ops-a', '--yes', '--json'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(json<{ alreadyRetired: boolean }>(again).alreadyRetired, true);
  });

  it('retire on a terminal asks for the dataset id and retires only when it is typed', async (t) => {
    if (!resolveTemporalCli({ build: true })) {
      if (REQUIRE_ALL) throw new Error('Temporal CLI unavailable');
      return t.skip('Temporal CLI unavailable');
    }
    // util-linux `script` gives the CLI a pseudo-terminal.
    if (spawnSync('script', ['--version']).status !== 0) {
      if (REQUIRE_ALL) throw new Error('script (util-linux) unavailable');
      return t.skip('script (util-linux) unavailable: no pseudo-terminal');
    }
    const root = tmpDir('pv-ops-tty-');
    writeTree(path.join(root, 'src'), { 'a.txt': 'a' });
    const env = {
      PROVENANT_DATA_DIR: path.join(root, 'home'),
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      PROVENANT_EMBEDDED: 'auto',
    };
    assert.equal((await run(['archive', path.join(root, 'src'), '--id', 'ops-tty'], env)).code, 0);
    const onTty = (answer: string) =>
      new Promise<Run>((resolve) => {
        const cmd = [process.execPath, CLI, 'retire', 'ops-tty'].map((a) => `'${a}'`).join(' ');
        const p = spawn('script', ['-qec', cmd, '/dev/null'], { env: { ...baseEnv(), ...env } });
        let stdout = '';
        p.stdout.on('data', (d) => (stdout += d));
        p.stdin.end(`${answer}\n`);
        p.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr: '' }));
      });
    const no = await onTty('something-else');
    assert.equal(no.code, 1, no.stdout);
    assert.match(no.stdout, /Type the dataset id to confirm/);
    assert.match(no.stdout, /not retired/);
    const yes = await onTty('ops-tty');
    assert.equal(yes.code, 0, yes.stdout);
    assert.match(yes.stdout, /retired ops-tty/);
    assert.match(yes.stdout, /replicas left in place/);
  });

  it('rehome moves a dataset off a provider that is shut down: nothing lost, every step audited', async (t) => {
    if (!resolveTemporalCli({ build: true })) {
      if (REQUIRE_ALL) throw new Error('Temporal CLI unavailable');
      return t.skip('Temporal CLI unavailable');
    }
    const root = tmpDir('pv-ops-rehome-');
    const src = path.join(root, 'src');
    writeTree(src, { 'a.bin': bytesOf(5 * MiB + 3, 'rehome-cli'), 'b/c.txt': 'c' });
    const home = path.join(root, 'home');
    const env = {
      PROVENANT_DATA_DIR: home,
      TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
      PROVENANT_EMBEDDED: 'auto',
    };
    const a = await run(['archive', src, '--id', 'ops-b', '--replicas', '2', '--json'], env);
    assert.equal(a.code, 0, a.stderr);
    const v = await run(['verify', 'ops-b', '--json'], env);
    const onLocal1 = json<{ replicas: Row[] }>(v).replicas.filter((r) => r.providerId === 'local-1');
    assert.ok(onLocal1.length > 0, 'the placement used local-1');

    fs.renameSync(path.join(home, 'providers', 'local-1'), path.join(home, 'providers', 'local-1.shutdown'));
    const usage = await run(['rehome'], env);
    assert.equal(usage.code, 2, '--from is required');
    const r = await run(['rehome', '--from', 'local-1', '--json'], env);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const rr = json<{ done: boolean; datasets: number; completed: number; moved: number; remaining: number }>(r);
    assert.equal(rr.done, true);
    assert.equal(rr.datasets, 1);
    assert.equal(rr.completed, 1);
    assert.equal(rr.moved, onLocal1.length);
    assert.equal(rr.remaining, 0);

    const after = await run(['verify', 'ops-b', '--json'], env);
    assert.equal(after.code, 0, after.stderr);
    const reps = json<{ replicas: Row[] }>(after).replicas;
    assert.equal(reps.filter((x) => x.providerId === 'local-1').length, 0);
    assert.ok(reps.every((x) => x.state === 'healthy'));
    assert.equal(reps.length, json<{ replicas: Row[] }>(v).replicas.length, 'as many copies as before');

    // Every move is in the log: a verified new copy, then the old one dropped.
    const audit = json<{
      records: { kind: string; pieceCid?: string; providerId?: string; result: string }[];
      problems: unknown[];
    }>(await run(['audit', 'ops-b', '--json'], env));
    assert.deepEqual(audit.problems, []);
    for (const old of onLocal1) {
      const ev = audit.records.filter((x) => x.kind === 'rehome' && x.pieceCid === old.pieceCid);
      assert.ok(
        ev.some((x) => x.providerId !== 'local-1' && x.result.startsWith('new copy verified')),
        JSON.stringify(ev),
      );
      const i = ev.findIndex((x) => x.providerId === 'local-1' && x.result.startsWith('dropped from the table'));
      assert.ok(i > 0, 'the old copy goes after the new one verified');
    }

    // Nothing lost: the restore is byte-identical, without the provider that is gone.
    const target = path.join(root, 'out');
    const res = await run(['restore', 'ops-b', target, '--json'], env);
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(readTree(target), readTree(src));

    // Run again: nothing left to move, it says so at once.
    const again = await run(['rehome', '--from', 'local-1', '--json'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(json<{ remaining: number; completed: number }>(again).remaining, 0);

    // More copies than providers left: not placed, and verify says the dataset is not healthy.
    const add = await run(['replicas', 'ops-b', '--add', '1', '--json'], env);
    assert.equal(add.code, 1);
    assert.equal(json<{ placed: boolean }>(add).placed, false);
    const deg = await run(['verify', 'ops-b', '--json'], env);
    assert.equal(deg.code, 1);
    assert.equal(json<{ health: string }>(deg).health, 'degraded');
  });
});
