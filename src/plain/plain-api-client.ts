/**
 * A small client for Plain's GraphQL API, with the two operations cardproxy needs (SPEC 11):
 * the `customerCardConfigs` query and the `reloadCustomerCardInstance` mutation. Plain's own SDK
 * packages pin old zod versions and weigh megabytes; each operation here is a few lines on fetch.
 *
 * - Every answer is checked with zod before it is used.
 * - The API key goes into the `Authorization` header and nowhere else: no failure detail quotes
 *   the request, and the key is never logged (the logger also redacts `apiKey` fields).
 * - Calls are limited per process (`maxRequestsPerMinute`, and no call before a `429`'s
 *   `x-ratelimit-reset`); a failed call is tried again at most once: after a second for a
 *   transient failure, or at the reset when a `429` names one within a few seconds.
 */
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Clock } from '../core/clock.js';
import { RateWindow, rateLimitResetAt } from '../core/rate-window.js';
import { readBoundedBody } from '../upstream/bounded-body.js';
import { VERSION } from '../version.js';

/** How a call turned out; `rate_limited` and `error` are outcomes of cardproxy_plain_reloads_total. */
export type PlainCallResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly outcome: 'rate_limited' | 'error'; readonly detail: string };

export interface CardConfigRef {
  readonly id: string;
  readonly key: string;
}

export interface ReloadInput {
  readonly customerId: string;
  readonly customerCardConfigId: string;
  /** The thread of the request that got the placeholder, null outside a thread. */
  readonly threadId: string | null;
}

export interface PlainApiClientOptions {
  readonly url: string;
  readonly apiKey: string;
  readonly maxRequestsPerMinute: number;
  readonly clock: Clock;
  /** Per attempt, for the whole exchange (default 10 s). */
  readonly timeoutMs?: number;
  /** Before the one retry of a transient failure (default 1 s). */
  readonly retryDelayMs?: number;
}

const CARD_CONFIGS_QUERY = 'query customerCardConfigs { customerCardConfigs { id key } }';
const RELOAD_MUTATION = `mutation reloadCustomerCardInstance($input: ReloadCustomerCardInstanceInput!) {
  reloadCustomerCardInstance(input: $input) { customerCardInstance { __typename } error { message type code } }
}`;

const GraphQlErrors = z.array(z.object({ message: z.string(), extensions: z.object({ code: z.string().optional() }).loose().optional() }).loose());
const GraphQlEnvelope = z.object({ data: z.unknown().optional(), errors: GraphQlErrors.optional() }).loose();

const CardConfigsData = z.object({
  customerCardConfigs: z.array(z.object({ id: z.string().min(1), key: z.string() }).loose()),
});

const MutationError = z.object({ message: z.string(), type: z.string(), code: z.string() }).loose();
const ReloadData = z.object({
  reloadCustomerCardInstance: z.object({ error: MutationError.nullable().optional() }).loose(),
});

/** One attempt's result, before the retry decision. */
type Attempt =
  | { readonly kind: 'ok'; readonly data: unknown }
  | { readonly kind: 'rate_limited'; readonly resetAt: number; readonly detail: string }
  | { readonly kind: 'transient' | 'failed'; readonly detail: string };

/** Answers are small; a bigger one is refused rather than buffered. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
/** A `429` whose reset is this close is waited for and tried once more; a later one is given up. */
const MAX_WAIT_FOR_RESET_MS = 5000;
const USER_AGENT = `cardproxy/${VERSION}`;

export class PlainApiClient {
  readonly #url: string;
  readonly #apiKey: string;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #retryDelayMs: number;
  readonly #window: RateWindow;
  /** Aborts the waits before retries on close. */
  readonly #closing = new AbortController();

