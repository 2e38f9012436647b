/**
 * Plain's error classification for a call to a card API (SPEC 2.2): retriable failures are retried
 * once after a delay and not cached; integration errors are never retried and negatively cached.
 */
import type { ErrorKind } from './card-events.js';

/** A failed upstream call, as the worker records it. */
export interface UpstreamFailure {
  readonly kind: ErrorKind;
  readonly detail: string;
  readonly status: number | null;
}

/** Classifies a non-200 HTTP status. */
export function classifyStatus(status: number): UpstreamFailure {
  const retriable = status >= 500 || status === 429;
  return { kind: retriable ? 'retriable' : 'integration', detail: `upstream answered HTTP ${status}`, status };
}

/** Classifies a call that produced no HTTP answer: a time-out or a connection failure. */
export function transportFailure(timedOut: boolean, timeoutMs: number, cause: string): UpstreamFailure {
  return {
    kind: 'retriable',
    detail: timedOut ? `upstream did not answer within ${timeoutMs} ms` : `upstream request failed: ${cause}`,
    status: null,
  };
}
