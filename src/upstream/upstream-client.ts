/**
 * The HTTP client for legacy card APIs (SPEC 2.2): the same protocol Plain speaks, with the
 * forwarded workspace id, our User-Agent and optional signing. It classifies every outcome by
 * Plain's rules and never throws for an upstream's fault.
 */
import { parseUpstreamResponse, type UpstreamCardResult } from '../core/plain-protocol.js';
import { signBody } from '../core/signature.js';
import { classifyStatus, transportFailure, type UpstreamFailure } from '../core/upstream-failure.js';
import { VERSION } from '../version.js';

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
    const response = await fetch(target.url, { method: 'POST', headers, body, signal: combined, redirect: 'manual' });
    status = response.status;
    if (status !== 200) {
      await response.body?.cancel().catch(() => {});
      return { ok: false, failure: classifyStatus(status), durationMs: elapsed() };
    }
    const read = await readBody(response, MAX_RESPONSE_BYTES);
    if (!read.ok) return { ok: false, failure: { kind: 'integration', detail: read.detail, status }, durationMs: elapsed() };
    text = read.text;
  } catch (err) {
    const timedOut = timeout.aborted;
    return { ok: false, failure: transportFailure(timedOut, target.timeoutMs, describeFetchError(err)), durationMs: elapsed() };
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

/** Reads a response body of at most `limit` bytes, as UTF-8 text (else throws). */
export async function readBounded(response: Response, limit: number): Promise<string> {
  const read = await readBody(response, limit);
  if (!read.ok) throw new Error(read.detail);
  return read.text;
}

/**
 * The body as text, or why it is refused: larger than `limit` (as declared or as sent; reading
 * stops there) or not UTF-8. Both are the upstream's integration errors, never retried: the same
 * request would get the same answer.
 */
async function readBody(response: Response, limit: number): Promise<{ ok: true; text: string } | { ok: false; detail: string }> {
  const tooLarge = { ok: false as const, detail: `upstream answered 200 with a body larger than ${limit} bytes` };
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > limit) {
    await response.body?.cancel().catch(() => {});
    return tooLarge;
  }
  if (!response.body) return { ok: true, text: '' };
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return tooLarge;
    }
    chunks.push(value);
  }
  try {
    return { ok: true, text: UTF8.decode(Buffer.concat(chunks)) };
  } catch {
    return { ok: false, detail: 'upstream answered 200 with a body that is not valid UTF-8' };
  }
}

/** JSON is UTF-8 (RFC 8259 8.1): invalid bytes are an error, never silently replaced by U+FFFD. */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The most telling cause of a failed fetch (e.g. ECONNREFUSED). */
export function describeFetchError(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
    return cause?.code ?? cause?.message ?? err.message;
  }
  return String(err);
}
