/**
 * The CLI's output and usage errors, with no imports: what `provenant --help` and every command's
 * argument parsing need before anything heavy is loaded (cli/kit.ts re-exports them).
 */
/** Bad command-line use: exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export interface Out {
  json: boolean;
  info(msg: string): void;
  result(value: unknown, human: string): void;
}

export function makeOut(json: boolean): Out {
  return {
    json,
    info: (m) => {
      if (!json) process.stderr.write(`${m}\n`);
    },
    result: (v, human) => {
      if (json) process.stdout.write(JSON.stringify(v, null, 2) + '\n');
      else process.stdout.write(human + '\n');
    },
  };
}

export function humanBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  for (; n >= 1024 && i < u.length - 1; i++) n /= 1024;
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}
