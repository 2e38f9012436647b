/**
 * The HTTP client for legacy card APIs (SPEC 2.2): the same protocol Plain speaks, with the
 * forwarded workspace id, our User-Agent and optional signing. It classifies every outcome by
 * Plain's rules and never throws for an upstream's fault.
 */
import { request as httpRequest, Agent as HttpAgent, type IncomingMessage } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { parseUpstreamResponse, type UpstreamCardResult } from '../core/plain-protocol.js';
import { signBody } from '../core/signature.js';
import { classifyStatus, transportFailure, type UpstreamFailure } from '../core/upstream-failure.js';
import { VERSION } from '../version.js';
import { readBoundedBody } from './bounded-body.js';

/** Where and how to call one card API (an upstream group). */
export interface UpstreamTarget {
  readonly name: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly signingSecret: string | null;
}

/** The customer context forwarded to the upstream, as Plain sent it to us. */
export interface UpstreamCall {
  readonly workspaceId: string;
  readonly cardKeys: readonly string[];
  readonly customer: { readonly id: string; readonly email?: string | null | undefined; readonly externalId?: string | null | undefined };
  readonly thread?: { readonly id: string; readonly externalId?: string | null | undefined } | null | undefined;
  readonly tenant?: { readonly id: string; readonly externalId?: string | null | undefined } | null | undefined;
}

export type UpstreamResult =
  | { readonly ok: true; readonly cards: ReadonlyMap<string, UpstreamCardResult>; readonly durationMs: number }
  | { readonly ok: false; readonly failure: UpstreamFailure; readonly durationMs: number };

/** Larger answers are refused: a card API has no business sending megabytes per customer. */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

const USER_AGENT = `cardproxy/${VERSION}`;

/** Calls the upstream once (retries are the caller's business). */
export async function callUpstream(target: UpstreamTarget, call: UpstreamCall, signal?: AbortSignal): Promise<UpstreamResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const body = JSON.stringify({
    cardKeys: call.cardKeys,
    customer: { id: call.customer.id, email: call.customer.email ?? null, externalId: call.customer.externalId ?? null },
    thread: call.thread ?? null,
    tenant: call.tenant ?? null,
  });
  const headers: Record<string, string> = {
    ...target.headers,
    'Content-Type': 'application/json',
    Accept: 'application/json',
    'Plain-Workspace-Id': call.workspaceId,
    'User-Agent': USER_AGENT,
  };
  if (target.signingSecret) headers['Plain-Request-Signature'] = signBody(target.signingSecret, body);

  const timeout = AbortSignal.timeout(target.timeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let status: number;
  let text: string;
  try {
    const response = await post(target.url, headers, body, combined);
    status = response.statusCode ?? 0;
    if (status !== 200) {
      response.destroy();
      return { ok: false, failure: classifyStatus(status), durationMs: elapsed() };
    }
    const read = await readBoundedBody(response, 'upstream answered 200', response.headers['content-length'], MAX_RESPONSE_BYTES, () => response.destroy());
    if (!read.ok) return { ok: false, failure: { kind: 'integration', detail: read.detail, status }, durationMs: elapsed() };
    text = read.text;
  } catch (err) {
    const timedOut = timeout.aborted;
    return { ok: false, failure: transportFailure(timedOut, target.timeoutMs, describeRequestError(err)), durationMs: elapsed() };
  }

  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, failure: { kind: 'integration', detail: 'upstream answered 200 with a body that is not JSON', status }, durationMs: elapsed() };
  }
  const parsed = parseUpstreamResponse(json, call.cardKeys);
  if (!parsed.ok) return { ok: false, failure: { kind: 'integration', detail: parsed.detail, status }, durationMs: elapsed() };
  return { ok: true, cards: parsed.cards, durationMs: elapsed() };
}

/**
 * Keep-alive connections per upstream, as fetch would keep them. An idle one is closed after 5 s,
 * or sooner when the upstream's `Keep-Alive: timeout` says so; a call waiting for its answer is
 * bounded by its own time-out, however long that is.
 */
const AGENTS = {
  'http:': new HttpAgent({ keepAlive: true, scheduling: 'lifo', timeout: 5000 }),
  'https:': new HttpsAgent({ keepAlive: true, scheduling: 'lifo', timeout: 5000 }),
};

/**
 * POSTs `body` and resolves with the response once its head has arrived (redirects are not
 * followed: a 3xx is the upstream's answer). node:http rather than fetch: in a loop, a call with
 * fetch cost 2-3 times the CPU, and a worker's CPU per refresh job fell by 15-22 % without it
 * (BENCHMARKS.md).
 */
function post(url: string, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<IncomingMessage> {
  const target = new URL(url);
  const tls = target.protocol === 'https:';
  const send = tls ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const options = { method: 'POST', headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body)) }, agent: AGENTS[tls ? 'https:' : 'http:'], signal };
    const request = send(target, options, resolve);
    request.on('error', reject);
    request.end(body);
  });
}

/** The most telling cause of a failed call: a socket error's code (ECONNREFUSED), else its message. */
function describeRequestError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const { code, syscall } = err as NodeJS.ErrnoException;
  return syscall !== undefined && code !== undefined ? code : err.message;
}
