/**
 * Answer memory (src/http/answer-memory.ts): answers are cut from slabs, and a slab is handed out
 * again only once every answer cut from it has been written; never while one is still unwritten.
 */
import { describe, expect, it } from 'vitest';
import { AnswerMemory } from '../../src/http/answer-memory.js';

const SLAB = 256 * 1024;

/** Cuts answers of `size` bytes, each filled with its own byte value, until a new slab is started. */
function fillSlab(memory: AnswerMemory, size: number) {
  const answers = [memory.take(size)];
  answers[0]!.bytes.fill(1);
  for (;;) {
    const next = memory.take(size);
    if (next.bytes.buffer !== answers[0]!.bytes.buffer) return { answers, next };
    next.bytes.fill((answers.length % 250) + 1);
    answers.push(next);
  }
}

describe('AnswerMemory', () => {
  it('cuts answers of the exact size that do not overlap, 8-byte aligned, from one slab', () => {
    const memory = new AnswerMemory();
    const a = memory.take(10);
    const b = memory.take(3);
    const c = memory.take(1000);
    expect([a.bytes.length, b.bytes.length, c.bytes.length]).toEqual([10, 3, 1000]);
    expect(a.bytes.buffer).toBe(b.bytes.buffer);
    expect(b.bytes.byteOffset - a.bytes.byteOffset).toBe(16);
    expect(c.bytes.byteOffset - b.bytes.byteOffset).toBe(8);
    expect(a.written).toBe(b.written);
  });

  it('does not free the slab it still cuts from when every answer cut from it so far is written', () => {
    const memory = new AnswerMemory();
    const a = memory.take(100);
    a.written!();
    expect(memory.freeSlabs).toBe(0);
    const b = memory.take(100);
    expect(b.bytes.buffer).toBe(a.bytes.buffer);
    expect(b.bytes.byteOffset - a.bytes.byteOffset).toBe(104);
  });

  it('uses a full slab again once every answer cut from it has been written', () => {
    const memory = new AnswerMemory();
    const { answers, next } = fillSlab(memory, 10_000);
    expect(answers).toHaveLength(Math.floor(SLAB / 10_000));
    const first = answers[0]!.bytes.buffer;
    // All but one written: the slab is not free yet.
    for (const a of answers.slice(1)) a.written!();
    expect(memory.freeSlabs).toBe(0);
    answers[0]!.written!();
    expect(memory.freeSlabs).toBe(1);
    // The second slab fills up; the next answer comes from the first slab's memory again.
    next.written!();
    const { next: third } = fillSlab(memory, 10_000);
    expect(third.bytes.buffer).toBe(first);
    expect(third.bytes.byteOffset).toBe(answers[0]!.bytes.byteOffset);
  });

  it('never hands out the memory of a slab with an answer not yet written, and leaves its bytes alone', () => {
    const memory = new AnswerMemory();
    const { answers } = fillSlab(memory, 20_000);
    const kept = answers[3]!;
    const before = Buffer.from(kept.bytes);
    for (const a of answers) if (a !== kept) a.written!();
    // Many more slabs' worth of answers, each written at once.
    for (let i = 0; i < 2000; i++) {
      const a = memory.take(20_000);
      expect(a.bytes.buffer).not.toBe(kept.bytes.buffer);
      a.bytes.fill(0xee);
      a.written!();
    }
    expect(kept.bytes.equals(before)).toBe(true);
  });

  it('gives an answer larger than half a slab memory of its own, with nothing to report', () => {
    const memory = new AnswerMemory();
    const small = memory.take(100);
    const large = memory.take(SLAB / 2 + 1);
    expect(large.bytes.length).toBe(SLAB / 2 + 1);
    expect(large.bytes.buffer).not.toBe(small.bytes.buffer);
    expect(large.written).toBeUndefined();
    expect(memory.take(SLAB / 2).bytes.buffer).toBe(small.bytes.buffer);
  });

  it('keeps at most 8 free slabs, however many were in use at once', () => {
    const memory = new AnswerMemory();
    const pending = [];
    // 20 slabs' worth of answers not yet written (as behind 20 slow clients)...
    for (let i = 0; i < 20 * 2; i++) pending.push(memory.take(SLAB / 2));
    // ...then all written.
    for (const a of pending) a.written!();
    expect(memory.freeSlabs).toBe(8);
  });
});
