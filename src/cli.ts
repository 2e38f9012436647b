#!/usr/bin/env node
/**
 * The `cardproxy` command line (SPEC section 3).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { AdminCommandOptions, CommandEnv } from './cli/admin-commands.js';
import { ConfigError, loadConfigFile, OPERATOR_COMMAND_NEEDS, type LoadOptions } from './config/load.js';
import type { Config } from './config/schema.js';
import { createLogger, LogSecrets, routeConsoleWarnings } from './observability/logger.js';
import { configSecrets } from './config/secrets.js';
import type { Role } from './runtime/cardproxy.js';
import { applyV8Settings } from './runtime/v8-settings.js';
import { VERSION } from './version.js';

const USAGE = `cardproxy ${VERSION}: a caching proxy between Plain and slow customer-card APIs

Usage: cardproxy <command> [options]

Commands:
  start --config FILE        HTTP server and refresh worker in one process
  serve --config FILE        HTTP server only (run several behind a load balancer)
  worker --config FILE       refresh worker only (run several)
  replay --config FILE       rebuild the card cache and TTL overrides from the event log
  check-config FILE          validate a config file; exit 0, or 2 naming each bad field

Operator commands (talk to Redis directly; --json prints JSON instead of a table):
  ttl list                               configured cards and their TTL overrides
  ttl set KEY SECONDS                    set a run-time TTL override (all instances,
                                         cards loaded from now on)
  ttl clear KEY                          clear it
  invalidate --customer-id X | --email X | --external-id X
             [--workspace-id W] [--card-key K]... [--refresh] [--reason TEXT]
                                         mark a customer's cached cards stale;
                                         --refresh also queues their refresh now
  events [--customer-id X] [--card-key K] [--type T] [--limit N]
                                         newest events first (limit 1-1000, default 100)
  warm --workspace-id W (--customer-id X [--email E] [--external-id Y] | --file F)
       [--thread-id T] [--card-key K]...
                                         load customers' missing or stale cards now, at
                                         warming priority; F: one {"id","email"?,"externalId"?}
                                         JSON object per line

--config FILE may be replaced by the environment variable CARDPROXY_CONFIG.
REDIS_URL overrides redis.url, REDIS_CLUSTER_NODES (comma-separated) redis.clusterNodes,
PORT overrides listen.port, LOG_LEVEL sets the log level.
Exit codes: 0 done, 1 runtime failure (e.g. Redis unreachable), 2 usage or configuration error.
`;

type Options = NonNullable<ParseArgsConfig['options']>;

const COMMON = { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } } satisfies Options;
const JSON_OUTPUT = { json: { type: 'boolean' } } satisfies Options;
const CUSTOMER = {
  'customer-id': { type: 'string' },
  'card-key': { type: 'string', multiple: true },
} satisfies Options;
/** How `invalidate` and `warm` name a customer besides its id, and the workspace. */
const CUSTOMER_IDENTIFIERS = {
  email: { type: 'string' },
  'external-id': { type: 'string' },
  'workspace-id': { type: 'string' },
} satisfies Options;

/** The options each command accepts (anything else is a usage error). */
const COMMAND_OPTIONS: Record<string, Options> = {
  start: COMMON,
  serve: COMMON,
  worker: COMMON,
  'check-config': COMMON,
  replay: { ...COMMON, ...JSON_OUTPUT },
  ttl: { ...COMMON, ...JSON_OUTPUT },
  invalidate: {
    ...COMMON,
    ...JSON_OUTPUT,
    ...CUSTOMER,
    ...CUSTOMER_IDENTIFIERS,
    refresh: { type: 'boolean' },
    reason: { type: 'string' },
  },
  events: { ...COMMON, ...JSON_OUTPUT, ...CUSTOMER, type: { type: 'string' }, limit: { type: 'string' } },
  warm: {
    ...COMMON,
    ...JSON_OUTPUT,
    ...CUSTOMER,
    ...CUSTOMER_IDENTIFIERS,
    'thread-id': { type: 'string' },
    file: { type: 'string' },
  },
};

