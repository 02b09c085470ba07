/** The frame of a command in its own file: argument parsing, config, output, exit codes. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadConfig } from '../../config/load.js';
import type { Config } from '../../config/schema.js';
import { failureReason, makeOut, UsageError, type Out } from '../kit.js';

export interface Command {
  /** One usage line, without the leading 'provenant '. */
  usage: string;
  /** Run with the arguments after the command name; resolves to the exit code. */
  run(argv: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

export interface CommandContext {
  config: Config;
  out: Out;
  positionals: string[];
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
}

/**
 * A command with its own options (--json and --config are added). `body` returns the exit code
 * (0 when it returns nothing). A UsageError exits 2; any other failure prints its one-line reason
 * (and `{"error": …}` with --json) and exits 1.
 */
export function command(
  usage: string,
  options: Options,
  body: (ctx: CommandContext) => Promise<number | void>,
): Command {
  return {
    usage,
    async run(argv) {
      let parsed;
      try {
        parsed = parseArgs({
          args: argv,
          allowPositionals: true,
          options: { ...options, json: { type: 'boolean' }, config: { type: 'string' } },
        });
      } catch (err) {
        process.stderr.write(`provenant: UsageError: ${(err as Error).message}\nusage: provenant ${usage}\n`);
        return 2;
      }
      const out = makeOut(!!parsed.values.json);
      try {
        const config = loadConfig({ file: parsed.values.config as string | undefined });
        return (await body({ config, out, positionals: parsed.positionals, values: parsed.values })) ?? 0;
      } catch (err) {
        const reason = failureReason(err).split('\n')[0];
        if (out.json) process.stdout.write(JSON.stringify({ error: reason }) + '\n');
        process.stderr.write(`provenant: ${reason}\n`);
        if (err instanceof UsageError) process.stderr.write(`usage: provenant ${usage}\n`);
        return err instanceof UsageError ? 2 : 1;
      }
    },
  };
}
