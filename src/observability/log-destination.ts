/**
 * The process's log destination (stdout): lines are held for at most `HOLD_MS` (or until
 * `HOLD_BYTES` are held) and handed to pino's asynchronous file-descriptor writer (sonic-boom) as
 * one chunk. Each hand-over is an asynchronous write: a system call on the thread pool, a wake-up
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
 *
 * Lines are held as UTF-8 bytes, each encoded into one buffer as it arrives and handed over as a
 * copy of the part in use: joined as strings instead, every line was copied twice more (into the
 * joined string, and by the writer into bytes), and measured once more for its byte length.
 */
import { writeSync } from 'node:fs';
import { pino, type DestinationStream } from 'pino';

type SonicBoom = ReturnType<typeof pino.destination>;

/** How long a line is held at most before it is handed over (default of the `holdMs` option). */
export const HOLD_MS = 10;
/** Held bytes that are handed over at once. */
const HOLD_BYTES = 64 * 1024;
/** The buffer lines are held in: room for one more line of up to 64 K characters past `HOLD_BYTES`. */
const HELD_CAPACITY = 4 * HOLD_BYTES;
/** UTF-8 bytes per UTF-16 code unit at most (a surrogate pair: 4 bytes for 2 units). */
const MAX_BYTES_PER_UNIT = 3;

export class BatchedDestination implements DestinationStream {
  readonly #target: SonicBoom;
  readonly #held = Buffer.allocUnsafeSlow(HELD_CAPACITY);
  #heldBytes = 0;
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

  write(line: string): void {
    const most = line.length * MAX_BYTES_PER_UNIT;
    if (this.#heldBytes + most > HELD_CAPACITY) {
      this.#handOver();
      // A line larger than the buffer (a huge error) goes as bytes of its own, after what was held.
      if (most > HELD_CAPACITY) {
        this.#hand(Buffer.from(line, 'utf8'));
        return;
      }
    }
    this.#heldBytes += this.#held.write(line, this.#heldBytes, 'utf8');
    if (this.#heldBytes >= HOLD_BYTES) this.#handOver();
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
    const bytes = this.#take();
    if (bytes.length > 0) this.#hand(bytes);
  };

  /** To the writer, in its buffer mode (its types know only strings). */
  #hand(bytes: Buffer): void {
    (this.#target as unknown as { write(bytes: Buffer): boolean }).write(bytes);
  }

  /** The held bytes as a buffer of their own (empty if none), no longer held. */
  #take(): Buffer {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    // A copy: the writer keeps it until its asynchronous write is done, and the buffer is used again.
    const bytes = Buffer.from(this.#held.subarray(0, this.#heldBytes));
    this.#heldBytes = 0;
    return bytes;
  }
}

function countLines(bytes: Buffer): number {
  let lines = 0;
  for (let at = bytes.indexOf(0x0a); at !== -1; at = bytes.indexOf(0x0a, at + 1)) lines++;
  return lines;
}
