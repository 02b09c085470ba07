/**
 * The reliability suites' tally (issue: crashes, faults, corruption, bad input, secrets, fuzz).
 * Each suite records what it ran with `recordReliability`; the `npm test` reporter
 * (require-all-reporter.ts) prints one table of every record at the end of the run. Records go to
 * a JSON-lines file keyed by the test runner's pid (the parent of each test file's process), so a
 * suite run on its own (`node --test dist/tests/reliability/x.test.js`) prints its table too.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface ReliabilityRecord {
  /** The suite, e.g. 'crash (worker SIGKILL)', 'fault proxy (MinIO)', 'corruption (kubo)'. */
  suite: string;
  trials: number;
  faultsInjected: number;
  faultsDetected: number;
  /** Files or bytes not restored byte-identical at the end: must be 0. */
  dataLost: number;
}

/** Where the records of the test run with runner pid `pid` go. */
export const reliabilityLogOf = (pid: number): string => path.join(os.tmpdir(), `provenant-reliability-${pid}.jsonl`);

export function recordReliability(r: ReliabilityRecord): void {
  fs.appendFileSync(reliabilityLogOf(process.ppid), JSON.stringify(r) + '\n');
}

/** The table of the records in `file` (summed per suite) and the data lost in all, or undefined when there are none. */
export function reliabilityTable(file: string): { text: string; dataLost: number } | undefined {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const bySuite = new Map<string, ReliabilityRecord>();
  for (const line of raw.split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as ReliabilityRecord;
    const t = bySuite.get(r.suite) ?? { suite: r.suite, trials: 0, faultsInjected: 0, faultsDetected: 0, dataLost: 0 };
    t.trials += r.trials;
    t.faultsInjected += r.faultsInjected;
    t.faultsDetected += r.faultsDetected;
    t.dataLost += r.dataLost;
    bySuite.set(r.suite, t);
  }
  if (bySuite.size === 0) return undefined;
  const rows = [...bySuite.values()];
  const total = rows.reduce(
    (a, r) => ({
      suite: 'total',
      trials: a.trials + r.trials,
      faultsInjected: a.faultsInjected + r.faultsInjected,
      faultsDetected: a.faultsDetected + r.faultsDetected,
      dataLost: a.dataLost + r.dataLost,
    }),
    { suite: 'total', trials: 0, faultsInjected: 0, faultsDetected: 0, dataLost: 0 },
  );
  const head = ['suite', 'trials', 'faults injected', 'faults detected', 'data lost'];
  const cells = [...rows, total].map((r) => [
    r.suite,
    String(r.trials),
    String(r.faultsInjected),
    String(r.faultsDetected),
    String(r.dataLost),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const fmt = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join(' | ');
  const text = [
    'reliability summary',
    fmt(head),
    widths.map((w) => '-'.repeat(w)).join('-|-'),
    ...cells.slice(0, -1).map(fmt),
    widths.map((w) => '-'.repeat(w)).join('-|-'),
    fmt(cells[cells.length - 1]!),
  ].join('\n');
  return { text, dataLost: total.dataLost };
}
