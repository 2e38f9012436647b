/**
 * The process logger: structured JSON (pino), level from LOG_LEVEL, secrets redacted wherever
 * they could appear. Components log through child loggers (`log.child({ component })`).
 */
import { format } from 'node:util';
import { pino, type DestinationStream, type Logger } from 'pino';
import { BatchedDestination } from './log-destination.js';

/** Paths that may hold credentials; their values are replaced before a line is written. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["plain-request-signature"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers.Authorization',
  'headers["plain-request-signature"]',
  'config.plain.signingSecrets',
  'config.admin.token',
  'config.plain.api.apiKey',
  '*.apiKey',
  'config.upstreams.*.headers',
  'config.upstreams.*.signingSecret',
  '*.signingSecret',
  '*.signingSecrets',
  '*.token',
];

/**
 * `scheme://user:password@host` → `scheme://[redacted]@host`, anywhere in a line. Credentials in a
 * URL (an upstream's or Redis' `url`) reach log lines through error messages, e.g. fetch's
 * "Request cannot be constructed from a URL that includes credentials: http://user:pass@…".
 */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"\\]+@/gi;

export function redactUrlCredentials(text: string): string {
  return text.includes('@') ? text.replace(URL_CREDENTIALS, '$1[redacted]@') : text;
}

/**
 * An error as a log line shows it: pino's standard form, without the arguments of a failed Redis
 * command. ioredis puts the command on its errors, so a `WRONGPASS` (a rotated password) carried
 * `command: { name: 'auth', args: [<password>] }`; only the command's name is kept, here and in
 * the errors it wraps (`cause`, `previousErrors`).
 */
export function serializeError(err: unknown): unknown {
  // A summary already made (no stack on purpose, see repeated-warnings.ts) is written as it is.
  return scrubCommands(err instanceof Error ? pino.stdSerializers.err(err) : err, 0);
}

function scrubCommands(value: unknown, depth: number): unknown {
  if (typeof value !== 'object' || value === null || depth > 4) return value;
  if (Array.isArray(value)) return value.map((item) => scrubCommands(item instanceof Error ? pino.stdSerializers.err(item) : item, depth + 1));
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  const command = out.command;
  if (typeof command === 'object' && command !== null) out.command = { name: (command as { name?: unknown }).name };
  for (const key of ['cause', 'previousErrors', 'errors']) {
    const inner = out[key];
    if (inner !== undefined) out[key] = scrubCommands(inner instanceof Error ? pino.stdSerializers.err(inner) : inner, depth + 1);
  }
  return out;
}

/** Values shorter than this are not scrubbed from lines: they would match ordinary words. */
const MIN_SECRET_LENGTH = 6;

/**
 * Replaces every occurrence of a configured secret in a written line, however it got there (an
 * error message of some library, a header echoed back): the last line of defence after the
 * redaction paths and the error serializer.
 */
function secretScrubber(secrets: readonly string[]): (line: string) => string {
  const forms = [...new Set(secrets.filter((s) => s.length >= MIN_SECRET_LENGTH).flatMap((s) => [s, JSON.stringify(s).slice(1, -1)]))];
  // Longest first, so a secret that contains another is replaced whole.
  forms.sort((a, b) => b.length - a.length);
  if (forms.length === 0) return redactUrlCredentials;
  return (line) => {
    let out = redactUrlCredentials(line);
    for (const form of forms) if (out.includes(form)) out = out.split(form).join('[redacted]');
    return out;
  };
}

/**
 * The secrets scrubbed from every line of a logger, replaceable at run time: a configuration
 * reloaded on SIGHUP brings its own (a rotated token, a new upstream's header). The previous set is
 * kept along with the new one, since lines about the old configuration may still be written.
 */
export class LogSecrets {
  #previous: readonly string[] = [];
  #current: readonly string[];
  #scrub: (line: string) => string;

  constructor(secrets: readonly string[] = []) {
    this.#current = secrets;
    this.#scrub = secretScrubber(secrets);
  }

  /** From now on, scrubs `secrets` and the ones given last time. */
  update(secrets: readonly string[]): void {
    this.#previous = this.#current;
    this.#current = secrets;
    this.#scrub = secretScrubber([...this.#previous, ...this.#current]);
  }

  scrub(line: string): string {
    return this.#scrub(line);
  }
}

export function createLogger(opts: { level?: string; destination?: DestinationStream; secrets?: readonly string[] | LogSecrets } = {}): Logger {
  const secrets = opts.secrets instanceof LogSecrets ? opts.secrets : new LogSecrets(opts.secrets ?? []);
  const options = {
    level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
    base: { service: 'cardproxy', pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { err: serializeError },
    hooks: { streamWrite: (line: string) => secrets.scrub(line) },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  // Asynchronous writes of the lines held for a few milliseconds keep logging off the request's critical path.
  return pino(options, opts.destination ?? new BatchedDestination({ fd: 1, maxBufferedBytes: MAX_BUFFERED_LOG_BYTES }));
}

/** Held for stdout at most; past it, lines are dropped and counted (stdout does not keep up). */
const MAX_BUFFERED_LOG_BYTES = 16 * 1024 * 1024;

/** How many lines `log`'s destination has dropped so far (0 for a destination that does not drop). */
export function droppedLogLines(log: Logger): number {
  const stream = (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  return stream instanceof BatchedDestination ? stream.dropped : 0;
}

/**
 * Routes `console.warn` (BullMQ writes some warnings with it, as plain text) into the JSON log,
 * so that every line a process writes is structured. BullMQ's "IMPORTANT! Eviction policy is …",
 * printed for every connection, is dropped: the start-up check of the Redis settings says it once.
 */
export function routeConsoleWarnings(log: Logger): void {
  console.warn = (...args: unknown[]) => {
    const text = format(...args);
    if (text.startsWith('IMPORTANT! Eviction policy')) return;
    log.warn({ source: 'console' }, text);
  };
}