  constructor(opts: PlainApiClientOptions) {
    this.#url = opts.url;
    this.#apiKey = opts.apiKey;
    this.#clock = opts.clock;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
    this.#retryDelayMs = opts.retryDelayMs ?? 1000;
    this.#window = new RateWindow(opts.maxRequestsPerMinute);
    // Every call waiting to retry listens to the close signal. Each made its attempt within the
    // last few seconds, so the rate window bounds how many wait at once; past Node's default of
    // 10 listeners Node would write a warning to stderr, outside the JSON log.
    setMaxListeners(opts.maxRequestsPerMinute + 1, this.#closing.signal);
  }

  /** The workspace's customer card configs: the ids Plain knows each card key by. */
  async customerCardConfigs(): Promise<PlainCallResult<CardConfigRef[]>> {
    const result = await this.#call(CARD_CONFIGS_QUERY, {});
    if (!result.ok) return result;
    const parsed = CardConfigsData.safeParse(result.value);
    if (!parsed.success) return { ok: false, outcome: 'error', detail: 'customerCardConfigs: unexpected answer shape' };
    return { ok: true, value: parsed.data.customerCardConfigs.map(({ id, key }) => ({ id, key })) };
  }

  /** Asks Plain to discard its copy of one card instance and load it from the card API again. */
  async reloadCustomerCardInstance(input: ReloadInput): Promise<PlainCallResult<void>> {
    const result = await this.#call(RELOAD_MUTATION, { input });
    if (!result.ok) return result;
    const parsed = ReloadData.safeParse(result.value);
    if (!parsed.success) return { ok: false, outcome: 'error', detail: 'reloadCustomerCardInstance: unexpected answer shape' };
    const error = parsed.data.reloadCustomerCardInstance.error;
    if (error) return { ok: false, outcome: 'error', detail: `reloadCustomerCardInstance: ${error.type} ${error.code}: ${clip(error.message)}` };
    return { ok: true, value: undefined };
  }

  /** Ends the waits before retries at once (their calls count as failed). */
  close(): void {
    this.#closing.abort();
  }

  async #call(query: string, variables: Record<string, unknown>): Promise<PlainCallResult<unknown>> {
    for (let attempt = 1; ; attempt++) {
      const now = this.#clock.now();
      if (!this.#window.tryAcquire(now)) {
        const blocked = now < this.#window.blockedUntil;
        const detail = blocked
          ? `Plain's rate limit resets at ${new Date(this.#window.blockedUntil).toISOString()}`
          : 'plain.api.maxRequestsPerMinute reached';
        return { ok: false, outcome: 'rate_limited', detail };
      }
      const result = await this.#attempt(query, variables);
      if (result.kind === 'ok') return { ok: true, value: result.data };
      let waitMs: number | null = null;
      if (result.kind === 'rate_limited') {
        this.#window.blockUntil(result.resetAt);
        const untilReset = result.resetAt - this.#clock.now();
        if (untilReset <= MAX_WAIT_FOR_RESET_MS) waitMs = Math.max(0, untilReset);
      } else if (result.kind === 'transient') {
        waitMs = this.#retryDelayMs;
      }
      const outcome = result.kind === 'rate_limited' ? 'rate_limited' : 'error';
      if (attempt > 1 || waitMs === null) return { ok: false, outcome, detail: result.detail };
      try {
        await sleep(waitMs, undefined, { signal: this.#closing.signal });
        // Node's timers count from the event loop's time as of the turn that set them, so after a
        // busy turn the wait can end before the clock reaches Plain's reset, and the retry would
        // be refused by the very block it waited for: wait out the rest of it.
        if (result.kind === 'rate_limited') {
          for (let rest = result.resetAt - this.#clock.now(); rest > 0; rest = result.resetAt - this.#clock.now()) {
            await sleep(rest, undefined, { signal: this.#closing.signal });
          }
        }
      } catch {
        return { ok: false, outcome, detail: `${result.detail} (not retried: shutting down)` };
      }
    }
  }

  async #attempt(query: string, variables: Record<string, unknown>): Promise<Attempt> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    let status: number;
    let text: string;
    let resetHeader: string | null;
    try {
      const response = await fetch(this.#url, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${this.#apiKey}`,
          'Content-Type': 'application/json',
          Accept: 'application/json',
          'User-Agent': USER_AGENT,
        },
        body: JSON.stringify({ query, variables }),
        signal: timeout,
        redirect: 'manual',
      });
      status = response.status;
      resetHeader = response.headers.get('x-ratelimit-reset');
      const read = response.body ? await readBoundedBody(response.body, `Plain's API answered HTTP ${status}`, response.headers.get('content-length'), MAX_RESPONSE_BYTES, () => void response.body?.cancel().catch(() => {})) : { ok: true as const, text: '' };
      if (!read.ok) throw new Error(read.detail);
      text = read.text;
    } catch (err) {
      const detail = timeout.aborted ? `Plain's API did not answer within ${this.#timeoutMs} ms` : `request to Plain's API failed: ${describeFetchError(err)}`;
      return { kind: 'transient', detail };
    }
    const envelope = parseEnvelope(text);
    const firstError = envelope?.errors?.[0];
    if (status === 429 || firstError?.extensions?.code === 'RATE_LIMITED') {
      return { kind: 'rate_limited', resetAt: rateLimitResetAt(this.#clock.now(), resetHeader), detail: `Plain's API answered HTTP ${status}: rate limited` };
    }
    if (status !== 200) {
      const detail = `Plain's API answered HTTP ${status}${firstError ? `: ${clip(firstError.message)}` : ''}`;
      return { kind: status >= 500 ? 'transient' : 'failed', detail };
    }
    if (!envelope) return { kind: 'failed', detail: "Plain's API answered 200 with a body that is not a GraphQL response" };
    if (firstError) {
      const code = firstError.extensions?.code;
      return { kind: 'failed', detail: `GraphQL error${code ? ` ${code}` : ''}: ${clip(firstError.message)}` };
    }
    return { kind: 'ok', data: envelope.data };
  }
}

function parseEnvelope(text: string): z.infer<typeof GraphQlEnvelope> | undefined {
  try {
    const parsed = GraphQlEnvelope.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** Plain's error messages go into log lines: keep them short. */
function clip(message: string): string {
  return message.length > 200 ? `${message.slice(0, 200)}…` : message;
}

/** The most telling cause of a failed fetch (e.g. ECONNREFUSED). */
function describeFetchError(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
    return cause?.code ?? cause?.message ?? err.message;
  }
  return String(err);
}
