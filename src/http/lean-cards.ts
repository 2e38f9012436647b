/**
 * The lean path of `POST /cards`: the HTTP server's request listener takes such a request itself,
 * in front of Fastify, whose routing, hooks and reply machinery were most of a warm hit's cost
 * beyond what a bare node:http server spends. It reads the body and hands it to the same
 * `CardsEndpoint` as the Fastify route (one implementation of checks, resolution, log line and
 * answer bytes); a warm multi-key request is thus answered within the same turn of the event loop.
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

/** What happens after every answer, on either path (metrics, the rejected-request line). */
export interface AnsweredRequest {
  readonly method: string;
  readonly route: string;
  readonly status: number;
  readonly startedAt: bigint;
  readonly receivedAt: number;
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

export function leanCardsListener(opts: LeanCardsOptions): RequestListener {
  const { endpoint, fastify, clock } = opts;

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

  return (req, res) => {
    const length = takes(req);
    if (length === 0) {
      fastify(req, res);
      return;
    }
    const receivedAt = clock.now();
    const startedAt = process.hrtime.bigint();
    const chunks: Buffer[] = [];
    // A client gone mid-body: nothing to answer (Node closes the socket).
    req.on('error', () => {});
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      // Node's parser delivers exactly Content-Length bytes before `end`.
      const raw = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length);
      const reqId = opts.nextReqId();
      const finish = (answer: CardsAnswer) => send(req, res, answer, { reqId, receivedAt, startedAt });
      const fail = (err: unknown) => {
        opts.failed(reqId, err);
        send(req, res, { status: 500, error: INTERNAL_ERROR }, { reqId, receivedAt, startedAt });
      };
      let answer: CardsAnswer | Promise<CardsAnswer>;
      try {
        answer = endpoint.answer(raw, req.headers, reqId, receivedAt);
      } catch (err) {
        fail(err);
        return;
      }
      if (answer instanceof Promise) answer.then(finish, fail);
      else finish(answer);
    });
  };

  function send(
    req: IncomingMessage,
    res: ServerResponse,
    answer: CardsAnswer | { status: 500; error: ErrorBody },
    at: { reqId: string; receivedAt: number; startedAt: bigint },
  ): void {
    if (opts.closing()) res.setHeader('connection', 'close');
    let error: ErrorBody | undefined;
    if (answer.status === 200) {
      res.writeHead(200, { 'content-type': CARDS_CONTENT_TYPE, [CACHE_STATUS_HEADER]: answer.cacheStatus, 'content-length': answer.body.length });
      res.end(answer.body);
    } else {
      error = answer.error;
      const body = JSON.stringify({ error: error.error, message: error.message } satisfies ErrorBody);
      res.writeHead(answer.status, { 'content-type': CARDS_CONTENT_TYPE, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    }
    opts.answered({
      method: 'POST',
      route: '/cards',
      status: answer.status,
      startedAt: at.startedAt,
      receivedAt: at.receivedAt,
      reqId: at.reqId,
      error,
      remoteAddress: req.socket.remoteAddress,
      contentLength: req.headers['content-length'],
    });
  }
}
