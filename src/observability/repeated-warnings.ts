/**
 * Warnings that repeat while a fault lasts (Redis unreachable: every request, every reconnect)
 * are written once, then counted: one line per kind and window, saying how many times it happened,
 * instead of a line with a stack trace per occurrence. A kind is its message plus the error's
 * message, so a new kind of failure is always written at once.
 */
import type { Logger } from 'pino';

/** What of an error a repeated warning shows: no stack (it is the same every time). */
export function errorSummary(err: unknown): { type: string; message: string; code?: string } {
  if (!(err instanceof Error)) return { type: typeof err, message: String(err) };
  const code = (err as Error & { code?: unknown }).code;
  return { type: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
}

export class RepeatedWarnings {
  readonly #log: Logger;
  readonly #windowMs: number;
  readonly #kinds = new Map<string, { count: number; timer: NodeJS.Timeout }>();

  constructor(log: Logger, opts: { windowMs?: number } = {}) {
    this.#log = log;
    this.#windowMs = opts.windowMs ?? 60_000;
  }

  /** Writes `msg` with `fields` and the error's summary, unless the same kind was written within the window. */
  warn(err: unknown, fields: Record<string, unknown>, msg: string): void {
    const summary = errorSummary(err);
    const kind = `${msg}\n${summary.message}`;
    const seen = this.#kinds.get(kind);
    if (seen) {
      seen.count++;
      return;
    }
    this.#log.warn({ ...fields, err: summary }, msg);
    const timer = setTimeout(() => {
      const entry = this.#kinds.get(kind);
      this.#kinds.delete(kind);
      if (entry && entry.count > 0) {
        this.#log.warn({ ...fields, err: summary, repeated: entry.count, windowMs: this.#windowMs }, `${msg} (repeated)`);
      }
    }, this.#windowMs);
    timer.unref();
    this.#kinds.set(kind, { count: 0, timer });
  }
}
