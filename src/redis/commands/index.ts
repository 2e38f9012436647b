/**
 * The Lua commands of the Redis layer, one `<name>.lua` file per operation (each file's header
 * names its KEYS and ARGV), read once when this module loads. `--- @include "<name>"` pulls in
 * `includes/<name>.lua` (code shared by several commands). ioredis sends a script once per
 * connection and then calls it by SHA.
 *
 * A script touches only the keys passed in its KEYS, all in one slot (the Redis Cluster rule); no
 * script builds a key name. `CardCommands` (../card-commands.ts) builds the key arrays.
 */
import { readFileSync } from 'node:fs';
import type { Cluster, Redis } from 'ioredis';

export const COMMAND_NAMES = [
  'claimRefresh',
  'reclaimRefresh',
  'releaseRefresh',
  'recordRefreshOutcome',
  'appendCardEvents',
  'replayCards',
  'setTtlOverride',
  'replaceOverrides',
  'markServed',
  'claimAwaitingReload',
  'pickExcessJobs',
] as const;

export type CommandName = (typeof COMMAND_NAMES)[number];

/** A client the commands can be defined on: one Redis, or a Redis Cluster. */
export type CommandClient = Redis | Cluster;

const INCLUDE = /^--- @include "([A-Za-z]+)"$/m;

function readScript(name: string, dir: URL): string {
  let lua = readFileSync(new URL(`${name}.lua`, dir), 'utf8');
  for (let match = INCLUDE.exec(lua); match; match = INCLUDE.exec(lua)) {
    lua = lua.replace(match[0], readFileSync(new URL(`includes/${match[1]}.lua`, dir), 'utf8'));
  }
  return lua;
}

/** Every command's Lua source, includes resolved. */
export const SCRIPTS: Readonly<Record<CommandName, string>> = Object.freeze(
  Object.fromEntries(COMMAND_NAMES.map((name) => [name, readScript(name, new URL('./', import.meta.url))])) as Record<CommandName, string>,
);

/** The name a command is defined under on a client (prefixed, so it cannot shadow a Redis command). */
const methodOf = (name: CommandName) => `cardproxy_${name}`;

/** Defines every command on `client` (once per client; its pipelines get them too). */
export function defineCommands(client: CommandClient): void {
  for (const name of COMMAND_NAMES) {
    if (typeof (client as unknown as Record<string, unknown>)[methodOf(name)] === 'function') continue;
    client.defineCommand(methodOf(name), { lua: SCRIPTS[name] });
  }
}

type Invoke = (numKeys: number, ...args: string[]) => unknown;

/** Runs a command defined by {@link defineCommands} on a client. */
export function runCommand<T>(target: CommandClient, name: CommandName, keys: readonly string[], args: readonly string[]): Promise<T> {
  const invoke = (target as unknown as Record<string, Invoke>)[methodOf(name)];
  if (typeof invoke !== 'function') throw new Error(`Redis command ${name} is not defined on this client`);
  return invoke.call(target, keys.length, ...keys, ...args) as Promise<T>;
}
