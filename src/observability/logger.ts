/**
 * The process logger: structured JSON (pino), level from LOG_LEVEL, secrets redacted wherever
 * they could appear. Components log through child loggers (`log.child({ component })`).
 */
import { pino, type DestinationStream, type Logger } from 'pino';

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

export function createLogger(opts: { level?: string; destination?: DestinationStream } = {}): Logger {
  const options = {
    level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
    base: { service: 'cardproxy', pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    hooks: { streamWrite: redactUrlCredentials },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  // Asynchronous writes keep logging off the request's critical path; pino flushes on exit.
  return pino(options, opts.destination ?? pino.destination({ dest: 1, sync: false }));
}
