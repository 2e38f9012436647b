/**
 * Memory for `/cards` answers: cut from slabs of `SLAB_BYTES`, and a slab is used again once every
 * answer cut from it has been written to its socket.
 *
 * Why not fresh memory per answer (or per slab): memory the process has not written lately comes
 * from the allocator as pages the kernel must map on first touch, one page fault per 4 KiB. On a
 * virtual machine a fault costs microseconds, and copying an answer into fresh memory took one per
 * 4 KiB of it; depending on how the allocator happened to lay out and give back memory, a process
 * fell into that state and stayed there, spending up to half of a warm 25-card request's CPU in
 * page faults (BENCHMARKS.md, "Answers in memory that is used again"). A slab that is used again
 * is mapped and in the CPU's caches, as the bare server's one answer buffer is.
 *
 * When is an answer written: the HTTP layer calls its `written` once the response has been handed
 * to the socket completely ('finish'). An answer whose `written` is never called (its connection
 * broke, or a path that does not report it) keeps its slab from being used again: the slab is then
 * left to the garbage collector once nothing refers to it, like any buffer. So nothing here can
 * hand out bytes that a socket may still read, and nothing is held beyond `MAX_FREE_SLABS`.
 */

/** Bytes per slab: about 25 answers of 5 cards of 2 KB. */
const SLAB_BYTES = 256 * 1024;
/** Answers larger than this get memory of their own (a slab still holds two). */
const MAX_CUT_BYTES = SLAB_BYTES / 2;
/** Free slabs kept for use again at most (2 MiB); past that a slab is left to the garbage collector. */
const MAX_FREE_SLABS = 8;

/** An answer's bytes and what to call once they have been written (undefined: nothing waits for it). */
export interface AnswerBytes {
  readonly bytes: Buffer;
  readonly written: (() => void) | undefined;
}

interface Slab {
  readonly bytes: Buffer;
  /** Bytes cut so far. */
  used: number;
  /** Answers cut from it whose `written` has not been called yet: once no longer cut from, it is used again at 0. */
  pending: number;
  /** The `written` of every answer cut from this slab (one function per slab, none per answer). */
  readonly written: () => void;
}

export class AnswerMemory {
  #slab: Slab;
  readonly #free: Slab[] = [];

  constructor() {
    this.#slab = this.#newSlab();
  }

  /** `length` bytes, not initialized: the caller writes every byte of them. */
  take(length: number): AnswerBytes {
    if (length > MAX_CUT_BYTES) return { bytes: Buffer.allocUnsafe(length), written: undefined };
    let slab = this.#slab;
    if (slab.used + length > SLAB_BYTES) {
      // No longer cut from: free now if nothing cut from it is waiting (then it is the one popped).
      if (slab.pending === 0) this.#reuse(slab);
      slab = this.#free.pop() ?? this.#newSlab();
      this.#slab = slab;
    }
    const bytes = slab.bytes.subarray(slab.used, slab.used + length);
    slab.used += (length + 7) & ~7; // 8-byte aligned, like Node's pool
    slab.pending++;
    return { bytes, written: slab.written };
  }

  /** Free slabs waiting to be used again (for tests and the curious). */
  get freeSlabs(): number {
    return this.#free.length;
  }

  #newSlab(): Slab {
    const slab: Slab = {
      bytes: Buffer.allocUnsafeSlow(SLAB_BYTES),
      used: 0,
      pending: 0,
      written: () => {
        slab.pending--;
        if (slab.pending === 0 && slab !== this.#slab) this.#reuse(slab);
      },
    };
    return slab;
  }

  #reuse(slab: Slab): void {
    if (this.#free.length >= MAX_FREE_SLABS) return;
    slab.used = 0;
    this.#free.push(slab);
  }
}
