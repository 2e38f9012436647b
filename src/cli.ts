#!/usr/bin/env node
/**
 * The `cardproxy` command line (SPEC section 3).
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile } from './config/load.js';
import type { Config } from './config/schema.js';
import { createLogger } from './observability/logger.js';
import { startCardproxy, type Role } from './runtime/cardproxy.js';
import { VERSION } from './version.js';

const USAGE = `cardproxy ${VERSION}: a caching proxy between Plain and slow customer-card APIs

Usage: cardproxy <command> [options]

Commands:
  start --config FILE        HTTP server and refresh worker in one process
  serve --config FILE        HTTP server only (run several behind a load balancer)
  worker --config FILE       refresh worker only (run several)
  check-config FILE          validate a config file; exit 0, or 1 naming each bad field

--config FILE may be replaced by the environment variable CARDPROXY_CONFIG.
REDIS_URL overrides redis.url, PORT overrides listen.port, LOG_LEVEL sets the log level.
`;

/** Exit codes: 0 done, 1 runtime failure, 2 usage or configuration error. */
async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
  if (command === undefined || command === 'help' || command === '--help' || command === '-h' || values.help) {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  switch (command) {
    case 'check-config': {
      const file = positionals[0] ?? values.config ?? process.env.CARDPROXY_CONFIG;
      if (!file) return usageError('check-config needs a FILE');
      const config = loadConfigOrReport(file);
      if (!config) return 2;
      process.stdout.write(`${file}: valid (${Object.keys(config.upstreams).length} upstreams, ${Object.keys(config.cards).length} cards)\n`);
      return 0;
    }
    case 'start':
    case 'serve':
    case 'worker':
      return runServer(command, values.config ?? process.env.CARDPROXY_CONFIG);
    default:
      return usageError(`unknown command "${command}"`);
  }
}

function usageError(message: string): number {
  process.stderr.write(`cardproxy: ${message}\n\n${USAGE}`);
  return 2;
}

function loadConfigOrReport(file: string): Config | undefined {
  try {
    return loadConfigFile(file);
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
  const log = createLogger();
  const proxy = await startCardproxy(config, role, { log });
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
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`cardproxy: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
