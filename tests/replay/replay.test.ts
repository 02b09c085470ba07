/**
 * Replay: histories of real runs, captured from the code before the shared/ refactor (see
 * capture.md), must replay against today's workflows. Stewards run for years, so a change that
 * breaks these breaks every running steward. No server needed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { historyFromJSON, type History } from '@temporalio/common/lib/proto-utils.js';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';

/**
 * The workflows module workers load: workers/plugin.ts exports this same path (checked below). Not
 * imported from the plugin here, so replay does not depend on the activities loading.
 */
const workflowsPath = fileURLToPath(new URL('../../workflows/index.js', import.meta.url));

/** tests/replay in the source tree (this file runs from dist/tests/replay). */
const replayDir = fileURLToPath(new URL('../../../tests/replay/', import.meta.url));
const fixturesDir = path.join(replayDir, 'fixtures');

interface FixtureEntry {
  file: string;
  workflowType: string;
  workflowId: string;
  runId: string;
  status: string;
  events: number;
  notes: string;
}
const index = JSON.parse(fs.readFileSync(path.join(fixturesDir, 'index.json'), 'utf8')) as {
  capturedFrom: string;
  fixtures: FixtureEntry[];
};

/**
 * A fixture as a History. `historyFromJSON` (what runReplayHistory applies to JSON) throws
 * "type must be a Type" when npm installs several copies of protobufjs (its protojson and
 * @temporalio/proto's types come from different copies); then parse with the protojson of the
 * copy @temporalio/proto loads. The fixtures are in the JSON format of Temporal's tools either way.
 */
function loadHistory(file: string): History {
  const json: unknown = JSON.parse(fs.readFileSync(path.join(fixturesDir, file), 'utf8'));
  try {
    return historyFromJSON(json);
  } catch (err) {
    if (!(err instanceof TypeError) || !/must be a Type/.test(err.message)) throw err;
    const protoRequire = createRequire(createRequire(import.meta.url).resolve('@temporalio/proto'));
    const proto = protoRequire('@temporalio/proto');
    const { patchProtobufRoot } = protoRequire('@temporalio/proto/lib/patch-protobuf-root');
    const type = patchProtobufRoot(proto).lookupType('temporal.api.history.v1.History');
    return protoRequire('protobufjs/ext/protojson').fromJson(type, json, { ignoreUnknownFields: true }) as History;
  }
}

const entry = (file: string) => {
  const e = index.fixtures.find((f) => f.file === file);
  assert.ok(e, `${file} is in fixtures/index.json`);
  return e;
};

describe('replay of histories captured before the refactor', () => {
  before(() => {
    try {
      Runtime.install({ logger: new DefaultLogger('ERROR') });
    } catch {
      // already installed in this process
    }
  });

  it('has the fixtures of every workflow, including both steward runs', () => {
    const files = index.fixtures.map((f) => f.file).sort();
    assert.deepEqual(files, [
      'archive.json',
      'fleet-sweep.json',
      'restore.json',
      'steward-run1.json',
      'steward-run2.json',
    ]);
    for (const f of index.fixtures) {
      const h = loadHistory(f.file);
      assert.equal(h.events?.length, f.events, `${f.file}: event count`);
      assert.equal(
        h.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name,
        f.workflowType,
        `${f.file}: workflow type`,
      );
    }
    assert.equal(entry('steward-run1.json').status, 'CONTINUED_AS_NEW');
    assert.equal(entry('steward-run2.json').status, 'CONTINUED_AS_NEW');
    // The second run is the one the first continued into.
    const run1 = loadHistory('steward-run1.json');
    const can = run1.events!.at(-1)!.workflowExecutionContinuedAsNewEventAttributes;
    assert.ok(can, 'run 1 ends in continue-as-new');
    const run2 = loadHistory('steward-run2.json');
    assert.equal(
      run2.events![0]!.workflowExecutionStartedEventAttributes!.continuedExecutionRunId,
      entry('steward-run1.json').runId,
    );
  });

  it('replays against the workflows module the plugin registers', async () => {
    const plugin = await import('../../workers/plugin.js');
    assert.equal(plugin.workflowsPath, workflowsPath);
  });

  for (const f of index.fixtures) {
    it(`${f.file} (${f.workflowType}, captured at ${index.capturedFrom}) replays against today's workflows`, async () => {
      await Worker.runReplayHistory(
        { workflowsPath, replayName: f.file.replace(/\.json$/, '') },
        loadHistory(f.file),
        f.workflowId,
      );
    });
  }

  describe('a changed workflow fails replay', () => {
    let dir: string;
    before(() => {
      // Workflow modules written at test time; node_modules links to ours so the bundler finds the SDK.
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pv-replay-changed-'));
      const nodeModules = path.resolve(
        createRequire(import.meta.url).resolve('@temporalio/workflow/package.json'),
        '../../..',
      );
      fs.symlinkSync(nodeModules, path.join(dir, 'node_modules'));
      const current = JSON.stringify(pathToFileURL(workflowsPath).pathname);
      // The steward sleeps before its first audit: a timer where the history has an activity.
      fs.writeFileSync(
        path.join(dir, 'steward-extra-timer.js'),
        `import { sleep } from '@temporalio/workflow';\nimport { stewardDataset as current } from ${current};\nexport * from ${current};\n` +
          `export async function stewardDataset(state) { await sleep('1 minute'); return current(state); }\n`,
      );
      // The archive's first activity renamed.
      fs.writeFileSync(
        path.join(dir, 'archive-renamed-activity.js'),
        `import { proxyActivities } from '@temporalio/workflow';\nexport * from ${current};\n` +
          `const { provenantHostQueueRenamed } = proxyActivities({ startToCloseTimeout: '1 minute' });\n` +
          `export async function archiveDataset(input) { await provenantHostQueueRenamed(input); }\n`,
      );
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('a steward that starts a timer first is a determinism violation on steward-run1.json', async () => {
      const f = entry('steward-run1.json');
      await assert.rejects(
        Worker.runReplayHistory(
          { workflowsPath: path.join(dir, 'steward-extra-timer.js'), replayName: 'changed-steward' },
          loadHistory(f.file),
          f.workflowId,
        ),
        DeterminismViolationError,
      );
    });

    it('an archive that schedules a different activity is a determinism violation on archive.json', async () => {
      const f = entry('archive.json');
      await assert.rejects(
        Worker.runReplayHistory(
          { workflowsPath: path.join(dir, 'archive-renamed-activity.js'), replayName: 'changed-archive' },
          loadHistory(f.file),
          f.workflowId,
        ),
        DeterminismViolationError,
      );
    });
  });
});
