/**
 * Commands that live in a file of their own (cli/commands/<name>.ts), each built with `command()`
 * from ./run.js. A command's module is loaded only when it runs, so that `provenant status` and
 * `--help` load none of them: the usage line is repeated here (tests/cli/commands.test.ts checks
 * that it equals the module's). Add one entry per command.
 */
import type { Command } from './run.js';

/** A command whose module is imported when it runs. */
export function lazy(usage: string, load: () => Promise<Command>): Command & { load: () => Promise<Command> } {
  return { usage, load, run: async (argv) => (await load()).run(argv) };
}

export const COMMANDS: Record<string, Command & { load: () => Promise<Command> }> = {
  verify: lazy(
    'verify <dataset> [--full]   a verification round now; exit 1 unless healthy after it',
    async () => (await import('./verify.js')).verify,
  ),
  repair: lazy(
    'repair <dataset>   verify every shard now and repair what failed; exit 1 unless healthy after it',
    async () => (await import('./repair.js')).repair,
  ),
  replicas: lazy(
    'replicas <dataset> [--add N]   copies per piece; --add N raises the target and waits for a round to place them',
    async () => (await import('./replicas.js')).replicas,
  ),
  retire: lazy(
    'retire <dataset> [--yes] [--delete]   end stewardship; --delete also deletes every replica',
    async () => (await import('./retire.js')).retire,
  ),
  providers: lazy(
    'providers [--no-usage]   each provider: reachable now, cooling down, pieces and bytes stored',
    async () => (await import('./providers.js')).providers,
  ),
  rehome: lazy(
    'rehome --from PROVIDER [--to PROVIDER]... [--detach]   move every dataset off a provider',
    async () => (await import('./rehome.js')).rehome,
  ),
  'codec-server': lazy(
    'codec-server [--port N] [--host H] [--origin URL]...   decode encrypted payloads for the Web UI and CLI',
    async () => (await import('./codec-server.js')).codecServerCommand,
  ),
  evidence: lazy(
    'evidence <dataset|manifest-cid> --out FILE   a self-contained evidence bundle (CAR) for verify-evidence',
    async () => (await import('./evidence.js')).evidence,
  ),
  report: lazy(
    'report [--out FILE] [--limit N]   one offline HTML page: health, replicas, verifications, expiries, audit, evidence',
    async () => (await import('./report.js')).report,
  ),
  'verify-evidence': lazy(
    'verify-evidence FILE [--trust PUBKEY.pem]... [--source DIR | --restored DIR]   check a bundle offline',
    async () => (await import('./verify-evidence.js')).verifyEvidenceCommand,
  ),
};
