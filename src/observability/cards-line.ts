/**
 * The one log line per `/cards` request ("cards answered"), written without going through pino's
 * per-call machinery: no redaction pass, no generic serialization of an object. That is safe by
 * construction, because the line holds only what an operator needs and nothing else: the request
 * id, the workspace (validated header), the customer and thread ids (never the email or external
 * id), and per key its look-up result and source (configured names and fixed enums) and duration.
 * No header, body, config value or error can reach it. It lands in the process logger's
 * destination with the same base fields and timestamp as every other line.
 *
 * Into the process's own destination (`BatchedDestination`) the line is written as bytes, in
 * place: no string is built for it (built of pieces, it was a tenth of what a warm request
 * allocated, and allocation sets the pace of young collections). Any other destination (tests
 * give their own) gets the same bytes as a string.
 */
import { pino, type Logger } from 'pino';
import type { KeyOutcome } from '../service/card-resolver.js';
import { jsonNumber, jsonStringBound, putAscii, putJsonString } from '../core/json-bytes.js';
import { BatchedDestination, type ByteLineSink } from './log-destination.js';

export interface CardsLine {
  readonly reqId: string;
  readonly workspaceId: string;
  readonly customerId: string;
  readonly threadId: string | null;
  readonly keys: readonly KeyOutcome[];
  readonly degraded: boolean;
}

/** Returns a function that writes one "cards answered" line to `log`'s destination. */
export function cardsLineWriter(log: Logger): (line: CardsLine) => void {
  const internals = log as unknown as Record<symbol, unknown>;
  const stream = internals[pino.symbols.streamSym] as { write(text: string): unknown };
  const sink = stream instanceof BatchedDestination ? stream : new StringSink(stream);
  const time = internals[pino.symbols.timeSym] as () => string;
  // The logger's bindings, already serialized by pino (service, pid, component…).
  const bindings = internals[pino.symbols.chindingsSym] as string;
  // The timestamp text is made once per millisecond, not once per line.
  let stampedAt = -1;
  let stamp = '';
  return (line) => {
    if (!log.isLevelEnabled('info')) return;
    const ms = Date.now();
    if (ms !== stampedAt) {
      stampedAt = ms;
      stamp = time();
    }
    const keys = line.keys;
    let bound = FIXED_BYTES + 3 * (stamp.length + bindings.length) + jsonStringBound(line.reqId) + jsonStringBound(line.workspaceId) + jsonStringBound(line.customerId);
    if (line.threadId !== null) bound += jsonStringBound(line.threadId);
    for (let i = 0; i < keys.length; i++) bound += KEY_FIXED_BYTES + keys[i]!.key.length;
    const out = sink.room(bound);
    let at = sink.held;
    at = putAscii(out, at, '{"level":30');
    at += out.write(stamp, at, 'utf8');
    at += out.write(bindings, at, 'utf8');
    at = putAscii(out, at, ',"reqId":');
    at = putJsonString(out, at, line.reqId);
    at = putAscii(out, at, ',"workspaceId":');
    at = putJsonString(out, at, line.workspaceId);
    at = putAscii(out, at, ',"customerId":');
    at = putJsonString(out, at, line.customerId);
    at = putAscii(out, at, ',"threadId":');
    at = line.threadId === null ? putAscii(out, at, 'null') : putJsonString(out, at, line.threadId);
    at = putAscii(out, at, ',"keys":[');
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      // Card keys match ^[a-zA-Z0-9_-]+$ (schema-checked) and result/source are fixed enums: no escaping needed.
      at = putAscii(out, at, i === 0 ? '{"key":"' : ',{"key":"');
      at = putAscii(out, at, k.key);
      at = putAscii(out, at, '","result":"');
      at = putAscii(out, at, k.result);
      if (k.source === null) {
        at = putAscii(out, at, '","source":null,"ms":');
      } else {
        at = putAscii(out, at, '","source":"');
        at = putAscii(out, at, k.source);
        at = putAscii(out, at, '","ms":');
      }
      at = putAscii(out, at, jsonNumber(k.ms));
      out[at++] = 0x7d; // }
    }
    at = putAscii(out, at, line.degraded ? '],"degraded":true,"msg":"cards answered"}\n' : '],"degraded":false,"msg":"cards answered"}\n');
    sink.commit(at);
  };
}

/** The bytes of the line outside its variable parts, with room to spare. */
const FIXED_BYTES = 256;
/** The bytes of one key's entry besides the key: the fixed text, the longest result and source, a duration. */
const KEY_FIXED_BYTES = 128;

/** The same line for a destination that takes strings: written into a buffer of its own, handed over as text. */
class StringSink implements ByteLineSink {
  readonly #stream: { write(text: string): unknown };
  #buffer = Buffer.alloc(4096);
  readonly held = 0;

  constructor(stream: { write(text: string): unknown }) {
    this.#stream = stream;
  }

  room(bytes: number): Buffer {
    if (bytes > this.#buffer.length) this.#buffer = Buffer.alloc(bytes);
    return this.#buffer;
  }

  commit(end: number): void {
    this.#stream.write(this.#buffer.toString('utf8', 0, end));
  }
}
