/**
 * The lean path of `POST /cards`: the HTTP server's request listener takes such a request itself,
 * in front of Fastify, whose routing, hooks and reply machinery were most of a warm hit's cost
 * beyond what a bare node:http server spends. It reads the body and hands it to the same
 * `CardsEndpoint` as the Fastify route (one implementation of checks, resolution, log line and
 * answer bytes); a warm multi-key request is thus answered within the same turn of the event loop.
 *
 * Requests whose bodies are complete by the end of a turn's I/O are answered together right after
 * it (`setImmediate`): first every answer, then every write. Under load one turn reads a dozen or
 * more requests; answered one by one, each request's own work (the HMAC in OpenSSL, JSON, the
 * resolution, the near cache's entries, the answer bytes) came after Node's HTTP parsing and the
 * kernel's socket work for the others had pushed it out of the CPU's caches (the HMAC alone: 10-20
 * µs in place, 2 µs in a loop). Back to back, only the first request of a turn pays that; this cut
 * a warm request's CPU by about a quarter (BENCHMARKS.md). The delay it adds is the rest of the
 * turn's reads, which the answers would have waited for anyway behind one another. A turn answers
 * for about a millisecond at most (turn-slice.ts), and leaves the rest to the next turn.
 *
 * Every request it does not take goes to Fastify untouched, body unread: other methods and URLs
 * (a query string too), a server that is closing (Fastify answers 503), a `request`-mode TLS
 * client without an accepted certificate (403), and bodies it would have to judge (no or a zero
 * `Content-Length`, chunked, over the limit: 413, no `Content-Type`). Once it has read a body it
 * answers the request itself, as the route would: the same status, headers and bytes, the same
 * request id sequence, metrics, rejected-request line and `Connection: close` while closing.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Clock } from '../core/clock.js';
import type { ClientCertificateMode } from '../config/schema.js';
import { CACHE_STATUS_HEADER } from './cache-status.js';
import { INTERNAL_ERROR, type ErrorBody } from './errors.js';
import { CARDS_CONTENT_TYPE, MAX_BODY_BYTES, type CardsAnswer, type CardsEndpoint } from './routes/cards.js';
import type { RequestIntake } from './request-intake.js';
import { ANSWER_SLICE_MS, runSlice } from './turn-slice.js';

/** What happens after every answer, on either path (metrics, the rejected-request line). */
export interface AnsweredRequest {
  readonly method: string;
  readonly route: string;
  readonly status: number;
  /** `performance.now()` when the request arrived (ms). */
  readonly startedAt: number;
  readonly receivedAt: number;
  /** `/cards`: how long the request may have waited before it was read (request-intake.ts, ms). */
  readonly queuedMs: number;
  readonly reqId: string;
  readonly error: ErrorBody | undefined;
  readonly remoteAddress: string | undefined;
  readonly contentLength: string | undefined;
}

export interface LeanCardsOptions {
  readonly endpoint: CardsEndpoint;
  /** Fastify's own listener: every request this path does not take. */
  readonly fastify: RequestListener;
  readonly clock: Clock;
  readonly intake: RequestIntake;
  readonly clientCertificate: ClientCertificateMode | undefined;
  /** The app is closing: new requests go to Fastify (503), answers close their connection. */
  readonly closing: () => boolean;
  /** The request id sequence Fastify uses too. */
  readonly nextReqId: () => string;
  readonly answered: (request: AnsweredRequest) => void;
  /** An unexpected failure (the route's would reach Fastify's error handler): logged with the request id. */
  readonly failed: (reqId: string, err: unknown) => void;
}

const CONTENT_LENGTH = /^[1-9][0-9]{0,7}$/;

const monotonicNow = (): number => performance.now();

/** The error of a request whose client went away mid-body (one function for all of them). */
function ignore(): void {}

/** A request whose body is read, waiting for the end of the turn's I/O to be answered. */
interface ReadRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly raw: Buffer;
  readonly reqId: string;
  readonly receivedAt: number;
  readonly startedAt: number;
  readonly queuedMs: number;
}

