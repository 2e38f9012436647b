/**
 * The process's log destination (stdout): the lines written during one turn of the event loop
 * are handed to pino's asynchronous file-descriptor writer (sonic-boom) as one chunk when the turn
 * ends. Under load a turn answers several `/cards` requests, and each of them writes a line:
 * handed over one by one, every line cost a write of its own (a system call from the thread pool
 * and a wake-up of the event loop) and a scan of the text sonic-boom holds; now a turn costs one.
 *
 * A line is never held longer than the turn that wrote it (then it is on its way to the file
 * descriptor, as before), so what an operator sees is not delayed. On exit the held lines are
 * written synchronously. Memory is bounded: sonic-boom drops what exceeds `maxBufferedBytes`
 * while stdout does not keep up (counted, see `dropped`), instead of growing without end.
 */
import { pino, type DestinationStream } from 'pino';

type SonicBoom = ReturnType<typeof pino.destination>;

export class BatchedDestination implements DestinationStream {
  readonly #target: SonicBoom;
  #held: string[] = [];
  #scheduled = false;
  #dropped = 0;

  constructor(opts: { fd: number; maxBufferedBytes: number }) {
    // Synchronously, whether or not pino's own exit flush of sonic-boom ran before this one.
    process.once('exit', () => {
      try {
        this.flushSync();
      } catch {
        // stdout is gone (closed pipe): nothing left to write to.
      }
    });
    this.#target = pino.destination({ dest: opts.fd, sync: false, maxLength: opts.maxBufferedBytes });
    this.#target.on('drop', (chunk: string) => (this.#dropped += countLines(chunk)));
  }

  /** Log lines dropped since start because stdout did not keep up. */
  get dropped(): number {
    return this.#dropped;
  }

  write(line: string): void {
    this.#held.push(line);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#handOver);
    }
  }

  /** pino's `logger.flush(cb)`: everything held is written before `cb`. */
  flush(cb?: (err?: Error) => void): void {
    this.#handOver();
    this.#target.flush(cb);
  }

  flushSync(): void {
    this.#handOver();
    this.#target.flushSync();
  }

  readonly #handOver = (): void => {
    this.#scheduled = false;
    if (this.#held.length === 0) return;
    const chunk = this.#held.length === 1 ? this.#held[0]! : this.#held.join('');
    this.#held = [];
    this.#target.write(chunk);
  };
}

function countLines(text: string): number {
  let lines = 0;
  for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) lines++;
  return lines;
}
