/**
 * The process's log destination (stdout): lines are held, as bytes in one buffer, for at most
 * `HOLD_MS` (or until `HOLD_BYTES` are held) and handed to pino's asynchronous file-descriptor
 * writer (sonic-boom) as one chunk. Each hand-over is an asynchronous write: a system call on the thread pool, a wake-up
 * of a pool thread and of the event loop when it is done. On a virtual machine that round trip
 * costs about 70 µs of CPU (measured here; a synchronous write of the same bytes about 10 µs):
 * once per line it was most of a warm request's logging cost, once per event-loop turn still
 * 10-20 µs per request under load and a whole write per request at moderate rates, where each
 * request is a turn of its own. Held for a few milliseconds, a second of traffic costs about a
 * hundred writes whatever the rate.
 *
 * The writes stay asynchronous on purpose: a synchronous write to a pipe whose reader stalls (a
 * blocked log driver) would stop the event loop and with it every answer; here the service keeps
 * answering and, past `maxBufferedBytes` waiting for stdout, drops lines and counts them (see
 * `dropped`) instead of holding them without end. A line is delayed by at most `HOLD_MS`, which
 * no operator reading logs can tell. On exit the held lines are written synchronously.
 */
import { writeSync } from 'node:fs';
import { pino, type DestinationStream } from 'pino';

type SonicBoom = ReturnType<typeof pino.destination>;

/** How long a line is held at most before it is handed over (default of the `holdMs` option). */
export const HOLD_MS = 10;
/** Held bytes that are handed over at once; also the size of the holding buffer. */
const HOLD_BYTES = 64 * 1024;

/**
 * A destination that lines can be written into as bytes, in place (the `cards answered` line,
 * see cards-line.ts): `room(n)` makes room for at most `n` bytes at `held` and returns the buffer
 * to write them into, `commit(end)` keeps what was written up to `end`. No string is built.
 */
export interface ByteLineSink {
  room(bytes: number): Buffer;
  readonly held: number;
  commit(end: number): void;
}

export class BatchedDestination implements DestinationStream, ByteLineSink {
  readonly #target: SonicBoom;
  /** Held lines, as the UTF-8 bytes they are written as: `#held` bytes of it. */
  #buffer = Buffer.allocUnsafeSlow(HOLD_BYTES);
  #held = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #holdMs: number;
  readonly #fd: number;
  #dropped = 0;

  constructor(opts: { fd: number; maxBufferedBytes: number; holdMs?: number }) {
    this.#holdMs = opts.holdMs ?? HOLD_MS;
    this.#fd = opts.fd;
    // Synchronously, whether or not pino's own exit flush of sonic-boom ran before this one.
    process.once('exit', () => {
      try {
        this.flushSync();
      } catch {
        // stdout is gone (closed pipe): nothing left to write to.
      }
    });
    this.#target = pino.destination({ dest: opts.fd, sync: false, maxLength: opts.maxBufferedBytes, contentMode: 'buffer' });
    this.#target.on('drop', (chunk: Buffer) => (this.#dropped += countLines(chunk)));
  }

  /** Log lines dropped since start because stdout did not keep up. */
  get dropped(): number {
    return this.#dropped;
  }

  get held(): number {
    return this.#held;
  }

  /** A pino line (a string): its bytes are held. */
  write(line: string): void {
    const room = HOLD_BYTES - this.#held;
    // At most 3 bytes per UTF-16 unit: the exact length is counted only when that might not fit.
    if (line.length * 3 > room) {
      const bytes = Buffer.byteLength(line);
      if (bytes > room) {
        this.#handOver();
        if (bytes > HOLD_BYTES) {
          this.#target.write(Buffer.from(line, 'utf8') as unknown as string);
          return;
        }
      }
    }
    this.commit(this.#held + this.#buffer.write(line, this.#held, 'utf8'));
  }

  room(bytes: number): Buffer {
    if (bytes > HOLD_BYTES - this.#held) {
      this.#handOver();
      // A line larger than the whole buffer (not one cardproxy writes) gets a buffer of its own.
      if (bytes > HOLD_BYTES) this.#buffer = Buffer.allocUnsafeSlow(bytes);
    }
    return this.#buffer;
  }

  commit(end: number): void {
    this.#held = end;
    if (end >= HOLD_BYTES) this.#handOver();
    // Unreferenced: held lines never keep a process alive (the exit hook writes them).
    else if (this.#timer === undefined) this.#timer = setTimeout(this.#handOver, this.#holdMs).unref();
  }

  /** pino's `logger.flush(cb)`: everything held is written before `cb`. */
  flush(cb?: (err?: Error) => void): void {
    this.#handOver();
    this.#target.flush(cb);
  }

  /**
   * Writes what the writer queued, then what is held, synchronously (on exit). Held lines are not
   * handed over first: the writer would start an asynchronous write of them, which its own
   * `flushSync` leaves to the thread pool, where an exiting process may lose it. (A write the
   * writer has under way already may still land after them.)
   */
  flushSync(): void {
    this.#target.flushSync();
    const bytes = this.#take();
    for (let at = 0; at < bytes.length; ) at += writeSync(this.#fd, bytes, at, bytes.length - at);
  }

  readonly #handOver = (): void => {
    const chunk = this.#take();
    // sonic-boom in buffer mode takes Buffers (its type says string).
    if (chunk.length > 0) this.#target.write(chunk as unknown as string);
  };

  /**
   * The held bytes (empty if none), no longer held: a copy, as the writer keeps what it is given
   * until written, while the holding buffer is written on at once.
   */
  #take(): Buffer {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const chunk = Buffer.from(this.#buffer.subarray(0, this.#held));
    this.#held = 0;
    if (this.#buffer.length > HOLD_BYTES) this.#buffer = Buffer.allocUnsafeSlow(HOLD_BYTES);
    return chunk;
  }
}

function countLines(bytes: Buffer): number {
  let lines = 0;
  for (let at = bytes.indexOf(0x0a); at !== -1; at = bytes.indexOf(0x0a, at + 1)) lines++;
  return lines;
}