const ADMIN_COMMANDS = { replay: 'runReplay', ttl: 'runTtl', invalidate: 'runInvalidate', events: 'runEvents', warm: 'runWarm' } as const;

/** Exit codes: 0 done, 1 runtime failure, 2 usage or configuration error. */
async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const options = COMMAND_OPTIONS[command];
  if (!options) return usageError(`unknown command "${command}"`);
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (err) {
    return usageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const configFile = typeof values.config === 'string' ? values.config : process.env.CARDPROXY_CONFIG;
  switch (command) {
    case 'check-config': {
      const file = positionals[0] ?? configFile;
      if (!file) return usageError('check-config needs a FILE');
      const config = loadConfigOrReport(file);
      if (!config) return 2;
      process.stdout.write(`${file}: valid (${Object.keys(config.upstreams).length} upstreams, ${Object.keys(config.cards).length} cards)\n`);
      return 0;
    }
    case 'start':
    case 'serve':
    case 'worker':
      return runServer(command, configFile);
    default: {
      if (!configFile) return usageError(`${command} needs --config FILE or CARDPROXY_CONFIG`);
      // Only Redis and the card list: secrets they do not use need not be in the environment.
      const config = loadConfigOrReport(configFile, { needs: OPERATOR_COMMAND_NEEDS });
      if (!config) return 2;
      const env: CommandEnv = {
        // Logs go to stderr, so that stdout holds only the command's output.
        log: createLogger({ level: process.env.LOG_LEVEL ?? 'warn', destination: process.stderr, secrets: configSecrets(config) }),
        out: (text) => process.stdout.write(text),
        err: (text) => process.stderr.write(text),
      };
      // Loaded on demand, like the server runtime: a one-shot command starts faster without them.
      const commands = await import('./cli/admin-commands.js');
      const run = commands[ADMIN_COMMANDS[command as keyof typeof ADMIN_COMMANDS]];
      try {
        return await run(config, positionals, values as AdminCommandOptions, env);
      } catch (err) {
        if (err instanceof commands.UsageError) {
          process.stderr.write(`cardproxy ${command}: ${err.message}\n`);
          return 2;
        }
        throw err;
      }
    }
  }
}

function usageError(message: string): number {
  process.stderr.write(`cardproxy: ${message}\n\n${USAGE}`);
  return 2;
}

function loadConfigOrReport(file: string, opts: LoadOptions = {}): Config | undefined {
  try {
    return loadConfigFile(file, process.env, opts);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return undefined;
    }
    throw err;
  }
}

async function runServer(role: Role, file: string | undefined): Promise<number> {
  if (!file) return usageError(`${role} needs --config FILE or CARDPROXY_CONFIG`);
  const config = loadConfigOrReport(file);
  if (!config) return 2;
  const secrets = new LogSecrets(configSecrets(config));
  const log = createLogger({ secrets });
  routeConsoleWarnings(log);
  applyV8Settings();
  const { startCardproxy } = await import('./runtime/cardproxy.js');
  const { TlsFileError } = await import('./http/tls.js');
  let proxy: Awaited<ReturnType<typeof startCardproxy>>;
  try {
    proxy = await startCardproxy(config, role, { log, secrets });
  } catch (err) {
    if (!(err instanceof TlsFileError)) throw err;
    process.stderr.write(`${file}: ${err.message}\n`);
    return 2;
  }
  // SIGHUP reloads, as nginx does; without a handler Node would exit on it.
  process.on('SIGHUP', () => {
    log.info({ signal: 'SIGHUP' }, 'signal received: reloading');
    void proxy.reload(() => loadConfigFile(file));
  });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting at once');
        resolve(1);
        return;
      }
      stopping = true;
      log.info({ signal }, 'signal received: finishing in-flight work');
      proxy.close().then(
        () => resolve(0),
        (err: unknown) => {
          log.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    // Under `npm start`, npm passes SIGTERM on; should npm itself be killed outright, this process
    // would live on with another parent and hold the port: stop as if told to.
    if (process.env.npm_lifecycle_event !== undefined) {
      const parent = process.ppid;
      setInterval(() => {
        if (process.ppid !== parent) stop('SIGTERM');
      }, 500).unref();
    }
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`cardproxy: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
