/**
 * A stand-in for a legacy card API at the network edge: a real `node:http` server on 127.0.0.1
 * (random port) that records every call and answers through a swappable handler.
 *
 * ```ts
 * const upstream = await startFakeUpstream();                    // 200 with cardsReply(call)
 * upstream.setHandler(() => ({ status: 503 }));                   // or slow: { delayMs: 5000, body: … }
 * upstream.setHandler((call) => ({ body: cardsReply(call, { ttl: 60 }) }));
 * await upstream.waitForCalls(1);
 * expect(upstream.calls[0]?.keys).toEqual(['subscription-details']);
 * await upstream.close();
 * ```
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One request the fake upstream received. */
export interface RecordedCall {
  /** The parsed JSON body, or `undefined` when it was not JSON. */
  body: any;
  rawBody: string;
  headers: IncomingHttpHeaders;
  /** `body.cardKeys` (its string entries), or `[]`. */
  keys: string[];
  /** `body.customer.id` when it is a string. */
  customerId: string | undefined;
  /** `Date.now()` when the body had been read. */
  at: number;
  method: string;
  /** Request path including the query string. */
  path: string;
}

/** How to answer a call. Everything is optional: `{}` is `200` with an empty body. */
export interface Reply {
  /** Default 200. */
  status?: number;
  /** Sent as JSON (ignored when `rawBody` is given). */
  body?: unknown;
  /** Sent byte for byte, for broken-envelope tests (a Buffer for bytes that are not UTF-8). */
  rawBody?: string | Buffer;
  /** Wait this long before answering (cancelled when the client goes away or on close). */
  delayMs?: number;
  /** Destroy the connection without answering (after `delayMs`, if any). */
  hangUp?: boolean;
  /** Send the body chunked, without a Content-Length. */
  chunked?: boolean;
  /** Extra response headers. */
  headers?: Record<string, string>;
}

export type UpstreamHandler = (call: RecordedCall) => Reply | Promise<Reply>;