export function leanCardsListener(opts: LeanCardsOptions): RequestListener {
  const { endpoint, fastify, clock, intake } = opts;

  const takes = (req: IncomingMessage): number => {
    if (req.method !== 'POST' || req.url !== '/cards' || opts.closing()) return 0;
    const headers = req.headers;
    const length = headers['content-length'];
    if (length === undefined || headers['transfer-encoding'] !== undefined || headers['content-type'] === undefined || !CONTENT_LENGTH.test(length)) return 0;
    const bytes = Number(length);
    if (bytes > MAX_BODY_BYTES) return 0;
    if (opts.clientCertificate === 'request' && (req.socket as TLSSocket).authorized !== true) return 0;
    return bytes;
  };

  /** The requests whose bodies this turn has read (bounded by what one turn reads), answered by `answerRead`. */
  let read: ReadRequest[] = [];

  const answerRead = (): void => {
    const batch = read;
    read = [];
    const answers = new Array<CardsAnswer | Promise<CardsAnswer> | { failed: unknown }>(batch.length);
    const answered = runSlice(
      batch,
      (r, i) => {
        try {
          answers[i] = endpoint.answer(r.raw, r.req.headers, r.reqId, r.receivedAt, r.queuedMs);
        } catch (err) {
          answers[i] = { failed: err };
        }
      },
      ANSWER_SLICE_MS,
      monotonicNow,
    );
    if (answered < batch.length) {
      // The rest go first in the next turn, after its I/O (which may have read more: then that
      // turn's listener has already asked for this call).
      if (read.length === 0) setImmediate(answerRead);
      read = batch.slice(answered).concat(read);
    }
    for (let i = 0; i < answered; i++) {
      const r = batch[i]!;
      const answer = answers[i]!;
      try {
        if (answer instanceof Promise) answer.then((a) => send(r, a), (err: unknown) => fail(r, err));
        else if ('failed' in answer) fail(r, answer.failed);
        else send(r, answer);
      } catch (err) {
        // This answer could not be written: logged and its connection closed; the turn's other
        // requests are still answered.
        opts.failed(r.reqId, err);
        r.res.destroy();
      }
    }
  };

  return (req, res) => {
    const length = takes(req);
    if (length === 0) {
      fastify(req, res);
      return;
    }
    const receivedAt = clock.now();
    const startedAt = performance.now();
    const queuedMs = intake.queuedMs(req.socket, startedAt);
    const chunks: Buffer[] = [];
    // A client gone mid-body: nothing to answer (Node closes the socket).
    req.on('error', ignore);
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      // Node's parser delivers exactly Content-Length bytes before `end`.
      const raw = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length);
      if (read.length === 0) setImmediate(answerRead);
      read.push({ req, res, raw, reqId: opts.nextReqId(), receivedAt, startedAt, queuedMs });
    });
  };

  /** An unexpected failure: logged with the request id, answered 500. */
  function fail(r: ReadRequest, err: unknown): void {
    opts.failed(r.reqId, err);
    send(r, { status: 500, error: INTERNAL_ERROR });
  }

  function send(r: ReadRequest, answer: CardsAnswer | { status: 500; error: ErrorBody }): void {
    const { req, res } = r;
    if (opts.closing()) res.setHeader('connection', 'close');
    let error: ErrorBody | undefined;
    if (answer.status === 200) {
      res.writeHead(200, { 'content-type': CARDS_CONTENT_TYPE, [CACHE_STATUS_HEADER]: answer.cacheStatus, 'content-length': answer.body.length });
      // The answer's memory is used again once it has been written (answer-memory.ts).
      res.end(answer.body, answer.written);
    } else {
      error = answer.error;
      const body = JSON.stringify({ error: error.error, message: error.message } satisfies ErrorBody);
      res.writeHead(answer.status, { 'content-type': CARDS_CONTENT_TYPE, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    }
    intake.answered(req.socket);
    opts.answered({
      method: 'POST',
      route: '/cards',
      status: answer.status,
      startedAt: r.startedAt,
      receivedAt: r.receivedAt,
      queuedMs: r.queuedMs,
      reqId: r.reqId,
      error,
      remoteAddress: req.socket.remoteAddress,
      contentLength: req.headers['content-length'],
    });
  }
}
