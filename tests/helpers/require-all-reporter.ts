/**
 * A `node --test` reporter that turns every skipped test into a failure of the run when
 * PROVENANT_REQUIRE_ALL=1 (CI), whatever skipped it: a helper's skip rule, a direct `t.skip()`,
 * `it.skip`. It runs beside the spec reporter (see `npm test`), which still prints every result
 * and the closing summary; this one names each skipped test on stderr as it happens and sets the
 * exit code. Without PROVENANT_REQUIRE_ALL=1 it prints nothing and changes nothing.
 *
 * At the end of the run it prints the reliability suites' summary table (tests/helpers/reliability.ts),
 * when any suite recorded trials, and fails the run if any data was lost.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { reliabilityLogOf, reliabilityTable } from './reliability.js';

interface TestEvent {
  type: string;
  data: { name?: string; file?: string; skip?: string | boolean };
}

/** Node 20 reports tests left out by --test-name-pattern as skipped, with this reason: those were not asked for. */
const FILTERED = 'test name does not match pattern';
const filtering = [...process.execArgv, ...process.argv].some((a) => /^--test-(name|skip)-pattern/.test(a));

export default async function* requireAll(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const on = process.env.PROVENANT_REQUIRE_ALL === '1';
  for await (const event of source) {
    if (!on || (event.type !== 'test:pass' && event.type !== 'test:fail')) continue;
    const { skip, name, file } = event.data;
    if (skip === undefined || skip === false || (filtering && skip === FILTERED)) continue;
    process.exitCode = 1;
    const why = typeof skip === 'string' ? `: ${skip}` : '';
    yield `PROVENANT_REQUIRE_ALL=1: a skipped test fails the run: '${name}' (${file ?? 'unknown file'})${why}\n`;
  }
  sweepTmpRoots();
  const log = reliabilityLogOf(process.pid);
  const table = reliabilityTable(log);
  fs.rmSync(log, { force: true });
  if (table) {
    if (table.dataLost > 0) process.exitCode = 1;
    yield `\n${table.text}\n`;
  }
}

/**
 * Remove the temp roots (tests/helpers/env.ts `tmpDir`) of test processes that are gone: those
 * that exited removed their own, this catches the killed ones. A live process's root is kept, so
 * two runs at once do not disturb each other.
 */
function sweepTmpRoots(): void {
  const tmp = os.tmpdir();
  for (const name of fs.readdirSync(tmp)) {
    const m = /^pv-run-(\d+)$/.exec(name);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
      continue; // still running
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') continue;
    }
    try {
      fs.rmSync(path.join(tmp, name), { recursive: true, force: true, maxRetries: 2 });
    } catch {
      // a mount inside it, or files being written by an orphaned server: left for the next run
    }
  }
}
