/**
 * Loading the configuration: `${NAME}` environment substitution, the `REDIS_URL`,
 * `REDIS_CLUSTER_NODES` and `PORT` overrides, validation against `ConfigSchema`, and start-up warnings.
 *
 * Every problem is reported at once, each as `path.to.field: message`, in a `ConfigError`.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { describeZodIssues } from '../core/describe-zod-issues.js';
import { ConfigSchema, crossFieldIssues, type Config } from './schema.js';

export type Env = Record<string, string | undefined>;

/** An invalid configuration; `issues` names every bad field by its path, one per entry. */
export class ConfigError extends Error {
  readonly issues: string[];

  constructor(issues: string[], heading = 'invalid configuration') {
    super(`${heading}:\n${issues.map((issue) => `  - ${issue}`).join('\n')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

type PathSegment = string | number;
type RawIssue = { path: PathSegment[]; message: string };

const ENV_REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Formats raw issues with the shared formatter, so that every message has the same path style. */
function describe(issues: RawIssue[]): string[] {
  if (issues.length === 0) return [];
  const error = new z.ZodError(
    issues.map((issue) => ({ code: 'custom' as const, path: issue.path, message: issue.message, input: undefined })),
  );
  return describeZodIssues(error);
}

/** What a variable that is not set stands for at `path`, or undefined when that is an error. */
type UnsetFallback = (name: string, path: readonly PathSegment[]) => string | undefined;

function substituteCollect(raw: unknown, env: Env, path: PathSegment[], issues: RawIssue[], fallback?: UnsetFallback): unknown {
  if (typeof raw === 'string') {
    // `"${NAME}"` and `"Bearer ${NAME}"` alike: every reference in the string is replaced.
    return raw.replace(ENV_REFERENCE, (reference, name: string) => {
      const value = env[name] ?? fallback?.(name, path);
      if (value !== undefined) return value;
      issues.push({ path, message: `environment variable ${name} is not set` });
      return reference;
    });
  }
  if (Array.isArray(raw)) return raw.map((item, index) => substituteCollect(item, env, [...path, index], issues, fallback));
  if (isPlainObject(raw)) {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(raw)) {
      // defineProperty, so that a key named "__proto__" stays an ordinary (and rejected) field.
      Object.defineProperty(out, key, {
        value: substituteCollect(value, env, [...path, key], issues, fallback),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return raw;
}

/**
 * Returns a copy of `raw` in which every `${NAME}` inside a string value (`"${TOKEN}"`,
 * `"Bearer ${TOKEN}"`) is replaced by the environment variable `NAME`. Object keys are left as
 * they are. Throws a `ConfigError` naming every reference to a variable that is
 * not set.
 */
export function substituteEnv(raw: unknown, env: Env = process.env): unknown {
  const issues: RawIssue[] = [];
  const result = substituteCollect(raw, env, [], issues);
  if (issues.length > 0) throw new ConfigError(describe(issues));
  return result;
}

function isUnder(path: readonly PropertyKey[], prefix: readonly PathSegment[]): boolean {
  return prefix.length <= path.length && prefix.every((segment, index) => path[index] === segment);
}

/**
 * Applies `REDIS_URL`, `REDIS_CLUSTER_NODES` and `PORT` to the (already copied) raw configuration;
 * returns the paths it overrode.
 */
function applyEnvOverrides(config: unknown, env: Env, issues: RawIssue[]): PathSegment[][] {
  const overridden: PathSegment[][] = [];
  if (!isPlainObject(config)) return overridden;
  const redisUrl = env.REDIS_URL;
  if (redisUrl !== undefined && redisUrl !== '') {
    config.redis = { ...(isPlainObject(config.redis) ? config.redis : {}), url: redisUrl };
    overridden.push(['redis', 'url']);
  }
  const clusterNodes = env.REDIS_CLUSTER_NODES;
  if (clusterNodes !== undefined && clusterNodes.trim() !== '') {
    const nodes = clusterNodes.split(',').map((node) => node.trim()).filter((node) => node !== '');
    config.redis = { ...(isPlainObject(config.redis) ? config.redis : {}), clusterNodes: nodes };
    overridden.push(['redis', 'clusterNodes']);
  }
  const port = env.PORT;
  if (port !== undefined && port !== '') {
    const trimmed = port.trim();
    if (/^\d{1,5}$/.test(trimmed)) {
      config.listen = { ...(isPlainObject(config.listen) ? config.listen : {}), port: Number(trimmed) };
    } else {
      issues.push({ path: ['listen', 'port'], message: `the PORT environment variable ("${port}") is not a port number` });
    }
    overridden.push(['listen', 'port']);
  }
  return overridden;
}

/** Zod reports unknown fields once per object; name each of them by its own path instead. */
function expandIssues(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue[] {
  const out: z.core.$ZodIssue[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push({ code: 'custom', path: [...issue.path, key], message: 'unknown field', input: undefined });
      }
    } else {
      out.push(issue);
    }
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

export interface LoadOptions {
  /**
   * The top-level sections the caller uses. Outside them, a `${NAME}` whose variable is not set
   * stands for an inert placeholder instead of failing the file: the operator commands talk only
   * to Redis and need no upstream token or signing secret in their environment.
   */
  readonly needs?: readonly string[];
}

/** Whether the file or `REDIS_CLUSTER_NODES` names cluster nodes (then `redis.url` is not used). */
function clusterNodesGiven(raw: unknown, env: Env): boolean {
  if ((env.REDIS_CLUSTER_NODES ?? '').trim() !== '') return true;
  const redis = isPlainObject(raw) ? raw.redis : undefined;
  return isPlainObject(redis) && Array.isArray(redis.clusterNodes) && redis.clusterNodes.length > 0;
}

/**
 * On a cluster, an unset variable in the unused `redis.url` (a manifest written for one Redis,
 * `"${REDIS_URL}"`) stands for a placeholder URL instead of failing the file.
 */
const unusedRedisUrl: UnsetFallback = (name, path) => (path[0] === 'redis' && path[1] === 'url' ? `redis://unset.invalid/${name}` : undefined);

/** Sections the operator commands (`ttl`, `invalidate`, `events`, `replay`) read. */
export const OPERATOR_COMMAND_NEEDS = ['redis', 'cards', 'defaults', 'events', 'budgetMs'] as const;

/**
 * Placeholders for unset variables outside `needs`: a URL where the field is a URL (it must still
 * validate), else a string naming the variable. Never sent anywhere: whoever asks for them does
 * not call upstreams or Plain.
 */
function inertOutside(needs: readonly string[]): UnsetFallback {
  return (name, path) => {
    if (needs.includes(String(path[0]))) return undefined;
    return path.at(-1) === 'url' ? `http://unset.invalid/${name}` : `unset:${name}`;
  };
}

/**
 * Validates a raw (JSON-parsed) configuration: `${NAME}` substitution, then `REDIS_URL` (overrides
 * `redis.url`), `REDIS_CLUSTER_NODES` (comma-separated, overrides `redis.clusterNodes`) and `PORT`
 * (overrides `listen.port`), then the schema. Returns the fully defaulted
 * configuration, deep-frozen; throws a `ConfigError` naming every bad field by its path.
 */
export function parseConfig(raw: unknown, env: Env = process.env, opts: LoadOptions = {}): Config {
  const unset: RawIssue[] = [];
  const inert = opts.needs ? inertOutside(opts.needs) : undefined;
  const unusedUrl = clusterNodesGiven(raw, env) ? unusedRedisUrl : undefined;
  const substituted = substituteCollect(raw, env, [], unset, (name, path) => unusedUrl?.(name, path) ?? inert?.(name, path));
  const overrideIssues: RawIssue[] = [];
  const overridden = applyEnvOverrides(substituted, env, overrideIssues);
  // A reference to an unset variable does not matter where REDIS_URL or PORT replaces the value.
  const envIssues = [
    ...unset.filter((issue) => !overridden.some((path) => isUnder(issue.path, path))),
    ...overrideIssues,
  ];
  const unsetPaths = envIssues.map((issue) => issue.path);

  const result = ConfigSchema.safeParse(substituted);
  if (result.success && envIssues.length === 0) return deepFreeze(result.data);

  // A field whose variable is not set is reported once, as such, not again as e.g. a bad URL.
  const schemaIssues = result.success
    ? []
    : expandIssues(result.error.issues).filter((issue) => !unsetPaths.some((path) => isUnder(issue.path, path)));
  // zod skips refinements above a field whose check aborted; run the cross-field checks again on
  // the input so that they are reported in this run too (duplicates are dropped below).
  const crossIssues = result.success
    ? []
    : crossFieldIssues(substituted).filter((issue) => !unsetPaths.some((path) => isUnder(issue.path, path)));
  const issues = [
    ...describe(envIssues),
    ...(schemaIssues.length > 0 ? describeZodIssues(new z.ZodError(schemaIssues)) : []),
    ...describe(crossIssues),
  ];
  throw new ConfigError([...new Set(issues)]);
}

/**
 * Reads and validates a JSON configuration file. A missing or unreadable file, invalid JSON and
 * every invalid field are reported as a `ConfigError` mentioning the file.
 */
export function loadConfigFile(path: string, env: Env = process.env, opts: LoadOptions = {}): Config {
  const heading = `invalid configuration file ${path}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT'
        ? 'file not found'
        : code === 'EISDIR'
          ? 'is a directory, not a file'
          : code === 'EACCES'
            ? 'permission denied'
            : (error as Error).message;
    throw new ConfigError([`cannot read config file ${path}: ${reason}`], heading);
  }
  if (/\.ya?ml$/i.test(path)) {
    throw new ConfigError([`${path}: YAML configuration files are not supported; write the configuration as JSON`], heading);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    throw new ConfigError([`${path}: invalid JSON: ${(error as Error).message}`], heading);
  }
  try {
    return parseConfig(raw, env, opts);
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(error.issues, heading);
    throw error;
  }
}

/** Problems that do not stop the process but that an operator should hear about at start. */
export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  if (config.plain.signingSecrets.length === 0) {
    warnings.push('no plain.signingSecrets configured: requests to /cards are not authenticated');
  }
  let longest: { key: string; ttlSeconds: number; staleSeconds: number } | undefined;
  for (const [key, card] of Object.entries(config.cards)) {
    const ttlSeconds = card.ttlSeconds ?? config.defaults.ttlSeconds;
    const staleSeconds = card.staleSeconds ?? config.defaults.staleSeconds;
    if (!longest || ttlSeconds + staleSeconds > longest.ttlSeconds + longest.staleSeconds) {
      longest = { key, ttlSeconds, staleSeconds };
    }
  }
  const retention = config.events.retentionSeconds;
  if (longest && retention < longest.ttlSeconds + longest.staleSeconds) {
    const total = longest.ttlSeconds + longest.staleSeconds;
    warnings.push(
      `events.retentionSeconds (${retention}) is shorter than ttlSeconds + staleSeconds of card "${longest.key}" ` +
        `(${longest.ttlSeconds} + ${longest.staleSeconds} = ${total}): replay can only restore cards whose events are still retained`,
    );
  }
  if (config.redis.clusterNodes.length > 0 && config.events.shards === 1) {
    warnings.push('events.shards is 1 on a Redis Cluster: every card and the whole event log live in one slot, on one master');
  }
  return warnings;
}
