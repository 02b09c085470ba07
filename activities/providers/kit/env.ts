/**
 * Credentials are named in the config by environment variable and read when a provider or
 * source is built, so secrets never enter workflow history. This is the one place they are read.
 */
import { ConfigError } from '../../errors.js';

export interface RequireEnvOptions {
  /** Config path of the field that names the variable (`providers.r2.accessKeyIdEnv`, `source.authorizationEnv`). */
  path: string;
  /** Where to read it (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** A shape the value must have, and how to say it in the error. */
  format?: { pattern: RegExp; description: string };
}

/** The value of `name`; ConfigError (issue at `path`) when it is unset, empty or malformed. */
export function requireEnv(name: string, o: RequireEnvOptions): string {
  const value = (o.env ?? process.env)[name];
  const issue = !value
    ? `environment variable ${name} is not set`
    : o.format && !o.format.pattern.test(value)
      ? `environment variable ${name} does not hold ${o.format.description}`
      : undefined;
  if (issue) throw new ConfigError(`${o.path}: ${issue}`, [{ path: o.path, message: issue }]);
  return value!;
}
