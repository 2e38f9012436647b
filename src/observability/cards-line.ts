/**
 * The one log line per `/cards` request ("cards answered"), written without going through pino's
 * per-call machinery: no redaction pass, no generic serialization of an object. That is safe by
 * construction, because the line holds only what an operator needs and nothing else: the request
 * id, the workspace (validated header), the customer and thread ids (never the email or external
 * id), and per key its look-up result and source (configured names and fixed enums) and duration.
 * No header, body, config value or error can reach it. It lands in the process logger's
 * destination with the same base fields and timestamp as every other line.
 */
import { pino, type Logger } from 'pino';
import type { KeyOutcome } from '../service/card-resolver.js';

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
  const time = internals[pino.symbols.timeSym] as () => string;
  // The logger's bindings, already serialized by pino (service, pid, component…).
  const bindings = internals[pino.symbols.chindingsSym] as string;
  const head = `{"level":30`;
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
    let keys = '';
    for (let i = 0; i < line.keys.length; i++) {
      const k = line.keys[i]!;
      // Card keys match ^[a-zA-Z0-9_-]+$ (schema-checked) and result/source are fixed enums: no escaping needed.
      keys += `${i === 0 ? '' : ','}{"key":"${k.key}","result":"${k.result}","source":${k.source === null ? 'null' : `"${k.source}"`},"ms":${k.ms}}`;
    }
    stream.write(
      `${head}${stamp}${bindings},"reqId":${JSON.stringify(line.reqId)},"workspaceId":${JSON.stringify(line.workspaceId)},` +
        `"customerId":${JSON.stringify(line.customerId)},"threadId":${line.threadId === null ? 'null' : JSON.stringify(line.threadId)},` +
        `"keys":[${keys}],"degraded":${line.degraded},"msg":"cards answered"}\n`,
    );
  };
}
