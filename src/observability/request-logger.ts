/**
 * Fastify's per-request logger, made only when a request actually logs. Fastify gives every
 * request a child logger bound to its request id; with pino's redaction configured, making one
 * costs about as much as the rest of a warm `/cards` request's bookkeeping, and a warm request
 * never uses it (its one log line is written by cards-line.ts). Lines written through it are the
 * same as through the child it stands for.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions } from 'pino';

class LazyRequestLogger {
  readonly #parent: FastifyBaseLogger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions;
  #child: FastifyBaseLogger | undefined;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  #logger(): FastifyBaseLogger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options);
    return this.#child;
  }

  get level(): string {
    return this.#child?.level ?? this.#options.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#logger().level = level;
  }

  fatal(...args: unknown[]): void {
    write(this.#logger(), 'fatal', args);
  }

  error(...args: unknown[]): void {
    write(this.#logger(), 'error', args);
  }

  warn(...args: unknown[]): void {
    write(this.#logger(), 'warn', args);
  }

  info(...args: unknown[]): void {
    write(this.#logger(), 'info', args);
  }

  debug(...args: unknown[]): void {
    write(this.#logger(), 'debug', args);
  }

  trace(...args: unknown[]): void {
    write(this.#logger(), 'trace', args);
  }

  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#logger().child(bindings, options);
  }
}

/** Fastify's `childLoggerFactory`: a request's logger that becomes a real child on first use. */
export function lazyRequestLogger(parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  return new LazyRequestLogger(parent, bindings, options) as unknown as FastifyBaseLogger;
}

function write(logger: FastifyBaseLogger, level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace', args: unknown[]): void {
  (logger[level] as (...a: unknown[]) => void).apply(logger, args);
}