export interface FakeUpstream {
  /** The card endpoint, `http://127.0.0.1:<port>/cards` (any path is answered the same way). */
  url: string;
  /** Every call received so far, in arrival order. */
  calls: RecordedCall[];
  /** Requests received and not yet answered (or abandoned by the client). */
  readonly inFlight: number;
  /** The highest `inFlight` seen. */
  readonly maxInFlight: number;
  setHandler(handler: UpstreamHandler): void;
  /** Resolves once at least `n` calls were received; rejects after `timeoutMs` (default 5000). */
  waitForCalls(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** A card as a legacy API returns it. */
export interface FakeCard {
  key: string;
  timeToLiveSeconds?: number | null;
  components: unknown[] | null;
}

/** What {@link cardsReply} builds cards for: a recorded call, or just keys (and a customer id). */
export type CardsFor = string[] | { keys: string[]; customerId?: string | undefined };

/**
 * A valid `{cards}` body with one card per key, each holding a single `componentText`.
 * The text defaults to `${key} for ${customerId}`; `ttl` sets `timeToLiveSeconds` (default `null`).
 */
export function cardsReply(
  call: CardsFor,
  opts: { ttl?: number | null; text?: (key: string, customerId: string | undefined) => string } = {},
): { cards: FakeCard[] } {
  const keys = Array.isArray(call) ? call : call.keys;
  const customerId = Array.isArray(call) ? undefined : call.customerId;
  const textFor = opts.text ?? ((key: string, id: string | undefined) => `${key} for ${id ?? 'unknown customer'}`);
  return {
    cards: keys.map((key) => ({
      key,
      timeToLiveSeconds: opts.ttl === undefined ? null : opts.ttl,
      components: [{ componentText: { text: textFor(key, customerId) } }],
    })),
  };
}

/** How many distinct customers the upstream was called for (a retried call counts once). */
export function customersCalled(upstream: Pick<FakeUpstream, 'calls'>): number {
  return new Set(upstream.calls.map((c) => c.customerId)).size;
}

/**
 * The text of the first `componentText` of a card (searched depth-first, through rows and
 * containers); throws when the card has none, so an assertion fails with a readable message.
 */
export function textOf(card: unknown): string {
  const found = findText((card as { components?: unknown } | null | undefined)?.components);
  if (found === undefined) throw new Error(`card has no componentText: ${JSON.stringify(card)}`);
  return found;
}

function findText(value: unknown): string | undefined {
  if (Array.isArray(value)) {
    for (const item of value) {
      const found = findText(item);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  const text = (record.componentText as { text?: unknown } | undefined)?.text;
  if (typeof text === 'string') return text;
  for (const child of Object.values(record)) {
    const found = findText(child);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** The default handler: `200` with {@link cardsReply} for the requested keys. */
export const defaultHandler: UpstreamHandler = (call) => ({ body: cardsReply(call) });

/** Starts a fake upstream on 127.0.0.1 and a free port. */
export async function startFakeUpstream(handler: UpstreamHandler = defaultHandler): Promise<FakeUpstream> {
  let current = handler;
  let inFlight = 0;
  let maxInFlight = 0;
  let closed = false;
  const calls: RecordedCall[] = [];
  const sockets = new Set<Socket>();
  const cancels = new Set<() => void>();

  /** Resolves true after `ms`, or false as soon as the client leaves or the server closes. */
  function delay(ms: number, res: ServerResponse): Promise<boolean> {
    return new Promise((resolve) => {
      const cancel = (): void => {
        clearTimeout(timer);
        cancels.delete(cancel);
        res.off('close', cancel);
        resolve(false);
      };
      const timer = setTimeout(() => {
        cancels.delete(cancel);
        res.off('close', cancel);
        resolve(true);
      }, ms);
      cancels.add(cancel);
      res.once('close', cancel);
    });
  }

  async function respond(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawBody = await readBody(req);
    let body: unknown;
    try {
      body = JSON.parse(rawBody);
    } catch {
      body = undefined;
    }
    const b = body as { cardKeys?: unknown; customer?: { id?: unknown } } | undefined;
    const call: RecordedCall = {
      body,
      rawBody,
      headers: req.headers,
      keys: Array.isArray(b?.cardKeys) ? b.cardKeys.filter((k): k is string => typeof k === 'string') : [],
      customerId: typeof b?.customer?.id === 'string' ? b.customer.id : undefined,
      at: Date.now(),
      method: req.method ?? 'GET',
      path: req.url ?? '/',
    };
    calls.push(call);

    let reply: Reply;
    try {
      reply = await current(call);
    } catch (err) {
      reply = { status: 500, body: { error: 'fake_upstream_handler_threw', message: (err as Error)?.message ?? String(err) } };
    }
    if (reply.delayMs !== undefined && reply.delayMs > 0 && !(await delay(reply.delayMs, res))) return;
    if (closed || res.destroyed) return;
    if (reply.hangUp) {
      req.socket.destroy();
      return;
    }
    const payload = reply.rawBody ?? (reply.body === undefined ? '' : JSON.stringify(reply.body));
    res.writeHead(reply.status ?? 200, {
      'Content-Type': 'application/json',
      ...(reply.chunked ? {} : { 'Content-Length': Buffer.byteLength(payload) }),
      ...reply.headers,
    });
    res.end(payload);
  }

  const server = createServer((req, res) => {
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    // 'close' fires once: when the answer is sent or when the connection goes away first.
    res.once('close', () => {
      inFlight -= 1;
    });
    respond(req, res).catch(() => {
      if (!res.destroyed) res.destroy();
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}/cards`,
    calls,
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    setHandler(h) {
      current = h;
    },
    async waitForCalls(n, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (calls.length < n) {
        if (Date.now() >= deadline) {
          throw new Error(
            `fake upstream: expected at least ${n} call(s) within ${timeoutMs} ms, got ${calls.length}` +
              (calls.length ? ` (keys: ${calls.map((c) => `[${c.keys.join(',')}]`).join(' ')})` : ''),
          );
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        closed = true;
        for (const cancel of [...cancels]) cancel();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(new Error('client went away before sending the whole body'));
    });
  });
}
