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
    let bound = FIXED_BYTES + 3 * (stamp.length + bindings.length) + jsonBound(line.reqId) + jsonBound(line.workspaceId) + jsonBound(line.customerId);
    if (line.threadId !== null) bound += jsonBound(line.threadId);
    for (let i = 0; i < keys.length; i++) bound += KEY_FIXED_BYTES + keys[i]!.key.length;
    const out = sink.room(bound);
    let at = sink.held;
    at += out.write('{"level":30', at, 'latin1');
    at += out.write(stamp, at, 'utf8');
    at += out.write(bindings, at, 'utf8');
    at += out.write(',"reqId":', at, 'latin1');
    at = putJsonString(out, at, line.reqId);
    at += out.write(',"workspaceId":', at, 'latin1');
    at = putJsonString(out, at, line.workspaceId);
    at += out.write(',"customerId":', at, 'latin1');
    at = putJsonString(out, at, line.customerId);
    at += out.write(',"threadId":', at, 'latin1');
    at = line.threadId === null ? at + out.write('null', at, 'latin1') : putJsonString(out, at, line.threadId);
    at += out.write(',"keys":[', at, 'latin1');
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      // Card keys match ^[a-zA-Z0-9_-]+$ (schema-checked) and result/source are fixed enums: no escaping needed.
      at += out.write(i === 0 ? '{"key":"' : ',{"key":"', at, 'latin1');
      at += out.write(k.key, at, 'latin1');
      at += out.write('","result":"', at, 'latin1');
      at += out.write(k.result, at, 'latin1');
      if (k.source === null) {
        at += out.write('","source":null,"ms":', at, 'latin1');
      } else {
        at += out.write('","source":"', at, 'latin1');
        at += out.write(k.source, at, 'latin1');
        at += out.write('","ms":', at, 'latin1');
      }
      at += out.write(String(k.ms), at, 'latin1');
      out[at++] = 0x7d; // }
    }
    at += out.write(line.degraded ? '],"degraded":true,"msg":"cards answered"}\n' : '],"degraded":false,"msg":"cards answered"}\n', at, 'latin1');
    sink.commit(at);
  };
}

/** The bytes of the line outside its variable parts, with room to spare. */
const FIXED_BYTES = 256;
/** The bytes of one key's entry besides the key: the fixed text, the longest result and source, a duration. */
const KEY_FIXED_BYTES = 128;

/** The most bytes `text` takes as a JSON string: 6 per UTF-16 unit (`\u001f`), and the quotes. */
function jsonBound(text: string): number {
  return 6 * text.length + 2;
}

/** Text that is a JSON string as it is, between quotes: printable ASCII other than `"` and `\`. */
const PLAIN_JSON_TEXT = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** Writes `text` as a JSON string at `at`; returns where it ends. */
function putJsonString(out: Buffer, at: number, text: string): number {
  if (!PLAIN_JSON_TEXT.test(text)) return at + out.write(JSON.stringify(text), at, 'utf8');
  out[at] = 0x22;
  at += 1 + out.write(text, at + 1, 'latin1');
  out[at] = 0x22;
  return at + 1;
}

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
